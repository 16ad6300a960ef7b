"""Meta-features: a fixed-length numeric description of a task, used to find similar tasks.

The engine computes them once per task and stores them; warm starting and zero-shot recommendation
compare tasks by them. Every value is a finite float: where a feature is undefined for a task (class
entropy of a regression task, skewness of a constant column) it takes the neutral value in the table, and
``is_classification`` tells the two kinds apart.

Statistical features use a seeded subsample of at most :data:`MAX_STAT_ROWS` rows; feature-feature
correlation uses at most :data:`MAX_CORRELATION_COLUMNS` seeded columns; landmarkers use at most
:data:`MAX_LANDMARK_ROWS` seeded rows and 3-fold cross-validation (stratified for classification), with
features standardised on each training fold. The same dataset and seed always give the same values.

=========================== ================================================================ ===========
Key                         Meaning                                                          Undefined
=========================== ================================================================ ===========
n_samples                   Rows
log_n_samples               ``ln(n_samples)``
n_features                  Columns
log_n_features              ``ln(n_features)``
n_classes                   Classes                                                          0 (regr.)
samples_per_feature         ``n_samples / n_features``
log_samples_per_feature     ``ln(n_samples / n_features)`` (negative for wide data)
is_classification           1 for classification, 0 for regression
frac_binary_features        Fraction of columns with exactly two distinct values
frac_categorical_features   Fraction of columns of whole numbers with 2 to 10 distinct values
frac_constant_features      Fraction of columns with a single value
skewness_mean               Mean skewness of the non-constant columns                        0
skewness_std                Standard deviation of those skewnesses                           0
kurtosis_mean               Mean excess kurtosis of the non-constant columns                 0
kurtosis_std                Standard deviation of those kurtoses                             0
feature_correlation_mean    Mean absolute Pearson correlation between pairs of columns       0
target_correlation_mean     Mean absolute correlation of columns with the target             0 (class.)
target_skewness             Skewness of the target                                           0 (class.)
class_entropy               Class entropy divided by ``ln(n_classes)``, in [0, 1]            0 (regr.)
class_ratio_min_max         Rows of the rarest class / rows of the commonest class           0 (regr.)
landmark_1nn                1-nearest-neighbour score                                        see below
landmark_linear             Logistic regression (classification) / ridge (regression) score  see below
landmark_stump              Depth-1 decision tree score                                      see below
=========================== ================================================================ ===========

Landmarker scores are out-of-fold accuracy for classification and out-of-fold R² for regression (0 when
the target is constant), clipped to [-1, 1]. A training fold with a single class predicts that class.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from engine.task import Dataset

__all__ = [
    "FEATURE_NAMES",
    "MAX_CORRELATION_COLUMNS",
    "MAX_LANDMARK_ROWS",
    "MAX_STAT_ROWS",
    "compute_meta_features",
    "meta_feature_vector",
]

FEATURE_NAMES: tuple[str, ...] = (
    "n_samples",
    "log_n_samples",
    "n_features",
    "log_n_features",
    "n_classes",
    "samples_per_feature",
    "log_samples_per_feature",
    "is_classification",
    "frac_binary_features",
    "frac_categorical_features",
    "frac_constant_features",
    "skewness_mean",
    "skewness_std",
    "kurtosis_mean",
    "kurtosis_std",
    "feature_correlation_mean",
    "target_correlation_mean",
    "target_skewness",
    "class_entropy",
    "class_ratio_min_max",
    "landmark_1nn",
    "landmark_linear",
    "landmark_stump",
)
"""The meta-feature keys, in the stable order of :func:`meta_feature_vector`."""

MAX_STAT_ROWS = 5000
MAX_CORRELATION_COLUMNS = 50
MAX_LANDMARK_ROWS = 500
_N_FOLDS = 3
_MAX_CATEGORY_LEVELS = 10


def compute_meta_features(dataset: Dataset, *, seed: int = 0) -> dict[str, float]:
    """Compute every meta-feature of ``dataset``.

    Args:
        dataset: The task's full data.
        seed: Seeds the row and column subsamples and the cross-validation folds.

    Returns:
        One finite float per key of :data:`FEATURE_NAMES`, in that order.
    """
    rng = np.random.default_rng(seed)
    X, y = dataset.X, dataset.y
    n, d = X.shape
    is_classification = dataset.kind == "classification"
    values: dict[str, float] = {
        "n_samples": float(n),
        "log_n_samples": math.log(n),
        "n_features": float(d),
        "log_n_features": math.log(d),
        "n_classes": float(dataset.n_classes),
        "samples_per_feature": n / d,
        "log_samples_per_feature": math.log(n / d),
        "is_classification": float(is_classification),
    }
    rows = _subsample(n, MAX_STAT_ROWS, rng)
    values.update(_statistical(X[rows], y[rows], is_classification, rng))
    values.update(_class_balance(y, dataset.n_classes) if is_classification else {})
    landmark_rows = _subsample(n, MAX_LANDMARK_ROWS, rng)
    values.update(_landmarkers(X[landmark_rows], y[landmark_rows], is_classification, rng))
    return {name: _finite(values.get(name, 0.0)) for name in FEATURE_NAMES}


def meta_feature_vector(features: Mapping[str, float]) -> np.ndarray:
    """The values of ``features`` as a ``float64`` vector in :data:`FEATURE_NAMES` order.

    Raises:
        ValueError: A key of :data:`FEATURE_NAMES` is missing (the features were computed by an older
            version; recompute them with :func:`compute_meta_features`), or a value is not a finite
            number (a stored value that was edited or damaged: it would make every distance NaN).
    """
    missing = [name for name in FEATURE_NAMES if name not in features]
    if missing:
        raise ValueError(
            f"meta-features lack {missing}; recompute them with compute_meta_features (stored values "
            f"may come from an older version)"
        )
    values = [features[name] for name in FEATURE_NAMES]
    bad = [
        f"{name}={value!r}"
        for name, value in zip(FEATURE_NAMES, values, strict=True)
        if not isinstance(value, numbers.Real) or not math.isfinite(value)
    ]
    if bad:
        raise ValueError(
            f"meta-features hold values that are not finite numbers ({', '.join(bad)}); recompute them "
            "with compute_meta_features (stored values may have been edited or damaged)"
        )
    return np.array(values, dtype=np.float64)


def _finite(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _subsample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``n`` rows."""
    if n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def _standardise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns scaled to mean 0 and std 1, and a mask of the columns that are not constant."""
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    varying = std > 1e-12 * (1.0 + np.abs(mean))
    z = (values[:, varying] - mean[varying]) / std[varying]
    return z, varying


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    return (float(values.mean()), float(values.std())) if values.size else (0.0, 0.0)


def _statistical(
    X: np.ndarray, y: np.ndarray, is_classification: bool, rng: np.random.Generator
) -> dict[str, float]:
    n = X.shape[0]
    ordered = np.sort(X, axis=0)
    distinct = 1 + np.count_nonzero(np.diff(ordered, axis=0), axis=0)
    whole = np.all(np.round(X) == X, axis=0)
    z, varying = _standardise(X)
    skewness = (z**3).mean(axis=0)
    kurtosis = (z**4).mean(axis=0) - 3.0
    skew_mean, skew_std = _mean_std(skewness)
    kurt_mean, kurt_std = _mean_std(kurtosis)
    values = {
        "frac_binary_features": float(np.mean(distinct == 2)),
        "frac_categorical_features": float(
            np.mean(whole & (distinct >= 2) & (distinct <= _MAX_CATEGORY_LEVELS))
        ),
        "frac_constant_features": float(np.mean(~varying)),
        "skewness_mean": skew_mean,
        "skewness_std": skew_std,
        "kurtosis_mean": kurt_mean,
        "kurtosis_std": kurt_std,
        "feature_correlation_mean": 0.0,
    }
    m = z.shape[1]
    if m >= 2:
        cols = (
            np.sort(rng.choice(m, size=MAX_CORRELATION_COLUMNS, replace=False))
            if m > MAX_CORRELATION_COLUMNS
            else np.arange(m)
        )
        corr = z[:, cols].T @ z[:, cols] / n
        upper = np.triu_indices(len(cols), k=1)
        values["feature_correlation_mean"] = float(np.clip(np.abs(corr[upper]).mean(), 0.0, 1.0))
    if not is_classification:
        zy, y_varies = _standardise(y.reshape(-1, 1))
        if y_varies[0]:
            values["target_skewness"] = float((zy**3).mean())
            if m:
                values["target_correlation_mean"] = float(
                    np.clip(np.abs(z.T @ zy[:, 0] / n).mean(), 0.0, 1.0)
                )
    return values


def _class_balance(y: np.ndarray, n_classes: int) -> dict[str, float]:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    entropy = float(-(p * np.log(p)).sum())
    return {
        "class_entropy": entropy / math.log(n_classes),
        "class_ratio_min_max": float(counts.min() / counts.max()),
    }


def _fold_ids(y: np.ndarray, is_classification: bool, rng: np.random.Generator) -> np.ndarray:
    """Fold number of each row: classes dealt round-robin over the folds, or a shuffled deal."""
    folds = np.empty(len(y), dtype=np.int64)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if is_classification else [np.arange(len(y))]
    offset = 0
    for members in groups:
        shuffled = rng.permutation(members)
        folds[shuffled] = (np.arange(len(shuffled)) + offset) % _N_FOLDS
        offset += len(shuffled)
    return folds


class _NearestNeighbour:
    """1-nearest-neighbour by Euclidean distance (ties: the first training row), in plain numpy."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> _NearestNeighbour:
        self.X_, self.y_ = X, y
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        distances = (X**2).sum(axis=1)[:, None] - 2.0 * X @ self.X_.T + (self.X_**2).sum(axis=1)[None, :]
        return np.asarray(self.y_[np.argmin(distances, axis=1)])


