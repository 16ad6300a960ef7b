"""The pruner of a warm-started study judges the sampler's trials by each other, not by the warm trials.

Optuna's median pruner (the engine's default) compares a trial's intermediate values at each step with
those of the study's *complete* trials, and starts once ``n_startup_trials`` trials are complete. Warm
trials (configurations enqueued from other tasks' history) count for both, yet they are not draws of
the study's sampler: they are the best configurations of similar tasks. After a warm start they were
the pruner's whole reference, and since a pruned trial never joins it, it stayed so: on the training
group of ``bench/warmstart.py`` about 88% of the trials after the fifth were pruned (cold TPE: 72%),
and none of them could become the incumbent. :class:`OwnTrialsPruner` hides the enqueued trials from
the pruner it wraps, which then starts and judges as in a cold search, on the sampler's own trials.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any, cast

import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.storage.optuna_adapter import was_enqueued

__all__ = ["OwnTrialsPruner", "own_trials_pruner"]


class _WithoutWarm:
    """A view of a study whose ``get_trials`` leaves out enqueued trials (all else is the study's)."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return [t for t in self._study.get_trials(deepcopy=deepcopy, states=states) if not was_enqueued(t)]


class OwnTrialsPruner(optuna.pruners.BasePruner):
    """Runs ``base`` as if the enqueued (warm) trials were not in the study.

    Args:
        base: The study's own pruner (median by default).
    """

    def __init__(self, base: optuna.pruners.BasePruner) -> None:
        self.base = base

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.base.prune(cast(optuna.Study, _WithoutWarm(study)), trial)


def own_trials_pruner(pruner: optuna.pruners.BasePruner) -> optuna.pruners.BasePruner:
    """``pruner`` wrapped in :class:`OwnTrialsPruner`; the no-op pruner and Hyperband as they are.

    Optuna recognises Hyperband by its class to give the sampler each bracket's trials, so it is not
    wrapped (its brackets then include the warm trials).
    """
    if isinstance(pruner, optuna.pruners.NopPruner | optuna.pruners.HyperbandPruner):
        return pruner
    return OwnTrialsPruner(pruner)
