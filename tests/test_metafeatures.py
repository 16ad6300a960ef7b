"""Specification of task meta-features (engine.task.metafeatures)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.task import Dataset
from engine.task.metafeatures import FEATURE_NAMES, compute_meta_features, meta_feature_vector
from plugins.tasks import SklearnSource


def bundled(name: str) -> Dataset:
    return SklearnSource().load({"dataset": name}, Path("."))


def tiny_regression() -> Dataset:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 3))
    return Dataset("tiny", X, X[:, 0] * 2.0 + rng.normal(size=12), "regression")


def wide_classification() -> Dataset:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 200))
    return Dataset("wide", X, (X[:, 0] > 0).astype(int), "classification")


def assert_complete_and_finite(features: dict[str, float]) -> None:
    assert tuple(features) == FEATURE_NAMES
    bad = {k: v for k, v in features.items() if not (isinstance(v, float) and math.isfinite(v))}
    assert bad == {}


DATASETS: dict[str, Callable[[], Dataset]] = {
    "iris": lambda: bundled("iris"),
    "diabetes": lambda: bundled("diabetes"),
    "12 rows": tiny_regression,
    "20 rows x 200 columns": wide_classification,
}


@pytest.mark.parametrize("name", DATASETS)
def test_every_meta_feature_is_present_in_order_and_finite(name: str) -> None:
    assert_complete_and_finite(compute_meta_features(DATASETS[name]()))


def test_simple_features_describe_the_table_and_kind() -> None:
    features = compute_meta_features(bundled("iris"))

    assert features["n_samples"] == 150.0
    assert features["n_features"] == 4.0
    assert features["log_n_samples"] == pytest.approx(math.log(150))
    assert features["samples_per_feature"] == pytest.approx(37.5)
    assert features["n_classes"] == 3.0
    assert features["is_classification"] == 1.0


def test_balanced_classes_have_full_entropy_and_a_ratio_of_one() -> None:
    features = compute_meta_features(bundled("iris"))

    assert features["class_entropy"] == pytest.approx(1.0)
    assert features["class_ratio_min_max"] == pytest.approx(1.0)


def test_imbalanced_classes_lower_the_entropy_and_ratio() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0] * 90 + [1] * 10)
    features = compute_meta_features(Dataset("skewed", rng.normal(size=(100, 3)), y, "classification"))

    p = np.array([0.9, 0.1])
    assert features["class_entropy"] == pytest.approx(float(-(p * np.log(p)).sum() / math.log(2)))
    assert features["class_ratio_min_max"] == pytest.approx(10 / 90)


def test_regression_tasks_get_neutral_class_features_and_target_statistics() -> None:
    features = compute_meta_features(bundled("diabetes"))

    assert features["is_classification"] == 0.0
    assert features["n_classes"] == 0.0
    assert features["class_entropy"] == 0.0
    assert features["class_ratio_min_max"] == 0.0
    assert features["target_skewness"] > 0.2  # diabetes progression is right-skewed
    assert 0.1 < features["target_correlation_mean"] < 1.0


def test_classification_tasks_get_neutral_target_statistics() -> None:
    features = compute_meta_features(bundled("wine"))

    assert features["target_skewness"] == 0.0
    assert features["target_correlation_mean"] == 0.0


def test_landmarkers_score_an_easy_task_high_and_stay_in_range() -> None:
    easy = compute_meta_features(bundled("iris"))
    regression = compute_meta_features(bundled("diabetes"))

    assert easy["landmark_1nn"] > 0.85
    assert easy["landmark_linear"] > 0.85
    assert 0.3 < easy["landmark_stump"] < 0.8  # one split separates one class of three
    assert 0.3 < regression["landmark_linear"] < 0.7
    for features in (easy, regression, compute_meta_features(tiny_regression())):
        for key in ("landmark_1nn", "landmark_linear", "landmark_stump"):
            assert -1.0 <= features[key] <= 1.0


def test_landmarkers_worse_than_predicting_the_mean_are_clipped_at_minus_one() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(10, 40))
    y = rng.normal(size=10) * 1000.0  # pure noise: every landmarker's R² is below -1 here
    features = compute_meta_features(Dataset("noise", X, y, "regression"))

    assert_complete_and_finite(features)
    assert [features[k] for k in ("landmark_1nn", "landmark_linear", "landmark_stump")] == [-1.0] * 3


def test_binary_categorical_and_constant_columns_are_counted() -> None:
    rng = np.random.default_rng(3)
    n = 60
    X = np.column_stack(
        [
            rng.integers(0, 2, n),  # binary (and categorical-looking)
            rng.integers(0, 5, n),  # categorical-looking
            rng.normal(size=n),  # continuous
            np.full(n, 7.0),  # constant
        ]
    )
    features = compute_meta_features(Dataset("mixed", X, rng.normal(size=n), "regression"))

    assert features["frac_binary_features"] == pytest.approx(0.25)
    assert features["frac_categorical_features"] == pytest.approx(0.5)
    assert features["frac_constant_features"] == pytest.approx(0.25)


def test_skewness_and_correlation_reflect_the_data() -> None:
    rng = np.random.default_rng(4)
    base = rng.normal(size=400)
    X = np.column_stack([np.exp(base), np.exp(base + 0.01 * rng.normal(size=400))])
    features = compute_meta_features(Dataset("lognormal", X, rng.normal(size=400), "regression"))

    assert features["skewness_mean"] > 2.0
    assert features["feature_correlation_mean"] > 0.95


def test_wide_data_with_more_columns_than_rows_is_handled() -> None:
    features = compute_meta_features(wide_classification())

    assert features["n_features"] == 200.0
    assert features["log_samples_per_feature"] == pytest.approx(math.log(0.1))
    assert 0.0 < features["feature_correlation_mean"] < 1.0


def test_meta_features_are_deterministic_for_a_seed() -> None:
    data = bundled("digits")

    assert compute_meta_features(data, seed=3) == compute_meta_features(data, seed=3)


def test_the_vector_follows_feature_names_order() -> None:
    features = compute_meta_features(bundled("iris"))
    vector = meta_feature_vector(dict(reversed(features.items())))

    assert vector.dtype == np.float64
    assert vector.tolist() == [features[name] for name in FEATURE_NAMES]


def test_a_vector_from_incomplete_features_is_refused_naming_the_missing_keys() -> None:
    features = compute_meta_features(bundled("iris"))
    del features["landmark_stump"]

    with pytest.raises(ValueError, match=r"lack \['landmark_stump'\]; recompute"):
        meta_feature_vector(features)
