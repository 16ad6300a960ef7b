"""Updaters: how a strategy's parameters are improved (gradient descent, random search, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from engine.configurable import Configurable
from engine.task import TaskInfo

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = ["FitResult", "Objective", "Report", "TrainingProblem", "Updater"]

Report = Callable[[int, float], None]
"""``report(step, validation_value)``: tells the engine (and Optuna's pruner) how training goes.

It raises :class:`optuna.TrialPruned` when the pruner stops the trial; updaters let it propagate.
"""


Objective = Callable[["torch.nn.Module", "torch.Generator"], "torch.Tensor"]
"""``objective(model, generator) -> scalar loss tensor``: one random draw of a stochastic training loss.

Each call draws what it needs (a meta-batch of tasks, say) from ``generator`` only and returns a loss
that is differentiable in the model's parameters; gradient-free updaters call it under
``torch.no_grad()``. Two calls from the same generator state see the same draw, so an updater can
compare two parameter vectors on common random numbers by restoring the generator's state.
"""


@dataclass(frozen=True)
class TrainingProblem:
    """What an updater trains on: one task's training set, or a stochastic objective.

    A per-task problem (``objective is None``, the default) gives the training set ``X``/``y`` and its
    ``loss``; updaters draw mini-batches of rows from ``generator`` themselves. A stochastic problem
    (``objective`` set; :attr:`stochastic` is true), such as meta-training over a task family
    (:func:`engine.meta.meta_problem`), instead gives ``objective(model, generator)``, a fresh random
    draw of the loss per call (for meta-training, the meta-batch loss after adapting to each task's
    support set), and ``draws_per_epoch``, the draws that make one "epoch" between two calls to
    ``validate``; its ``X`` and ``y`` may be empty. An updater that handles stochastic problems sets
    :attr:`Updater.stochastic_objectives`; everything else (``validate``, ``report``, restoring the
    best state, drawing randomness only from ``generator``) is the same for both.

    Attributes:
        X: Training features, ``float32``, standardised, on ``device``.
        y: Training targets: ``int64`` class codes or ``float32`` values of shape ``(n,)``.
        loss: Differentiable training loss ``loss(model_output, y) -> scalar tensor`` (cross-entropy
            for classification, MSE for regression).
        validate: Scores a model on the validation split with the search's evaluator; returns the
            value in the evaluator's own direction (see ``higher_is_better``).
        higher_is_better: Direction of ``validate``'s values.
        generator: Seeded RNG for shuffling and perturbations (on the CPU).
        info: The task's shape.
        device: Torch device of the tensors.
        objective: The stochastic objective of a stochastic problem, ``None`` for a per-task problem.
        draws_per_epoch: Objective draws (updater steps) per epoch of a stochastic problem.
    """

    X: torch.Tensor
    y: torch.Tensor
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    validate: Callable[[torch.nn.Module], float]
    higher_is_better: bool
    generator: torch.Generator
    info: TaskInfo
    device: str = "cpu"
    objective: Objective | None = None
    draws_per_epoch: int = 1

    @property
    def stochastic(self) -> bool:
        """Whether the problem is a stochastic objective (updaters must call ``objective``)."""
        return self.objective is not None


@dataclass(frozen=True)
class FitResult:
    """Summary of one training run."""

    steps: int
    train_loss: float


class Updater(Configurable, ABC):
    """Base class of updater plugins; hyperparameters follow the same contract as strategies.

    Attributes:
        name: Registry name (``gradient_descent``, ``random_search``).
        gradient_free: Whether the updater needs no gradients.
        stochastic_objectives: Whether :meth:`fit` also handles stochastic problems
            (``problem.stochastic``, e.g. meta-training); the engine gives those to no other updater.
    """

    name: ClassVar[str]
    gradient_free: ClassVar[bool] = False
    stochastic_objectives: ClassVar[bool] = False
    description: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def suggest(cls, trial: optuna.Trial, info: TaskInfo) -> dict[str, Any]:
        """Sample hyperparameters; return keyword arguments for ``__init__``."""

    @abstractmethod
    def fit(self, model: torch.nn.Module, problem: TrainingProblem, report: Report) -> FitResult:
        """Train ``model`` in place on ``problem``.

        Call ``report(step, problem.validate(model))`` at regular points (each epoch, say), with
        increasing ``step``, so pruners can stop bad trials early. Leave the model in the best state
        found (or the last one). On a stochastic problem (if :attr:`stochastic_objectives`), minimise
        ``problem.objective(model, problem.generator)`` instead of ``problem.loss`` on ``X``/``y``, and
        validate every ``problem.draws_per_epoch`` draws or so.
        """
