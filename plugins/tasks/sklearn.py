"""The ``sklearn`` task source: the small datasets bundled with scikit-learn (nothing is downloaded).

A spec entry looks like::

    [[tasks]]
    source = "sklearn"
    dataset = "iris"
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from engine import Dataset, Option, TaskDataError, TaskKind, TaskSource

__all__ = ["SklearnSource"]

_SKLEARN_DATASETS: dict[str, tuple[str, TaskKind]] = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}


class SklearnSource(TaskSource):
    """The small datasets bundled with scikit-learn; nothing is downloaded."""

    name: ClassVar[str] = "sklearn"
    description: ClassVar[str] = "Datasets bundled with scikit-learn: " + ", ".join(_SKLEARN_DATASETS)
    options: ClassVar[Mapping[str, Option]] = {
        "dataset": Option(str, required=True, help="Which bundled dataset", choices=tuple(_SKLEARN_DATASETS)),
    }

    def load(self, options: Mapping[str, Any], base_dir: Path) -> Dataset:
        """Load the bundled dataset named by ``options["dataset"]``.

        Raises:
            TaskDataError: The dataset name is not one of the bundled datasets.
        """
        dataset = options.get("dataset")
        if dataset not in _SKLEARN_DATASETS:
            raise TaskDataError(
                f"sklearn source: unknown dataset {dataset!r}; choose one of: {', '.join(_SKLEARN_DATASETS)}"
            )
        import sklearn.datasets

        loader_name, kind = _SKLEARN_DATASETS[dataset]
        bunch = getattr(sklearn.datasets, loader_name)()
        class_names = tuple(str(c) for c in bunch.target_names) if kind == "classification" else ()
        return Dataset(
            name=dataset,
            X=bunch.data,
            y=bunch.target,
            kind=kind,
            feature_names=tuple(str(f) for f in bunch.feature_names),
            class_names=class_names,
            description=f"scikit-learn bundled dataset {dataset!r} (sklearn.datasets.{loader_name})",
        )
