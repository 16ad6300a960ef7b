"""Built-in updaters: mini-batch gradient descent and gradient-free evolution strategies.

Both draw every random number (batch order, perturbations) from ``problem.generator``, so a fit is
reproducible given the model's initial weights and the generator's seed. Both report the validation
value at regular steps and let :class:`optuna.TrialPruned` from ``report`` propagate, and both leave
the model in the state with the best validation value they reported.

Both also train on stochastic problems (``problem.stochastic``: a loss drawn by
``problem.objective(model, generator)``, such as meta-training over a task family, see
:func:`engine.meta.meta_problem`): gradient descent takes one optimizer step per draw, random search
runs an antithetic evolution strategy. On per-task problems they behave exactly as before (same
random numbers, same results), so one updater plugin serves per-task training and meta-training.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import engine
from engine import FitResult, Report, TaskInfo, TrainingProblem, Updater

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = [
    "BATCH_SIZES",
    "ES_MODES",
    "OPTIMIZERS",
    "GradientDescent",
    "RandomSearch",
    "one_fifth_rule",
    "stratagem_register_updaters",
]

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")
"""Optimizers :class:`GradientDescent` accepts; ``sgd`` uses momentum 0.9."""

BATCH_SIZES: tuple[int | None, ...] = (32, 64, 128, 256, None)
"""Batch sizes :class:`GradientDescent` searches over; ``None`` is the full training set."""


class _BestState:
    """Remembers the model state with the best finite validation value seen so far."""

    def __init__(self, higher_is_better: bool) -> None:
        self.higher_is_better = higher_is_better
        self.value: float | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def offer(self, model: torch.nn.Module, value: float) -> None:
        """Keep a copy of ``model``'s state if ``value`` is finite and strictly the best so far."""
        if not math.isfinite(value):
            return
        if self.value is not None and not (
            value > self.value if self.higher_is_better else value < self.value
        ):
            return
        self.value = value
        self.state = _snapshot(model)


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _stochastic_loss(model: torch.nn.Module, problem: TrainingProblem, draws: int = 8) -> float:
    """Mean objective of a stochastic problem over ``draws`` draws that are the same for every fit.

    The draws come from a fresh generator seeded with ``problem.generator``'s initial seed, so the
    value compares fits of different updaters; no gradients, evaluation mode.
    """
    import torch

    assert problem.objective is not None
    generator = torch.Generator().manual_seed(problem.generator.initial_seed())
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss = sum(float(problem.objective(model, generator)) for _ in range(draws)) / draws
    model.train(was_training)
    return loss


def _full_loss(model: torch.nn.Module, problem: TrainingProblem) -> float:
    """Training loss on the whole training set in evaluation mode (no dropout), without gradients."""
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss = float(problem.loss(model(problem.X), problem.y))
    model.train(was_training)
    return loss


