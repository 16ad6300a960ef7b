"""Tasks: the data a strategy learns from, how sources deliver it, and how it is split.

A :class:`TaskSource` plugin turns options from a study spec into a :class:`Dataset`. The engine
fingerprints the dataset (same data, same task), splits it once into train / validation / test with a
seed derived from the fingerprint, and stores both, so every strategy ever tried on a task is compared on
the same rows.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from engine.errors import TaskDataError

__all__ = [
    "Dataset",
    "Option",
    "Split",
    "TaskInfo",
    "TaskKind",
    "TaskSource",
    "fingerprint",
    "make_split",
]

TaskKind = Literal["classification", "regression"]
TASK_KINDS: tuple[TaskKind, ...] = ("classification", "regression")


@dataclass(frozen=True)
class Dataset:
    """A supervised learning task's data, as a task source delivers it.

    Attributes:
        name: Short name, used as the task's name unless the spec gives another.
        X: Numeric features, shape ``(n_samples, n_features)``, finite ``float64``.
        y: Targets: class codes ``0..k-1`` (``int64``) for classification, ``float64`` for regression.
        kind: ``"classification"`` or ``"regression"``.
        feature_names: One name per column of ``X``.
        class_names: For classification, the original label of each class code.
        description: Where the data came from, for people.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    kind: TaskKind
    feature_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        X = np.ascontiguousarray(self.X, dtype=np.float64)
        if X.ndim != 2:
            raise TaskDataError(
                f"task {self.name!r}: X must be 2-D (samples x features), got shape {X.shape}"
            )
        n, d = X.shape
        if n < 10:
            raise TaskDataError(f"task {self.name!r}: needs at least 10 rows to split, got {n}")
        if d < 1:
            raise TaskDataError(f"task {self.name!r}: has no feature columns")
        if not np.isfinite(X).all():
            raise TaskDataError(
                f"task {self.name!r}: features contain NaN or infinite values; "
                "drop or impute those rows before loading"
            )
        if self.kind not in TASK_KINDS:
            raise TaskDataError(f"task {self.name!r}: kind must be one of {TASK_KINDS}, got {self.kind!r}")
        y = np.asarray(self.y)
        if y.shape != (n,):
            raise TaskDataError(f"task {self.name!r}: y must have shape ({n},), got {y.shape}")
        if self.kind == "classification":
            y = y.astype(np.int64)
            k = int(y.max()) + 1
            if y.min() < 0 or len(np.unique(y)) != k:
                raise TaskDataError(
                    f"task {self.name!r}: class codes must be 0..k-1 with every class present"
                )
            if k < 2:
                raise TaskDataError(f"task {self.name!r}: classification needs at least 2 classes, got {k}")
            if self.class_names and len(self.class_names) != k:
                raise TaskDataError(
                    f"task {self.name!r}: {len(self.class_names)} class names for {k} classes"
                )
        else:
            y = y.astype(np.float64)
            if not np.isfinite(y).all():
                raise TaskDataError(f"task {self.name!r}: target contains NaN or infinite values")
        names = tuple(self.feature_names) or tuple(f"x{i}" for i in range(d))
        if len(names) != d:
            raise TaskDataError(f"task {self.name!r}: {len(names)} feature names for {d} columns")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return int(self.y.max()) + 1 if self.kind == "classification" else 0

    def info(self) -> TaskInfo:
        return TaskInfo(
            kind=self.kind,
            n_samples=self.n_samples,
            n_features=self.n_features,
            n_classes=self.n_classes,
        )


@dataclass(frozen=True)
class TaskInfo:
    """What a strategy or updater may know about a task when it builds its search space and model.

    ``n_outputs`` is the width of the model's last layer: one logit per class for classification (two
    for a binary task), one value for regression.
    """

    kind: TaskKind
    n_samples: int
    n_features: int
    n_classes: int = 0

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.kind == "classification" else 1


@dataclass(frozen=True)
class Option:
    """One option a task source accepts in a spec's ``[[tasks]]`` entry."""

    type: type | tuple[type, ...]
    required: bool = False
    help: str = ""
    choices: tuple[Any, ...] = ()


class TaskSource(ABC):
    """A plugin-supplied way of loading tasks (bundled datasets, CSV files, generators, ...).

    Subclasses set :attr:`name` and :attr:`options`; the engine checks a spec entry's keys and value
    types against :attr:`options` before calling :meth:`load`.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Option]] = {}

    @abstractmethod
    def load(self, options: Mapping[str, Any], base_dir: Path) -> Dataset:
        """Load one dataset.

        Args:
            options: The spec entry's keys other than ``source`` (already checked against
                :attr:`options`).
            base_dir: Directory that relative paths in ``options`` are relative to (the spec's folder).

        Raises:
            TaskDataError: The data cannot be used; the message says why and how to fix it.
        """

    def default_name(self, options: Mapping[str, Any]) -> str:
        """Name a task gets when the spec entry has no ``name``."""
        return str(options.get("dataset") or self.name)


def fingerprint(dataset: Dataset) -> str:
    """Stable identity of a task: a SHA-256 over its kind, features and targets (not its name)."""
    h = hashlib.sha256()
    h.update(dataset.kind.encode())
    h.update(np.asarray(dataset.X.shape, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(dataset.X, dtype="<f8").tobytes())
    y = dataset.y.astype("<i8" if dataset.kind == "classification" else "<f8")
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class Split:
    """Row indices of the train, validation and test parts of a task."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    seed: int = 0
    fractions: tuple[float, float, float] = field(default=(0.6, 0.2, 0.2))

    def to_json(self) -> dict[str, Any]:
        return {
            "train": self.train.tolist(),
            "validation": self.validation.tolist(),
            "test": self.test.tolist(),
            "seed": self.seed,
            "fractions": list(self.fractions),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Split:
        return cls(
            train=np.asarray(data["train"], dtype=np.int64),
            validation=np.asarray(data["validation"], dtype=np.int64),
            test=np.asarray(data["test"], dtype=np.int64),
            seed=int(data["seed"]),
            fractions=tuple(data["fractions"]),
        )


def make_split(
    dataset: Dataset, *, seed: int, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
) -> Split:
    """Split rows into train / validation / test, stratified by class for classification.

    Every part gets at least one row (and, for classification, every class gets a training row
    wherever it has one to spare).
    """
    from sklearn.model_selection import train_test_split

    train_f, val_f, test_f = fractions
    if min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be positive and sum to 1, got {fractions}")
    idx = np.arange(dataset.n_samples)
    strat = dataset.y if dataset.kind == "classification" else None
    if strat is not None and np.bincount(strat).min() < 3:
        strat = None  # too few members of some class to stratify three ways
    rest, test = train_test_split(idx, test_size=test_f, random_state=seed, stratify=strat)
    strat_rest = strat[rest] if strat is not None else None
    train, val = train_test_split(
        rest, test_size=val_f / (train_f + val_f), random_state=seed + 1, stratify=strat_rest
    )
    return Split(
        train=np.sort(train), validation=np.sort(val), test=np.sort(test), seed=seed, fractions=fractions
    )
