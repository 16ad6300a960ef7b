"""Built-in task families: sinusoid regression (Finn et al. 2017) and N-way K-shot digits.

Both draw every episode from a generator made by :func:`engine.meta.pool_generator` out of the caller's
generator, the family's ``seed`` and the pool, so draws are reproducible and pools stay apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar

import numpy as np
import torch

from engine import (
    EpisodeBatch,
    FamilyError,
    FamilyInfo,
    ParameterBounds,
    Pool,
    TaskFamily,
    check_int,
    check_pool,
    pool_generator,
)

__all__ = ["DIGIT_CLASSES", "Digits", "Sinusoid"]


MAX_MAGNITUDE = 1e6
"""Largest magnitude of a sinusoid range or noise: far beyond it, squared errors overflow float32."""


def _check_range(family: str, key: str, value: object, low: float | None = None) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise FamilyError(family, key, f"must be a pair (low, high) of numbers, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and a <= b):
        raise FamilyError(family, key, f"must be finite with low <= high, got {value!r}")
    if low is not None and a < low:
        raise FamilyError(family, key, f"must not go below {low}, got {value!r}")
    if max(abs(a), abs(b)) > MAX_MAGNITUDE:
        raise FamilyError(
            family,
            key,
            f"must lie within ±{MAX_MAGNITUDE:.0e} (the losses overflow beyond), got {value!r}; rescale",
        )
    return a, b


class Sinusoid(TaskFamily):
    """K-shot regression of ``y = A sin(x - phase)``, ``A``, ``phase`` and ``x`` uniform (Finn et al. 2017).

    The three pools draw tasks from independent streams of the same distribution (disjoint with
    probability one). A competence map may explore ``amplitude`` and ``phase`` (one value ``a`` gives
    tasks of amplitude exactly ``a``), ``k_shot`` and ``noise``.

    Args:
        amplitude: Range of ``A``.
        phase: Range of the phase.
        x_range: Range of the inputs.
        k_shot: Support points per task.
        k_query: Query points per task (evaluation usually asks for more through ``query_size``).
        seed: Seed of the family's streams.
        noise: Standard deviation of Gaussian noise on the support targets (the query targets stay
            clean, so the query MSE is the error against the true function).
    """

    name: ClassVar[str] = "sinusoid"
    description: ClassVar[str] = "y = A sin(x - phase), K-shot regression (Finn et al. 2017)."

    def __init__(
        self,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
        k_shot: int = 10,
        k_query: int = 10,
        seed: int = 0,
        noise: float = 0.0,
    ) -> None:
        self.amplitude = amplitude
        self.phase = phase
        self.x_range = x_range
        self.k_shot = k_shot
        self.k_query = k_query
        self.seed = seed
        self.noise = noise

    def info(self) -> FamilyInfo:
        self._check()
        return FamilyInfo(self.name, "regression", (1,), 1)

    def explorable(self) -> dict[str, ParameterBounds]:
        return {
            "amplitude": ParameterBounds(0.0, 20.0, description="amplitude A of every task"),
            "phase": ParameterBounds(0.0, 2 * math.pi, description="phase of every task"),
            "k_shot": ParameterBounds(1, 200, integer=True, description="support points per task"),
            "noise": ParameterBounds(0.0, 10.0, description="std of the noise on support targets"),
        }

    def explored_options(self, values: Mapping[str, float | int]) -> dict[str, Any]:
        ranges = ("amplitude", "phase")
        return {k: (float(v), float(v)) if k in ranges else v for k, v in values.items()}

    def _check(self) -> None:
        _check_range(self.name, "amplitude", self.amplitude, low=0.0)
        _check_range(self.name, "phase", self.phase)
        _check_range(self.name, "x_range", self.x_range)
        check_int(self.name, "k_shot", self.k_shot)
        check_int(self.name, "k_query", self.k_query)
        ok = isinstance(self.noise, int | float) and not isinstance(self.noise, bool)
        if not (ok and math.isfinite(self.noise) and 0 <= self.noise <= MAX_MAGNITUDE):
            raise FamilyError(
                self.name, "noise", f"must be a number from 0 to {MAX_MAGNITUDE:.0e}, got {self.noise!r}"
            )

    def sample(
        self, pool: Pool, n_tasks: int, generator: torch.Generator, *, query_size: int | None = None
    ) -> EpisodeBatch:
        self._check()
        gen = pool_generator(generator, self.seed, check_pool(self.name, pool))
        n = check_int(self.name, "n_tasks", n_tasks)
        k = int(self.k_shot)
        q = check_int(self.name, "query_size", self.k_query if query_size is None else query_size)
        (a0, a1), (p0, p1), (x0, x1) = (
            _check_range(self.name, key, getattr(self, key)) for key in ("amplitude", "phase", "x_range")
        )
        amp = a0 + (a1 - a0) * torch.rand(n, 1, 1, generator=gen)
        phase = p0 + (p1 - p0) * torch.rand(n, 1, 1, generator=gen)
        x = x0 + (x1 - x0) * torch.rand(n, k + q, 1, generator=gen)
        y = amp * torch.sin(x - phase)
        support_y = y[:, :k]
        if self.noise:
            support_y = support_y + float(self.noise) * torch.randn(n, k, 1, generator=gen)
        return EpisodeBatch(x[:, :k], support_y, x[:, k:], y[:, k:], "regression")


DIGIT_CLASSES = 40
"""Classes of :class:`Digits`: each (digit 0-9, rotation by 0/90/180/270 degrees) is one class."""


@cache
def _digit_images() -> tuple[np.ndarray, ...]:
    """The images of each of the 40 (digit, rotation) classes, ``float32`` in [0, 1], ``(n, 1, 8, 8)``."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)
    classes: list[np.ndarray] = []
    for digit in range(10):
        base = images[data.target == digit]
        for quarter in range(4):
            classes.append(np.ascontiguousarray(np.rot90(base, k=quarter, axes=(1, 2)))[:, None])
    return tuple(classes)


