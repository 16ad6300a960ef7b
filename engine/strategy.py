"""Strategies: a learning algorithm plus its hyperparameters (the seed's "strategy")."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from engine.configurable import Configurable
from engine.task import TASK_KINDS, TaskInfo, TaskKind

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = ["Strategy"]


class Strategy(Configurable, ABC):
    """Base class of strategy plugins.

    Following scikit-learn, ``__init__`` takes the hyperparameters as keyword arguments and only stores
    them. :meth:`suggest` samples those keyword arguments from an Optuna trial; the engine prefixes every
    parameter name with the strategy's name (``mlp.width``) so several strategies share one study, and
    strips it again to build ``Strategy(**params)``.

    Attributes:
        name: Registry name, used in specs and stored with results.
        kinds: Task kinds the strategy can learn.
    """

    name: ClassVar[str]
    kinds: ClassVar[frozenset[TaskKind]] = frozenset(TASK_KINDS)
    description: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def suggest(cls, trial: optuna.Trial, info: TaskInfo) -> dict[str, Any]:
        """Sample hyperparameters for ``info``'s task; return keyword arguments for ``__init__``."""

    @abstractmethod
    def build(self, info: TaskInfo) -> torch.nn.Module:
        """Build a fresh, untrained model.

        The model maps a ``float32`` batch of shape ``(batch, info.n_features)`` (standardised on the
        training split) to ``(batch, info.n_outputs)``: class logits for classification, predicted
        values for regression. Parameters are initialised from torch's global RNG, which the engine
        seeds before calling this.
        """
