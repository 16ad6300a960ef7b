"""A trial's trained model, kept in memory until the search decides whether to store it.

With holdout validation a trial trains one model; with k-fold validation it trains one per fold and its
test value is the mean of their outputs (class probabilities, or values). Either way the trial's model
is the list of :attr:`TrainedModel.members`, each with the preprocessing of the rows it was trained
on, and predicting means averaging the members' outputs: exactly what produced the stored test value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.study.training import Prepared, predict

__all__ = ["TrainedModel"]


@dataclass(frozen=True)
class TrainedModel:
    """The model(s) one trial trained.

    Attributes:
        strategy: The strategy's registry name.
        strategy_params: Its hyperparameters (``Strategy(**strategy_params)`` rebuilds the model).
        members: One ``(model, preprocessing)`` pair per holdout fit or per fold.
    """

    strategy: str
    strategy_params: Mapping[str, Any]
    members: tuple[tuple[torch.nn.Module, Prepared], ...]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Evaluator-ready output for raw features ``X``: the members' mean."""
        outputs = [predict(model, prepared, X) for model, prepared in self.members]
        return outputs[0] if len(outputs) == 1 else np.mean(outputs, axis=0)
