"""Stratagem's core engine: plugin-based strategy search on Optuna, persisted to a study database."""

from __future__ import annotations

from typing import Any

from engine.configuration import Configuration
from engine.errors import (
    DuplicateNameError,
    PluginError,
    SpecError,
    StorageError,
    StratagemError,
    TaskDataError,
    UnknownNameError,
)
from engine.evaluator import Evaluator
from engine.plugin.hookspecs import hookimpl
from engine.plugin.registry import Registry
from engine.settings import VERSION as __version__
from engine.strategy import Strategy
from engine.task import Dataset, Option, TaskInfo, TaskKind, TaskSource
from engine.updater import FitResult, Report, TrainingProblem, Updater
from engine.vocabulary import DONE_STATES
from engine.warmstarter import (
    Candidate,
    Source,
    SourceTrial,
    SourceUse,
    WarmStart,
    WarmStartContext,
    WarmStarter,
    WarmStartRecord,
    WarmTarget,
)

_LAZY = {
    "run": "engine.search",
    "SearchResult": "engine.search",
    "best": "engine.results",
    "tasks": "engine.results",
    "searches": "engine.results",
    "BestStrategy": "engine.results",
    "defaults": "engine.results",
    "BestDefault": "engine.results",
    "recommend": "engine.recommendation",
    "Recommendation": "engine.recommendation",
    "load_spec": "engine.spec",
    "SearchSpec": "engine.spec",
    "TaskSpec": "engine.spec",
    "EvaluationSpec": "engine.spec",
    "SourceEnsemble": "engine.transfer",
    "ConfigSpace": "engine.transfer",
    "NEAR_DUPLICATE": "engine.transfer",
    "conform_params": "engine.transfer",
}


def __getattr__(name: str) -> Any:
    """Import the heavier parts of the API (Optuna, SQLAlchemy) on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


__all__ = [
    "DONE_STATES",
    "NEAR_DUPLICATE",
    "BestDefault",
    "BestStrategy",
    "Candidate",
    "ConfigSpace",
    "Configuration",
    "Dataset",
    "DuplicateNameError",
    "EvaluationSpec",
    "Evaluator",
    "FitResult",
    "Option",
    "PluginError",
    "Recommendation",
    "Registry",
    "Report",
    "SearchResult",
    "SearchSpec",
    "Source",
    "SourceEnsemble",
    "SourceTrial",
    "SourceUse",
    "SpecError",
    "StorageError",
    "StratagemError",
    "Strategy",
    "TaskDataError",
    "TaskInfo",
    "TaskKind",
    "TaskSource",
    "TaskSpec",
    "TrainingProblem",
    "UnknownNameError",
    "Updater",
    "WarmStart",
    "WarmStartContext",
    "WarmStartRecord",
    "WarmStarter",
    "WarmTarget",
    "__version__",
    "best",
    "conform_params",
    "defaults",
    "hookimpl",
    "load_spec",
    "recommend",
    "run",
    "searches",
    "tasks",
]
