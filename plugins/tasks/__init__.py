"""Built-in task sources: scikit-learn's bundled datasets, CSV files and generated tasks.

Each source is registered through the same hook an installed plugin uses, and lives in its own module,
whose docstring shows its spec entry and rules:

* :mod:`plugins.tasks.sklearn`: :class:`SklearnSource` (``source = "sklearn"``);
* :mod:`plugins.tasks.csv`: :class:`CsvSource` (``source = "csv"``);
* :mod:`plugins.tasks.synthetic`: :class:`SyntheticSource` (``source = "synthetic"``).
"""

from __future__ import annotations

import engine
from engine import Registry, TaskSource
from plugins.tasks.csv import MAX_AUTO_CLASSES, MAX_CATEGORY_LEVELS, MISSING_TOKENS, NUMERIC_SHARE, CsvSource
from plugins.tasks.sklearn import SklearnSource
from plugins.tasks.synthetic import SyntheticSource

__all__ = [
    "MAX_AUTO_CLASSES",
    "MAX_CATEGORY_LEVELS",
    "MISSING_TOKENS",
    "NUMERIC_SHARE",
    "CsvSource",
    "SklearnSource",
    "SyntheticSource",
    "stratagem_register_task_sources",
]


@engine.hookimpl
def stratagem_register_task_sources(registry: Registry[TaskSource]) -> None:
    """Register the built-in ``sklearn``, ``csv`` and ``synthetic`` task sources."""
    for source in (SklearnSource(), CsvSource(), SyntheticSource()):
        registry.add(source)
