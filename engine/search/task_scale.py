"""Putting tasks on one scale for the cross-task objective: 0 for perfect predictions, 1 for trivial ones.

Each task's evaluator value becomes a loss relative to a trivial predictor (class priors, or the mean
target) and to perfect predictions on the same rows, so tasks judged by different evaluators, in either
direction, can be averaged: the seed's meta-objective ``L(θ) = Σ_i 𝓛_i / N``. Also here: the task shape
a cross-task configuration is sampled for, and the seeded order in which tasks are raced.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.errors import StratagemError
from engine.evaluator import Evaluator
from engine.task import Dataset, TaskInfo, TaskKind

__all__ = ["LOSS_RANGE", "TaskScale", "racing_order", "representative_info", "task_scale"]

LOSS_RANGE = (0.0, 2.0)
"""Normalised task losses are clipped to this range (0 perfect, 1 trivial)."""


@dataclass(frozen=True)
class TaskScale:
    """A task's reference values under its evaluator: a trivial predictor's and perfect predictions'.

    Attributes:
        trivial: The evaluator's value of the class priors (or the mean) on the judged rows.
        perfect: The evaluator's value of exact predictions on the same rows.
    """

    trivial: float
    perfect: float

    def loss(self, value: float) -> float:
        """``1 - (value - trivial) / (perfect - trivial)`` clipped to :data:`LOSS_RANGE`.

        A non-finite ``value`` gets the upper bound. When the rows cannot tell perfect from trivial
        (``perfect == trivial``) the loss is 0 for the perfect value and 1 otherwise.
        """
        low, high = LOSS_RANGE
        if not math.isfinite(value):
            return high
        span = self.perfect - self.trivial
        if abs(span) < 1e-12:
            return low if value == self.perfect else 1.0
        return float(min(high, max(low, 1.0 - (value - self.trivial) / span)))


def task_scale(
    dataset: Dataset, evaluator: Evaluator, train_idx: np.ndarray, eval_idx: np.ndarray
) -> TaskScale:
    """Judge a trivial and a perfect predictor on rows ``eval_idx`` of ``dataset``.

    Args:
        dataset: The task's data.
        evaluator: The task's evaluator (score or error).
        train_idx: Rows the trivial predictor learns from (class priors, or the mean target).
        eval_idx: Rows it is judged on.

    Raises:
        ValueError: ``train_idx`` or ``eval_idx`` is empty.
        StratagemError: The evaluator fails on the reference predictions or gives a value that is not a
            finite number: no loss could be put on the scale (every value would map to one end).
    """
    if len(train_idx) == 0 or len(eval_idx) == 0:
        raise ValueError("task_scale needs at least one training and one evaluated row")
    y = dataset.y[eval_idx]
    if dataset.kind == "classification":
        k = dataset.n_classes
        priors = np.bincount(dataset.y[train_idx], minlength=k) / len(train_idx)
        trivial_out: np.ndarray = np.tile(priors, (len(y), 1))
        perfect_out: np.ndarray = np.eye(k)[y]
    else:
        trivial_out = np.full(len(y), float(dataset.y[train_idx].mean()))
        perfect_out = y.astype(np.float64)
    values = []
    for what, out in (
        ("a trivial predictor (class priors, or the mean target)", trivial_out),
        ("exact predictions", perfect_out),
    ):
        try:
            value = float(evaluator(y, out))
        except Exception as exc:
            raise StratagemError(
                f"evaluator {evaluator.name!r} fails on {what} of task {dataset.name!r}, which the "
                f"cross-task objective scales losses by: {type(exc).__name__}: {exc}"
            ) from exc
        if not math.isfinite(value):
            raise StratagemError(
                f"evaluator {evaluator.name!r} gives {value} for {what} of task {dataset.name!r}; the "
                "cross-task objective scales each task's loss between those values and needs them finite: "
                "use another evaluator for this task kind"
            )
        values.append(value)
    return TaskScale(trivial=values[0], perfect=values[1])


def representative_info(datasets: Sequence[Dataset], train_rows: Sequence[int]) -> TaskInfo:
    """The task shape a cross-task configuration is sampled for.

    The most common kind (classification on a tie), the median number of training rows and of
    features over all tasks, and the largest number of classes among tasks of that kind.
    """
    kinds = Counter(d.kind for d in datasets)
    kind: TaskKind = "classification" if kinds["classification"] >= kinds["regression"] else "regression"
    classes = [d.n_classes for d in datasets if d.kind == kind]
    return TaskInfo(
        kind=kind,
        n_samples=int(np.median(train_rows)),
        n_features=int(np.median([d.n_features for d in datasets])),
        n_classes=max(classes) if kind == "classification" else 0,
    )


def racing_order(keys: Sequence[str], seed: int) -> list[str]:
    """The seeded order in which every trial of a cross-task study visits the tasks."""
    rng = np.random.default_rng(seed)
    return [keys[i] for i in rng.permutation(len(keys))]