class GradientDescent(Updater):
    """Mini-batch gradient descent with SGD (momentum 0.9), Adam or AdamW.

    Each epoch visits the training rows in an order drawn from ``problem.generator`` (a final batch
    of a single row is merged into the previous one, so batch normalisation always sees two rows),
    then calls ``report(epoch, problem.validate(model))`` with ``epoch`` counting from 1. The weights
    of the epoch with the best finite validation value are restored at the end; if no epoch had one,
    the initial weights are. A non-finite batch loss (divergence) ends training early.

    On a stochastic problem (``problem.stochastic``, e.g. meta-training), an epoch is
    ``problem.draws_per_epoch`` optimizer steps, each on one draw of ``problem.objective`` (a fresh
    meta-batch), and ``batch_size`` is unused; the rest (validation, reporting, restoring) is the same.

    Search space:
        - ``optimizer``: one of ``sgd``, ``adam``, ``adamw``.
        - ``lr``: float in [1e-4, 1e-1], log scale.
        - ``weight_decay``: float in [1e-6, 1e-2], log scale (``__init__`` also accepts 0).
        - ``epochs``: int in [10, 50].
        - ``batch_size``: one of 32, 64, 128, 256 or ``None`` (full batch).

    The ranges keep a trial on a thousand-row table to about a second on one CPU core.

    Args:
        optimizer: Name of the optimizer, one of :data:`OPTIMIZERS`.
        lr: Learning rate.
        weight_decay: L2 penalty (decoupled for ``adamw``), >= 0.
        epochs: Number of passes over the training set.
        batch_size: Rows per step; ``None`` uses the whole training set.
    """

    name: ClassVar[str] = "gradient_descent"
    description: ClassVar[str] = "Mini-batch SGD/Adam/AdamW keeping the best-validation weights."
    stochastic_objectives: ClassVar[bool] = True

    def __init__(
        self,
        optimizer: str = "adam",
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        epochs: int = 30,
        batch_size: int | None = 64,
    ) -> None:
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size

    @classmethod
    def suggest(cls, trial: optuna.Trial, info: TaskInfo) -> dict[str, Any]:
        return {
            "optimizer": trial.suggest_categorical("optimizer", list(OPTIMIZERS)),
            "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
            "epochs": trial.suggest_int("epochs", 10, 50),
            "batch_size": trial.suggest_categorical("batch_size", list(BATCH_SIZES)),
        }

    def _check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"GradientDescent: unknown optimizer {self.optimizer!r}; choose one of {OPTIMIZERS}"
            )
        if not self.lr > 0:
            raise ValueError(f"GradientDescent: lr must be positive, got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"GradientDescent: weight_decay must be >= 0, got {self.weight_decay!r}")
        if int(self.epochs) != self.epochs or self.epochs < 1:
            raise ValueError(f"GradientDescent: epochs must be a positive integer, got {self.epochs!r}")
        if self.batch_size is not None and (int(self.batch_size) != self.batch_size or self.batch_size < 1):
            raise ValueError(
                f"GradientDescent: batch_size must be a positive integer or None (full batch), "
                f"got {self.batch_size!r}"
            )

    def _make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        import torch

        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("GradientDescent: the model has no trainable parameters (requires_grad=True)")
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay)
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)

    def _batches(self, n: int, problem: TrainingProblem) -> list[torch.Tensor]:
        import torch

        order = torch.randperm(n, generator=problem.generator).to(problem.X.device)
        size = n if self.batch_size is None else min(int(self.batch_size), n)
        batches = list(torch.split(order, size))
        if len(batches) > 1 and len(batches[-1]) == 1:
            batches[-2:] = [torch.cat(batches[-2:])]
        return batches

    def fit(self, model: torch.nn.Module, problem: TrainingProblem, report: Report) -> FitResult:
        """Train ``model`` in place; see the class docstring for the schedule and what is restored.

        Returns:
            The number of completed epochs and the training loss of the restored model (full
            training set, evaluation mode).

        Raises:
            optuna.TrialPruned: Raised by ``report``; the model is left as it was at that epoch.
            ValueError: A hyperparameter is out of range, or the model has nothing to train.
        """
        import torch

        self._check()
        if problem.stochastic:
            return self._fit_stochastic(model, problem, report)
        opt = self._make_optimizer(model)
        initial = _snapshot(model)
        best = _BestState(problem.higher_is_better)
        epochs_done = 0
        model.train()
        for epoch in range(1, int(self.epochs) + 1):
            diverged = False
            for idx in self._batches(len(problem.X), problem):
                opt.zero_grad(set_to_none=True)
                loss = problem.loss(model(problem.X[idx]), problem.y[idx])
                if not torch.isfinite(loss):
                    diverged = True
                    break
                loss.backward()
                opt.step()
            if diverged:
                break
            epochs_done = epoch
            value = problem.validate(model)
            best.offer(model, value)
            report(epoch, value)
        model.load_state_dict(best.state if best.state is not None else initial)
        return FitResult(steps=epochs_done, train_loss=_full_loss(model, problem))

    def _fit_stochastic(self, model: torch.nn.Module, problem: TrainingProblem, report: Report) -> FitResult:
        """:meth:`fit` on a stochastic problem: one optimizer step per draw of the objective."""
        import torch

        assert problem.objective is not None
        opt = self._make_optimizer(model)
        initial = _snapshot(model)
        best = _BestState(problem.higher_is_better)
        epochs_done = 0
        model.train()
        for epoch in range(1, int(self.epochs) + 1):
            diverged = False
            for _ in range(int(problem.draws_per_epoch)):
                opt.zero_grad(set_to_none=True)
                loss = problem.objective(model, problem.generator)
                if not torch.isfinite(loss):
                    diverged = True
                    break
                loss.backward()
                opt.step()
            if diverged:
                break
            epochs_done = epoch
            value = problem.validate(model)
            best.offer(model, value)
            report(epoch, value)
        model.load_state_dict(best.state if best.state is not None else initial)
        return FitResult(steps=epochs_done, train_loss=_stochastic_loss(model, problem))


ES_MODES: tuple[str, ...] = ("auto", "one_plus_one", "antithetic")
"""Modes of :class:`RandomSearch`; ``auto``: ``antithetic`` on a stochastic problem, else ``one_plus_one``."""


def one_fifth_rule(sigma: float, success: bool, adapt: float) -> float:
    """Rechenberg's 1/5th success rule, in its smooth multiplicative form.

    A success multiplies ``sigma`` by ``exp(adapt)``, a failure by ``exp(-adapt / 4)``, so the step
    size stays put on average exactly when one perturbation in five succeeds, grows when more do and
    shrinks when fewer do.

    Args:
        sigma: Current step size.
        success: Whether the last perturbation improved the objective.
        adapt: Adaptation rate, > 0.

    Returns:
        The new step size.
    """
    return sigma * math.exp(adapt if success else -adapt / 4.0)


