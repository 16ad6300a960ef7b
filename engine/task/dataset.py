"""A task's data: :class:`Dataset` as a source delivers it, :class:`TaskInfo` its shape, and its fingerprint.

The engine fingerprints a dataset (same data, same task) so that every strategy ever tried on a task is
found again, in any search.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from engine.errors import TaskDataError
from engine.task.encoding import RowEncoding

__all__ = [
    "MAX_ABS_VALUE",
    "TASK_KINDS",
    "Dataset",
    "TaskInfo",
    "TaskKind",
    "fingerprint",
    "magnitude_problems",
    "out_of_range_cell",
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
        encoding: How a raw row (a CSV file's cells) becomes a row of ``X``: the raw columns in order,
            one-hot levels included. Sources that read raw tables set it, so that an exported model can
            predict on new raw rows; ``None`` means one numeric column per feature name
            (see :attr:`row_encoding`).
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    kind: TaskKind
    feature_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] = ()
    description: str = ""
    encoding: RowEncoding | None = None

    def __post_init__(self) -> None:
        X = np.ascontiguousarray(self.X, dtype=np.float64)
        if X.ndim != 2:
            raise TaskDataError(
                f"task {self.name!r}: X must be 2-D (samples x features), got shape {X.shape}"
            )
        n, d = X.shape
        if n < 10:
            raise TaskDataError(
                f"task {self.name!r}: has {n} row(s); a task needs at least 10 (its rows are split into "
                "training, validation and test rows, and its meta-features describe them): add rows"
            )
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
            y = _class_codes(self.name, y)
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
        if self.encoding is not None and self.encoding.width != d:
            raise TaskDataError(
                f"task {self.name!r}: its encoding describes {self.encoding.width} columns of X, X has {d}"
            )
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))

    @property
    def row_encoding(self) -> RowEncoding:
        """The :attr:`encoding`, or one numeric column per feature name when the source gave none."""
        return self.encoding or RowEncoding.numeric(self.feature_names)

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


def fingerprint(dataset: Dataset) -> str:
    """Stable identity of a task: a SHA-256 over its kind, features and targets (not its name)."""
    h = hashlib.sha256()
    h.update(dataset.kind.encode())
    h.update(np.asarray(dataset.X.shape, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(dataset.X, dtype="<f8").tobytes())
    y = dataset.y.astype("<i8" if dataset.kind == "classification" else "<f8")
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:32]


def _class_codes(name: str, y: np.ndarray) -> np.ndarray:
    """``y`` as integer class codes, refusing labels that casting would change (0.5 -> 0, "cat")."""
    fix = "encode the labels as codes 0..k-1 first, e.g. numpy.unique(y, return_inverse=True)[1]"
    if y.dtype.kind in "iub":
        return y.astype(np.int64)
    try:
        values = y.astype(np.float64)
    except (TypeError, ValueError):
        what = f"class codes must be integers, got {y.dtype} labels"
        raise TaskDataError(f"task {name!r}: {what}; {fix}") from None
    odd = ~(np.isfinite(values) & (values == np.round(values)))
    if odd.any():
        raise TaskDataError(
            f"task {name!r}: class codes must be whole numbers, got {y[np.argmax(odd)].item()!r}; {fix}"
        )
    return values.astype(np.int64)


MAX_ABS_VALUE = 1e30
"""Larger feature or target values overflow float32 statistics (meta-features, losses): refused."""


def magnitude_problems(dataset: Dataset) -> list[str]:
    """Values of ``dataset`` beyond ±:data:`MAX_ABS_VALUE` (or not finite), one message per column,
    then one for a regression target; every part that computes statistics of a task refuses them."""
    out: list[str] = []
    with np.errstate(all="ignore"):
        largest = np.abs(dataset.X).max(axis=0) if dataset.X.size else np.zeros(0)
    for j in np.flatnonzero(~(largest <= MAX_ABS_VALUE)):
        out.append(
            f"column {dataset.feature_names[j]!r} has a value of magnitude {largest[j]:.3g}; values beyond "
            f"{MAX_ABS_VALUE:.0e} overflow the statistics: rescale it"
        )
    if dataset.kind == "regression" and dataset.y.size and not np.abs(dataset.y).max() <= MAX_ABS_VALUE:
        out.append(f"the target has values beyond {MAX_ABS_VALUE:.0e}, which overflow the losses: rescale it")
    return out


def out_of_range_cell(X: np.ndarray, columns: Sequence[str]) -> str | None:
    """The first cell of ``X`` (rows x columns) that is not finite or beyond ±:data:`MAX_ABS_VALUE`, as
    ``row R, column C: V is ...`` (``C`` from ``columns``, else its position from 1); ``None`` if none."""
    with np.errstate(invalid="ignore"):
        huge = np.argwhere(~(np.abs(X) <= MAX_ABS_VALUE))
    if not huge.size:
        return None
    r, j = (int(i) for i in huge[0])
    column = repr(columns[j]) if j < len(columns) else str(j + 1)
    how = "is not a finite number" if not np.isfinite(X[r, j]) else f"is beyond ±{MAX_ABS_VALUE:.0e}"
    return f"row {r + 1}, column {column}: {X[r, j]:.6g} {how}"
