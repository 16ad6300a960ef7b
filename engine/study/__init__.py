"""Strategy exploration on one task: the Optuna objective, how data reaches a model, and the factories
for the samplers and pruners a spec names."""

from __future__ import annotations

from engine.study.factories import make_pruner, make_sampler
from engine.study.objective import (
    NotFinitePredictions,
    PrefixedTrial,
    ReplayTrial,
    StrategyObjective,
    TrialFailed,
    search_space,
    trial_seed,
)
from engine.study.runtime import quiet_optuna, resolve_device, torch_threads
from engine.study.trained import TrainedModel

__all__ = [
    "NotFinitePredictions",
    "PrefixedTrial",
    "ReplayTrial",
    "StrategyObjective",
    "TrainedModel",
    "TrialFailed",
    "make_pruner",
    "make_sampler",
    "quiet_optuna",
    "resolve_device",
    "search_space",
    "torch_threads",
    "trial_seed",
]
