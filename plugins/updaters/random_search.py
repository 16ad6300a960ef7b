"""Adaptive random search: the ``random_search`` updater, a (1+1) evolution strategy with the 1/5th
success rule, and an antithetic evolution strategy for stochastic objectives such as meta-training."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from engine import FitResult, Report, TaskInfo, TrainingProblem, Updater
from plugins.updaters._common import BestState, full_loss, snapshot, training_loss

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = ["ES_MODES", "RandomSearch", "one_fifth_rule"]

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
        initial = snapshot(model)
        best = BestState(problem.higher_is_better)
        sigma = float(self.sigma)
        successes = 0
        iterations = int(self.iterations)
        with torch.no_grad():
            current = parameters_to_vector(params).clone()
            current_loss = full_loss(model, problem)
            for i in range(1, iterations + 1):
                noise = torch.randn(current.shape, generator=problem.generator, dtype=current.dtype)
                candidate = current + sigma * noise.to(current.device)
                vector_to_parameters(candidate, params)
                loss = full_loss(model, problem)
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
        return FitResult(steps=iterations, train_loss=full_loss(model, problem))

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
                return full_loss(model, problem)
            generator.set_state(state)
            return float(objective(model, generator))

        initial = snapshot(model)
        best = BestState(problem.higher_is_better)
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
        return FitResult(steps=iterations, train_loss=training_loss(model, problem))