class Digits(TaskFamily):
    """N-way K-shot classification on scikit-learn's bundled 8x8 digits, the Omniglot construction.

    Each (digit, rotation by 0/90/180/270 degrees) is a class (:data:`DIGIT_CLASSES` in all, about
    180 images each). A seeded permutation of the classes gives ``train_classes`` to ``meta_train``,
    ``val_classes`` to ``meta_val`` and the rest to ``meta_test``, so meta-test classes are never seen
    in meta-training. An episode picks ``n_way`` classes of its pool, labels them ``0..n_way-1`` in a
    random order, and draws ``k_shot`` support and ``k_query`` query images of each.

    Args:
        n_way: Classes per episode.
        k_shot: Support images per class.
        k_query: Query images per class.
        train_classes: Classes in the meta-training pool.
        val_classes: Classes in the meta-validation pool (the rest go to meta-test); 0 leaves it
            empty, for a final meta-training on the meta-train and meta-validation classes together
            (``train_classes=32, val_classes=0`` keeps the default split's meta-test classes).
        seed: Seed of the class split and of the episode streams.
    """

    name: ClassVar[str] = "digits"
    description: ClassVar[str] = "N-way K-shot (digit, rotation) classes of sklearn's digits."

    def __init__(
        self,
        n_way: int = 5,
        k_shot: int = 1,
        k_query: int = 15,
        train_classes: int = 24,
        val_classes: int = 8,
        seed: int = 0,
    ) -> None:
        self.n_way = n_way
        self.k_shot = k_shot
        self.k_query = k_query
        self.train_classes = train_classes
        self.val_classes = val_classes
        self.seed = seed

    def info(self) -> FamilyInfo:
        """Images of 1x8x8 pixels; adapting θ takes the 64 pixel values as scikit-learn ships them
        (0 to 16, row by row), which the family hands out divided by 16."""
        self.pool_classes("meta_train")
        return FamilyInfo(
            self.name,
            "classification",
            (1, 8, 8),
            check_int(self.name, "n_way", self.n_way, 2),
            input_columns=tuple(f"pixel_{row}_{col}" for row in range(8) for col in range(8)),
            input_mean=(0.0,) * 64,
            input_std=(16.0,) * 64,
        )

    def explorable(self) -> dict[str, ParameterBounds]:
        """``n_way`` up to the meta-test classes, ``k_shot`` up to what the smallest of them leaves
        beside ``k_query`` query images."""
        classes = self.pool_classes("meta_test")
        smallest = min(len(_digit_images()[c]) for c in classes)
        k_query = check_int(self.name, "k_query", self.k_query)
        return {
            "n_way": ParameterBounds(2, len(classes), integer=True, description="classes per episode"),
            "k_shot": ParameterBounds(
                1, max(1, smallest - k_query), integer=True, description="support images per class"
            ),
        }

    def pool_classes(self, pool: Pool) -> tuple[int, ...]:
        """The class ids (``digit * 4 + quarter_turns``) of ``pool``; raises on bad split options."""
        n_train = check_int(self.name, "train_classes", self.train_classes)
        n_val = check_int(self.name, "val_classes", self.val_classes, 0)
        if n_train + n_val >= DIGIT_CLASSES:
            raise FamilyError(
                self.name,
                "train_classes",
                f"train_classes + val_classes = {n_train + n_val} leaves no meta-test classes out of "
                f"{DIGIT_CLASSES}; lower them",
            )
        order = np.random.default_rng(int(self.seed)).permutation(DIGIT_CLASSES)
        bounds = {"meta_train": (0, n_train), "meta_val": (n_train, n_train + n_val)}
        lo, hi = bounds.get(check_pool(self.name, pool), (n_train + n_val, DIGIT_CLASSES))
        return tuple(sorted(int(c) for c in order[lo:hi]))

    def sample(
        self, pool: Pool, n_tasks: int, generator: torch.Generator, *, query_size: int | None = None
    ) -> EpisodeBatch:
        classes = self.pool_classes(pool)
        gen = pool_generator(generator, self.seed, pool)
        n = check_int(self.name, "n_tasks", n_tasks)
        n_way = check_int(self.name, "n_way", self.n_way, 2)
        k = check_int(self.name, "k_shot", self.k_shot)
        q = check_int(self.name, "query_size", self.k_query if query_size is None else query_size)
        if n_way > len(classes):
            raise FamilyError(
                self.name,
                "n_way",
                f"n_way={n_way} is above the {len(classes)} classes of the {pool} pool; "
                "lower n_way or give the pool more classes (train_classes, val_classes)",
            )
        images = _digit_images()
        smallest = min(len(images[c]) for c in classes)
        if k + q > smallest:
            raise FamilyError(
                self.name,
                "k_shot",
                f"k_shot + k_query = {k + q} is more than the {smallest} images of the "
                f"smallest class in the {pool} pool; lower k_shot or k_query",
            )
        xs = np.empty((n, n_way, k + q, 1, 8, 8), dtype=np.float32)
        for t in range(n):
            chosen = torch.randperm(len(classes), generator=gen)[:n_way].tolist()
            for way, ci in enumerate(chosen):
                pics = images[classes[ci]]
                xs[t, way] = pics[torch.randperm(len(pics), generator=gen)[: k + q].numpy()]
        x = torch.from_numpy(xs)
        labels = torch.arange(n_way).view(1, n_way, 1).expand(n, n_way, k + q)
        support_x, query_x = x[:, :, :k].flatten(1, 2), x[:, :, k:].flatten(1, 2)
        support_y, query_y = labels[:, :, :k].flatten(1, 2), labels[:, :, k:].flatten(1, 2)
        return EpisodeBatch(
            support_x, support_y.contiguous(), query_x, query_y.contiguous(), "classification", n_way
        )
