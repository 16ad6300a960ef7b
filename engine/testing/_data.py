"""Small real tasks and reference evaluators that the conformance kit trains and judges on."""

from __future__ import annotations

from functools import cache
from typing import ClassVar, Literal

import numpy as np

from engine.evaluator import Evaluator
from engine.study.training import make_problem, prepare
from engine.task import Dataset, TaskInfo, TaskKind, make_split
from engine.updater import TrainingProblem

__all__ = ["REFERENCE_INFOS", "reference_evaluator", "tiny_dataset", "tiny_problem"]

REFERENCE_INFOS: tuple[TaskInfo, ...] = (
    TaskInfo("classification", n_samples=150, n_features=4, n_classes=3),
    TaskInfo("classification", n_samples=2000, n_features=30, n_classes=2),
    TaskInfo("regression", n_samples=150, n_features=10),
    TaskInfo("regression", n_samples=5000, n_features=3),
)
"""Task shapes the kit asks strategies and updaters about: multi-class, binary and regression."""


@cache
def tiny_dataset(kind: TaskKind) -> Dataset:
    """A small bundled dataset of ``kind``: all 150 rows of iris, or the first 150 rows of diabetes.

    Both come with scikit-learn (no download). The result is cached; treat it as read-only.
    """
    if kind == "classification":
        from sklearn.datasets import load_iris

        iris = load_iris()
        return Dataset("iris", iris.data, iris.target, "classification")
    if kind == "regression":
        from sklearn.datasets import load_diabetes

        diabetes = load_diabetes()
        return Dataset("diabetes150", diabetes.data[:150], diabetes.target[:150], "regression")
    raise ValueError(f"unknown task kind {kind!r}; expected 'classification' or 'regression'")


class _MeanTrueProbability(Evaluator):
    """Mean probability of the true class: a smooth classification score for the kit."""

    name: ClassVar[str] = "kit_mean_true_probability"
    basis: ClassVar[Literal["score", "error"]] = "score"
    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"classification"})

    def __call__(self, y_true: np.ndarray, output: np.ndarray) -> float:
        return float(np.mean(output[np.arange(len(y_true)), y_true]))


class _CrossEntropy(Evaluator):
    """Mean ``-log p(true class)``: a smooth classification error for the kit."""

    name: ClassVar[str] = "kit_cross_entropy"
    basis: ClassVar[Literal["score", "error"]] = "error"
    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"classification"})

    def __call__(self, y_true: np.ndarray, output: np.ndarray) -> float:
        p = np.clip(output[np.arange(len(y_true)), y_true], 1e-12, 1.0)
        return float(-np.mean(np.log(p)))


class _NegativeMSE(Evaluator):
    """Negative mean squared error: a regression score for the kit."""

    name: ClassVar[str] = "kit_negative_mse"
    basis: ClassVar[Literal["score", "error"]] = "score"
    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"regression"})

    def __call__(self, y_true: np.ndarray, output: np.ndarray) -> float:
        return -float(np.mean((y_true - output) ** 2))


class _MSE(Evaluator):
    """Mean squared error: a regression error for the kit."""

    name: ClassVar[str] = "kit_mse"
    basis: ClassVar[Literal["score", "error"]] = "error"
    kinds: ClassVar[frozenset[TaskKind]] = frozenset({"regression"})

    def __call__(self, y_true: np.ndarray, output: np.ndarray) -> float:
        return float(np.mean((y_true - output) ** 2))


def reference_evaluator(kind: TaskKind, basis: Literal["score", "error"] = "error") -> Evaluator:
    """A smooth evaluator of ``kind`` and ``basis`` that does not depend on any plugin.

    Classification: mean true-class probability (score) or cross-entropy (error). Regression:
    negative MSE (score) or MSE (error).
    """
    table: dict[tuple[str, str], type[Evaluator]] = {
        ("classification", "score"): _MeanTrueProbability,
        ("classification", "error"): _CrossEntropy,
        ("regression", "score"): _NegativeMSE,
        ("regression", "error"): _MSE,
    }
    try:
        return table[kind, basis]()
    except KeyError:
        raise ValueError(
            f"no reference evaluator for kind={kind!r}, basis={basis!r}; "
            "kind is 'classification' or 'regression', basis is 'score' or 'error'"
        ) from None


def tiny_problem(
    kind: TaskKind, evaluator: Evaluator | None = None, *, seed: int = 0, device: str = "cpu"
) -> TrainingProblem:
    """A :class:`TrainingProblem` on :func:`tiny_dataset`, built exactly as the engine builds one.

    The dataset is split 60/20/20 with seed 0 and standardised on the training rows by
    :func:`engine.study.training.prepare`; validation uses ``evaluator`` (default: the reference error of
    ``kind``) on the validation rows.

    Args:
        kind: Task kind.
        evaluator: How validation is judged.
        seed: Seed of the problem's generator.
        device: Torch device of the tensors.
    """
    dataset = tiny_dataset(kind)
    split = make_split(dataset, seed=0)
    prepared = prepare(dataset, split.train, device=device)
    return make_problem(dataset, prepared, split.validation, evaluator or reference_evaluator(kind), seed)