def _landmark_models(is_classification: bool) -> dict[str, Callable[[], Any]]:
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if is_classification:
        return {
            "landmark_1nn": _NearestNeighbour,
            "landmark_linear": lambda: LogisticRegression(max_iter=100),
            "landmark_stump": lambda: DecisionTreeClassifier(max_depth=1, random_state=0),
        }
    return {
        "landmark_1nn": _NearestNeighbour,
        "landmark_linear": lambda: Ridge(alpha=1.0),
        "landmark_stump": lambda: DecisionTreeRegressor(max_depth=1, random_state=0),
    }


def _landmarkers(
    X: np.ndarray, y: np.ndarray, is_classification: bool, rng: np.random.Generator
) -> dict[str, float]:
    folds = _fold_ids(y, is_classification, rng)
    predictions = {name: np.zeros(len(y), dtype=np.float64) for name in _landmark_models(is_classification)}
    for fold in range(_N_FOLDS):
        test = folds == fold
        train = ~test
        if not test.any() or not train.any():
            continue
        mean = X[train].mean(axis=0)
        std = X[train].std(axis=0)
        std[std == 0] = 1.0
        X_train, X_test = (X[train] - mean) / std, (X[test] - mean) / std
        single_class = is_classification and len(np.unique(y[train])) < 2
        for name, make in _landmark_models(is_classification).items():
            if single_class:
                predictions[name][test] = y[train][0]
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence warnings on tiny folds do not matter here
                model = make().fit(X_train, y[train])
            predictions[name][test] = model.predict(X_test)
    return {name: _score(y, predicted, is_classification) for name, predicted in predictions.items()}


def _score(y: np.ndarray, predicted: np.ndarray, is_classification: bool) -> float:
    if is_classification:
        return float(np.mean(predicted == y))
    total = float(((y - y.mean()) ** 2).sum())
    if total <= 0.0:
        return 0.0
    r2 = 1.0 - float(((y - predicted) ** 2).sum()) / total
    return float(np.clip(r2, -1.0, 1.0))
