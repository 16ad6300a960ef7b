"""Learning across tasks: sources, task similarity, the configuration space, the source ensemble, and
warm start, which hands the history to a warm-starter plugin."""

from __future__ import annotations

from engine.transfer.guided import GuidedSampler
from engine.transfer.history import History, load_history
from engine.transfer.portfolio import ranked_portfolio
from engine.transfer.space import NEAR_DUPLICATE, ConfigSpace, conform_params
from engine.transfer.surrogate import SourceEnsemble
from engine.transfer.warmstart import warm_start_study

__all__ = [
    "NEAR_DUPLICATE",
    "ConfigSpace",
    "GuidedSampler",
    "History",
    "SourceEnsemble",
    "conform_params",
    "load_history",
    "ranked_portfolio",
    "warm_start_study",
]