class RandomSearch(Updater):
    """Gradient-free training by a (1+1)-evolution strategy with the 1/5th success rule.

    Every iteration adds Gaussian noise of scale ``sigma`` (drawn from ``problem.generator``) to all
    parameters at once and evaluates the training loss on the full training set, in evaluation mode
    and without gradients. The perturbed weights replace the current ones when their loss is strictly
    lower; ``sigma`` then adapts by :func:`one_fifth_rule`. Every ``report_every`` iterations (a round)
    and after the last iteration it calls ``report(round, problem.validate(model))``, rounds counting
    from 1. The weights of the round with the best finite validation value are restored at the end.

    After ``fit``, ``sigma_`` holds the final step size and ``success_rate_`` the fraction of accepted
    perturbations.

    Antithetic mode (``mode="antithetic"``, and ``mode="auto"`` on a stochastic problem such as
    meta-training) is instead the evolution strategy of Salimans et al. (2017): each iteration draws
    ``pairs`` Gaussian directions ε, evaluates the objective at θ ± ``sigma``·ε on common random
    numbers (the generator state is restored before each evaluation, so all 2·``pairs`` evaluations
    see the same meta-batch), estimates the gradient of the smoothed objective as
    ``Σ (f(θ+σε) − f(θ−σε)) ε / (2σ·pairs)`` and takes an Adam step of size ``lr`` with it. No gradient
    flows through the objective (it runs under ``torch.no_grad()``; a meta-strategy's inner loop may
    still differentiate the task loss). Validation rounds are ``problem.draws_per_epoch`` iterations
    on a stochastic problem and ``report_every`` otherwise; ``sigma_`` is ``sigma`` and
    ``success_rate_`` the fraction of iterations with at least one pair of finite, different values
    (a sanity figure). ``suggest`` does not search ``mode``, ``pairs`` or ``lr``.

    Search space:
        - ``sigma``: float in [1e-3, 1], log scale, the initial step size.
        - ``iterations``: int in [100, 1000].
        - ``adapt``: float in [0.05, 0.5], log scale, the step-size adaptation rate.

    Args:
        sigma: Initial standard deviation of the perturbations, > 0.
        iterations: Number of perturbations tried.
        adapt: Adaptation rate of :func:`one_fifth_rule`, > 0.
        report_every: Iterations per round (not searched).
        mode: One of :data:`ES_MODES`.
        pairs: Antithetic pairs per iteration (antithetic mode).
        lr: Adam step size on the gradient estimate (antithetic mode).
    """

    name: ClassVar[str] = "random_search"
    gradient_free: ClassVar[bool] = True
    stochastic_objectives: ClassVar[bool] = True
    description: ClassVar[str] = "(1+1)-evolution strategy with the 1/5th success rule; no gradients."

    def __init__(
        self,
        sigma: float = 0.1,
        iterations: int = 300,
        adapt: float = 0.2,
        report_every: int = 50,
        mode: str = "auto",
        pairs: int = 8,
        lr: float = 0.01,
    ) -> None:
        self.sigma = sigma
        self.iterations = iterations
        self.adapt = adapt
        self.report_every = report_every
        self.mode = mode
        self.pairs = pairs
        self.lr = lr

    @classmethod
    def suggest(cls, trial: optuna.Trial, info: TaskInfo) -> dict[str, Any]:
        return {
            "sigma": trial.suggest_float("sigma", 1e-3, 1.0, log=True),
            "iterations": trial.suggest_int("iterations", 100, 1000),
            "adapt": trial.suggest_float("adapt", 0.05, 0.5, log=True),
        }

    def _check(self) -> None:
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"RandomSearch: sigma must be a positive finite number, got {self.sigma!r}")
        if not self.adapt > 0:
            raise ValueError(f"RandomSearch: adapt must be positive, got {self.adapt!r}")
        if self.mode not in ES_MODES:
            raise ValueError(f"RandomSearch: unknown mode {self.mode!r}; choose one of {ES_MODES}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"RandomSearch: lr must be a positive finite number, got {self.lr!r}")
        for name in ("iterations", "report_every", "pairs"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"RandomSearch: {name} must be a positive integer, got {value!r}")

    def fit(self, model: torch.nn.Module, problem: TrainingProblem, report: Report) -> FitResult:
        """Train ``model`` in place; see the class docstring for the schedule and what is restored.

        Returns:
            The number of iterations and the training loss of the restored model (full training set,
            evaluation mode).

        Raises:
            optuna.TrialPruned: Raised by ``report``; the model is left as it was at that round.
            ValueError: A hyperparameter is out of range, or the model has no parameters.
        """
        import torch
        from torch.nn.utils import parameters_to_vector, vector_to_parameters

        self._check()
        params = list(model.parameters())
        if not params:
            raise ValueError("RandomSearch: the model has no parameters to perturb")
        mode = self.mode if self.mode != "auto" else ("antithetic" if problem.stochastic else "one_plus_one")
        if mode == "antithetic":
            return self._fit_antithetic(model, problem, report)
        if problem.stochastic:
            raise ValueError(
                "RandomSearch: mode='one_plus_one' compares losses on the full training set and cannot "
                "train on a stochastic problem; use mode='antithetic' (or 'auto')"
            )
        initial = _snapshot(model)
        best = _BestState(problem.higher_is_better)
        sigma = float(self.sigma)
        successes = 0
        iterations = int(self.iterations)
        with torch.no_grad():
            current = parameters_to_vector(params).clone()
            current_loss = _full_loss(model, problem)
            for i in range(1, iterations + 1):
                noise = torch.randn(current.shape, generator=problem.generator, dtype=current.dtype)
                candidate = current + sigma * noise.to(current.device)
                vector_to_parameters(candidate, params)
                loss = _full_loss(model, problem)
                success = math.isfinite(loss) and (not math.isfinite(current_loss) or loss < current_loss)
                if success:
                    current, current_loss = candidate, loss
                    successes += 1
                else:
                    vector_to_parameters(current, params)
                sigma = one_fifth_rule(sigma, success, float(self.adapt))
                if i % int(self.report_every) == 0 or i == iterations:
                    value = problem.validate(model)
                    best.offer(model, value)
                    report(-(-i // int(self.report_every)), value)
        self.sigma_ = sigma
        self.success_rate_ = successes / iterations
        model.load_state_dict(best.state if best.state is not None else initial)
        return FitResult(steps=iterations, train_loss=_full_loss(model, problem))

    def _fit_antithetic(self, model: torch.nn.Module, problem: TrainingProblem, report: Report) -> FitResult:
        """:meth:`fit` in antithetic mode; see the class docstring."""
        import torch
        from torch.nn.utils import parameters_to_vector, vector_to_parameters

        params = list(model.parameters())
        generator = problem.generator
        objective = problem.objective

        def evaluate(vector: torch.Tensor, state: torch.Tensor) -> float:
            vector_to_parameters(vector, params)
            if objective is None:
                return _full_loss(model, problem)
            generator.set_state(state)
            return float(objective(model, generator))

        initial = _snapshot(model)
        best = _BestState(problem.higher_is_better)
        sigma, lr, pairs = float(self.sigma), float(self.lr), int(self.pairs)
        iterations = int(self.iterations)
        per_round = int(problem.draws_per_epoch) if problem.stochastic else int(self.report_every)
        successes = 0
        was_training = model.training
        model.eval()
        with torch.no_grad():
            theta = parameters_to_vector(params).clone()
            m, v = torch.zeros_like(theta), torch.zeros_like(theta)
            for i in range(1, iterations + 1):
                noise = torch.randn((pairs, theta.numel()), generator=generator, dtype=theta.dtype)
                noise = noise.to(theta.device)
                state = generator.get_state()
                diffs = torch.zeros(pairs, dtype=theta.dtype, device=theta.device)
                for j in range(pairs):
                    up = evaluate(theta + sigma * noise[j], state)
                    down = evaluate(theta - sigma * noise[j], state)
                    if math.isfinite(up) and math.isfinite(down):
                        diffs[j] = up - down
                successes += int(bool((diffs != 0).any()))
                grad = (diffs @ noise) / (2.0 * sigma * pairs)
                m.mul_(0.9).add_(grad, alpha=0.1)
                v.mul_(0.999).addcmul_(grad, grad, value=0.001)
                theta = theta - lr * (m / (1 - 0.9**i)) / ((v / (1 - 0.999**i)).sqrt() + 1e-8)
                vector_to_parameters(theta, params)
                if i % per_round == 0 or i == iterations:
                    value = problem.validate(model)
                    best.offer(model, value)
                    report(-(-i // per_round), value)
        model.train(was_training)
        self.sigma_ = sigma
        self.success_rate_ = successes / iterations
        model.load_state_dict(best.state if best.state is not None else initial)
        loss = _stochastic_loss(model, problem) if problem.stochastic else _full_loss(model, problem)
        return FitResult(steps=iterations, train_loss=loss)


@engine.hookimpl
def stratagem_register_updaters(registry: engine.Registry[type[Updater]]) -> None:
    """Register :class:`GradientDescent` and :class:`RandomSearch`."""
    registry.add(GradientDescent)
    registry.add(RandomSearch)
