"""Stratagem's core engine: plugin-based strategy search on Optuna, persisted to a study database."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

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
from engine.hookspecs import hookimpl
from engine.registry import Registry
from engine.strategy import Strategy
from engine.task import Dataset, Option, TaskInfo, TaskSource
from engine.updater import FitResult, TrainingProblem, Updater

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
}


def __getattr__(name: str) -> Any:
    """Import the heavier parts of the API (Optuna, SQLAlchemy) on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


try:
    __version__ = version("stratagem")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "BestDefault",
    "BestStrategy",
    "Dataset",
    "DuplicateNameError",
    "EvaluationSpec",
    "Evaluator",
    "FitResult",
    "Option",
    "PluginError",
    "Recommendation",
    "Registry",
    "SearchResult",
    "SearchSpec",
    "SpecError",
    "StorageError",
    "StratagemError",
    "Strategy",
    "TaskDataError",
    "TaskInfo",
    "TaskSource",
    "TaskSpec",
    "TrainingProblem",
    "UnknownNameError",
    "Updater",
    "__version__",
    "best",
    "defaults",
    "hookimpl",
    "load_spec",
    "recommend",
    "run",
    "searches",
    "tasks",
]
