"""What both built-in updaters share: keeping the best-validation state, and the training loss."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from engine import TrainingProblem

if TYPE_CHECKING:
    import torch

__all__ = ["BestState", "full_loss", "snapshot", "stochastic_loss", "training_loss"]


class BestState:
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
        self.state = snapshot(model)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def stochastic_loss(model: torch.nn.Module, problem: TrainingProblem, draws: int = 8) -> float:
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


def full_loss(model: torch.nn.Module, problem: TrainingProblem) -> float:
    """Training loss on the whole training set in evaluation mode (no dropout), without gradients."""
    import torch

    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss = float(problem.loss(model(problem.X), problem.y))
    model.train(was_training)
    return loss


def training_loss(model: torch.nn.Module, problem: TrainingProblem) -> float:
    """The loss a fit reports: on the training set, or the mean of fixed draws of a stochastic problem."""
    return stochastic_loss(model, problem) if problem.stochastic else full_loss(model, problem)
