"""The ``synthetic`` task source: generated tasks of a chosen size, dimension and number of classes.

The same options and seed always generate the same data. A spec entry looks like::

    [[tasks]]
    source = "synthetic"
    generator = "classification"
    n_samples = 800
    n_classes = 4
    seed = 3
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engine import Dataset, Option, TaskDataError, TaskSource

__all__ = ["SyntheticSource"]

_GENERATOR_HELP = {
    "classification": "sklearn make_classification; noise = fraction of labels flipped (default 0.01)",
    "regression": "sklearn make_regression (linear); noise = std of target noise (default 10)",
    "friedman1": "sklearn make_friedman1 (n_features >= 5); noise = std of target noise (default 1)",
    "friedman2": "sklearn make_friedman2 (4 features); noise = std of target noise (default 0)",
    "friedman3": "sklearn make_friedman3 (4 features); noise = std of target noise (default 0)",
    "moons": "two interleaving half circles (2 features, 2 classes); noise = point std (default 0.2)",
    "circles": "two concentric circles (2 features, 2 classes); noise = point std (default 0.1)",
    "blobs": "Gaussian blobs, one per class (default 3 classes, 2 features); noise = blob std (default 1)",
}
_DEFAULT_NOISE = {
    "classification": 0.01,
    "regression": 10.0,
    "friedman1": 1.0,
    "friedman2": 0.0,
    "friedman3": 0.0,
    "moons": 0.2,
    "circles": 0.1,
    "blobs": 1.0,
}
_CLASSIFIERS = frozenset({"classification", "moons", "circles", "blobs"})
_FIXED_FEATURES = {"friedman2": 4, "friedman3": 4, "moons": 2, "circles": 2}
_APPLIES_TO = {
    "n_informative": frozenset({"classification", "regression"}),
    "n_classes": frozenset({"classification", "blobs"}),
}
_NAME_PARTS = (("n_samples", "n"), ("n_features", "d"), ("n_informative", "i"), ("n_classes", "k"))


class SyntheticSource(TaskSource):
    """Generated tasks of a chosen size, dimension and number of classes; the same seed, the same data."""

    name: ClassVar[str] = "synthetic"
    description: ClassVar[str] = "Generated tasks: " + ", ".join(_GENERATOR_HELP)
    options: ClassVar[Mapping[str, Option]] = {
        "generator": Option(
            str, help="Which generator (default 'classification')", choices=tuple(_GENERATOR_HELP)
        ),
        "n_samples": Option(int, help="Rows, 10 to 1,000,000 (default 500)"),
        "n_features": Option(int, help="Columns (default 20; fixed for friedman2/3, moons, circles)"),
        "n_informative": Option(int, help="Informative columns (classification, regression)"),
        "n_classes": Option(int, help="Classes (classification: default 2, blobs: default 3)"),
        "noise": Option((int, float), help="Generator-specific noise level (see the generator list)"),
        "seed": Option(int, help="Random seed (default 0)"),
    }

    def default_name(self, options: Mapping[str, Any]) -> str:
        """``synthetic-<generator>[-n<rows>][-d<cols>][-i<informative>][-k<classes>][-noise<x>]-<seed>``."""
        parts = [f"synthetic-{options.get('generator', 'classification')}"]
        parts += [f"{short}{options[key]}" for key, short in _NAME_PARTS if key in options]
        if "noise" in options:
            parts.append(f"noise{options['noise']}")
        parts.append(str(options.get("seed", 0)))
        return "-".join(parts)

    def load(self, options: Mapping[str, Any], base_dir: Path) -> Dataset:
        """Generate the dataset the options describe.

        Raises:
            TaskDataError: An option is out of range or does not apply to the chosen generator.
        """
        from sklearn import datasets as gen

        generator = options.get("generator", "classification")
        if generator not in _GENERATOR_HELP:
            raise TaskDataError(
                f"synthetic source: unknown generator {generator!r}; "
                f"choose one of: {', '.join(_GENERATOR_HELP)}"
            )
        where = f"synthetic source ({generator})"
        for key, generators in _APPLIES_TO.items():
            if key in options and generator not in generators:
                raise TaskDataError(
                    f"{where}: {key} applies only to generators {sorted(generators)}; remove it"
                )
        n = _int_option(where, options, "n_samples", 500, 10, 1_000_000)
        fixed = _FIXED_FEATURES.get(generator)
        if fixed is not None and options.get("n_features", fixed) != fixed:
            raise TaskDataError(
                f"{where}: always has {fixed} features; remove n_features or change generator"
            )
        d = fixed or _int_option(where, options, "n_features", 2 if generator == "blobs" else 20, 1, 10_000)
        k = _int_option(where, options, "n_classes", 3 if generator == "blobs" else 2, 2, 100)
        if generator in _CLASSIFIERS and n < 2 * k:
            raise TaskDataError(f"{where}: {n} rows are too few for {k} classes; use n_samples >= {2 * k}")
        noise = float(options.get("noise", _DEFAULT_NOISE[generator]))
        if not math.isfinite(noise) or noise < 0 or (generator == "classification" and noise > 1):
            limit = "between 0 and 1 (a fraction of labels)" if generator == "classification" else ">= 0"
            raise TaskDataError(f"{where}: noise must be {limit}, got {noise}")
        seed = _int_option(where, options, "seed", 0, 0, 2**32 - 1)

        if generator == "classification":
            default_informative = min(d, max(math.ceil(math.log2(k)) + 1, d // 2))
            n_inf = _int_option(where, options, "n_informative", default_informative, 1, d)
            if 2**n_inf < k:
                raise TaskDataError(
                    f"{where}: n_informative = {n_inf} cannot separate {k} classes; "
                    f"use n_informative >= {math.ceil(math.log2(k))}"
                )
            X, y = gen.make_classification(
                n_samples=n,
                n_features=d,
                n_informative=n_inf,
                n_redundant=min(2, d - n_inf),
                n_classes=k,
                n_clusters_per_class=2 if 2**n_inf >= 2 * k else 1,
                flip_y=noise,
                random_state=seed,
            )
        elif generator == "regression":
            n_inf = _int_option(where, options, "n_informative", min(d, 10), 1, d)
            X, y = gen.make_regression(
                n_samples=n, n_features=d, n_informative=n_inf, noise=noise, random_state=seed
            )
        elif generator == "friedman1":
            if d < 5:
                raise TaskDataError(f"{where}: needs n_features >= 5, got {d}")
            X, y = gen.make_friedman1(n_samples=n, n_features=d, noise=noise, random_state=seed)
        elif generator == "friedman2":
            X, y = gen.make_friedman2(n_samples=n, noise=noise, random_state=seed)
        elif generator == "friedman3":
            X, y = gen.make_friedman3(n_samples=n, noise=noise, random_state=seed)
        elif generator == "moons":
            X, y = gen.make_moons(n_samples=n, noise=noise, random_state=seed)
        elif generator == "circles":
            X, y = gen.make_circles(n_samples=n, noise=noise, factor=0.5, random_state=seed)
        else:
            if noise <= 0:
                raise TaskDataError(f"{where}: noise is the blobs' standard deviation and must be > 0")
            X, y = gen.make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=noise, random_state=seed)
        is_classifier = generator in _CLASSIFIERS
        return Dataset(
            name=self.default_name(options),
            X=X,
            y=y,
            kind="classification" if is_classifier else "regression",
            class_names=tuple(str(c) for c in range(int(np.max(y)) + 1)) if is_classifier else (),
            description=f"synthetic task: {_GENERATOR_HELP[generator]}; seed {seed}",
        )


def _int_option(where: str, options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TaskDataError(f"{where}: {key} must be a whole number from {low} to {high}, got {value!r}")
    return value
