"""The fixed train / validation / test split of a task, made once with a seed from its fingerprint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.task.dataset import Dataset

__all__ = ["Split", "make_split"]


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
