"""Evaluators: how a strategy is judged, by a score or by a prediction error."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import numpy as np

from engine.task import TASK_KINDS, TaskKind

__all__ = ["Direction", "Evaluator"]

Direction = Literal["maximize", "minimize"]


class Evaluator(ABC):
    """Base class of evaluator plugins. Instances are registered; they have no hyperparameters.

    Attributes:
        name: Registry name (``accuracy``, ``mse``, ...).
        basis: ``"score"`` (higher is better: accuracy, R²) or ``"error"`` (lower is better: MSE,
            cross-entropy).
        direction: ``"maximize"`` for scores, ``"minimize"`` for errors; the Optuna study's direction.
        kinds: Task kinds the evaluator applies to.
    """

    name: ClassVar[str]
    basis: ClassVar[Literal["score", "error"]]
    kinds: ClassVar[frozenset[TaskKind]] = frozenset(TASK_KINDS)
    description: ClassVar[str] = ""

    @property
    def direction(self) -> Direction:
        return "maximize" if self.basis == "score" else "minimize"

    @abstractmethod
    def __call__(self, y_true: np.ndarray, output: np.ndarray) -> float:
        """Judge predictions.

        Args:
            y_true: True class codes (``int64``) or values (``float64``), shape ``(n,)``.
            output: For classification, class probabilities of shape ``(n, n_classes)`` (rows sum to
                one); for regression, predicted values of shape ``(n,)``.

        Returns:
            A finite float; higher is better for a score, lower for an error.
        """

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b`` under this evaluator's direction."""
        return a > b if self.basis == "score" else a < b
