"""Similarity of tasks by their stored meta-features.

Each feature of :data:`DISTANCE_FEATURES` is scaled by its inter-quartile range over every stored task of
the kind plus the target (its range, if that is 0), per-feature differences are clipped to 3, and the
distance is their root mean square. A source's prior weight is ``exp(-(d / h)^2 / 2)``, ``h`` the median
source distance, normalised to sum 1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from engine.task.metafeatures import FEATURE_NAMES, meta_feature_vector

__all__ = ["DISTANCE_FEATURES", "meta_distances", "similarity_weights"]

DISTANCE_FEATURES: tuple[str, ...] = tuple(
    f
    for f in FEATURE_NAMES
    if f not in ("n_samples", "n_features", "samples_per_feature", "is_classification")
)
"""Meta-features the task distance compares (raw counts enter through their logarithms)."""


def meta_distances(
    target: Mapping[str, float],
    others: Sequence[Mapping[str, float]],
    population: Iterable[Mapping[str, float]],
) -> np.ndarray:
    """Normalised meta-feature distance from ``target`` to each of ``others`` (see the module docs).

    Args:
        target: The target task's meta-features.
        others: The tasks to measure the distance to.
        population: Every known task of the kind; with ``target`` and ``others`` it sets each feature's
            scale. Entries lacking a feature are ignored.

    Raises:
        ValueError: ``target`` or one of ``others`` lacks a meta-feature.
    """
    cols = [FEATURE_NAMES.index(f) for f in DISTANCE_FEATURES]
    t = meta_feature_vector(target)[cols]
    o = np.array([meta_feature_vector(m)[cols] for m in others]).reshape(len(others), len(cols))
    pop = [t, *o]
    for m in population:
        try:
            pop.append(meta_feature_vector(m)[cols])
        except ValueError:
            continue
    pop_arr = np.array(pop)
    q25, q75 = np.percentile(pop_arr, [25, 75], axis=0)
    span = pop_arr.max(axis=0) - pop_arr.min(axis=0)
    scale = np.where(q75 - q25 > 1e-12, q75 - q25, np.where(span > 1e-12, span, 1.0))
    diffs = np.clip(np.abs(o - t) / scale, 0.0, 3.0)
    return np.asarray(np.sqrt((diffs**2).mean(axis=1)))


def similarity_weights(distances: np.ndarray) -> np.ndarray:
    """Prior source weights ``exp(-(d / h)^2 / 2)`` with ``h`` the median distance, summing to 1."""
    if distances.size == 0:
        return distances
    h = float(np.median(distances))
    if h <= 1e-12:
        h = float(distances.max()) or 1.0
    w = np.exp(-0.5 * (distances / h) ** 2)
    return np.asarray(w / w.sum())
