"""Mini-batch gradient descent: the ``gradient_descent`` updater."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from engine import FitResult, Report, TaskInfo, TrainingProblem, Updater
from plugins.updaters._common import BestState, snapshot, training_loss

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = ["BATCH_SIZES", "OPTIMIZERS", "GradientDescent"]

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")
"""Optimizers :class:`GradientDescent` accepts; ``sgd`` uses momentum 0.9."""

BATCH_SIZES: tuple[int | None, ...] = (32, 64, 128, 256, None)
"""Batch sizes :class:`GradientDescent` searches over; ``None`` is the full training set."""


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
            training set, evaluation mode; on a stochastic problem, the mean of fixed draws).

        Raises:
            optuna.TrialPruned: Raised by ``report``; the model is left as it was at that epoch.
            ValueError: A hyperparameter is out of range, or the model has nothing to train.
        """
        import torch

        self._check()
        opt = self._make_optimizer(model)
        initial = snapshot(model)
        best = BestState(problem.higher_is_better)
        epochs_done = 0
        model.train()
        for epoch in range(1, int(self.epochs) + 1):
            diverged = False
            for loss in self._losses(model, problem):
                if not torch.isfinite(loss):
                    diverged = True
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if diverged:
                break
            epochs_done = epoch
            value = problem.validate(model)
            best.offer(model, value)
            report(epoch, value)
        model.load_state_dict(best.state if best.state is not None else initial)
        return FitResult(steps=epochs_done, train_loss=training_loss(model, problem))

    def _losses(self, model: torch.nn.Module, problem: TrainingProblem) -> Iterator[torch.Tensor]:
        """One epoch's losses, computed as they are drawn: a mini-batch each, or a draw of the objective."""
        if problem.objective is not None:
            for _ in range(int(problem.draws_per_epoch)):
                yield problem.objective(model, problem.generator)
            return
        for idx in self._batches(len(problem.X), problem):
            yield problem.loss(model(problem.X[idx]), problem.y[idx])
