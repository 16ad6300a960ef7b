"""Updaters: how a strategy's parameters are improved (gradient descent, random search, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from engine._config import Configurable
from engine.task import TaskInfo

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = ["FitResult", "Report", "TrainingProblem", "Updater"]

Report = Callable[[int, float], None]
"""``report(step, validation_value)``: tells the engine (and Optuna's pruner) how training goes.

It raises :class:`optuna.TrialPruned` when the pruner stops the trial; updaters let it propagate.
"""


@dataclass(frozen=True)
class TrainingProblem:
    """What an updater trains on.

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
    """

    X: torch.Tensor
    y: torch.Tensor
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    validate: Callable[[torch.nn.Module], float]
    higher_is_better: bool
    generator: torch.Generator
    info: TaskInfo
    device: str = "cpu"


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
    """

    name: ClassVar[str]
    gradient_free: ClassVar[bool] = False
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
        found (or the last one).
        """
