"""Task families: distributions over few-shot tasks, each a support set and a query set.

A :class:`TaskFamily` owns three disjoint, seeded pools of tasks (``meta_train``, ``meta_val``,
``meta_test``) and samples batches of episodes from them with a caller's :class:`torch.Generator`, so
every draw is reproducible. Families follow the same hyperparameter contract as strategies and updaters
(:class:`engine.configurable.Configurable`): ``__init__`` stores options, ``get_params`` reads them back.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from engine.configurable import Configurable
from engine.errors import TaskDataError
from engine.task import TaskKind

if TYPE_CHECKING:
    import torch

__all__ = [
    "POOLS",
    "Episode",
    "EpisodeBatch",
    "FamilyError",
    "FamilyInfo",
    "ParameterBounds",
    "Pool",
    "TaskFamily",
    "check_int",
    "check_pool",
    "pool_generator",
]

Pool = Literal["meta_train", "meta_val", "meta_test"]
POOLS: tuple[Pool, ...] = ("meta_train", "meta_val", "meta_test")


class FamilyError(TaskDataError, ValueError):
    """A task family's options or data cannot make the tasks asked for.

    Args:
        family: The family's name.
        key: The option (or data column) that is wrong, such as ``k_shot``.
        message: What is wrong and how to fix it.
    """

    def __init__(self, family: str, key: str, message: str) -> None:
        self.family = family
        self.key = key
        super().__init__(f"task family {family!r}: {key}: {message}")


@dataclass(frozen=True)
class FamilyInfo:
    """What a meta-strategy needs to know to build its network for a family, and what adapting θ to
    new raw rows needs to know of the family's inputs (saved with θ).

    Attributes:
        name: The family's name.
        kind: ``"regression"`` (targets of shape ``(n, 1)``) or ``"classification"`` (labels
            ``0..n_way-1`` of shape ``(n,)``).
        input_shape: Shape of one input, e.g. ``(1,)`` for the sinusoid or ``(1, 8, 8)`` for digits.
        n_outputs: Width of the network's output: 1 for regression, ``n_way`` for classification.
        input_columns: For a family built from a table, the raw input columns in input order (flattened
            input values); empty when the inputs have no names.
        input_mean: With ``input_std``, the standardisation of a family that hands out
            ``(raw - input_mean) / input_std`` per input value (the meta-train rows' mean and deviation,
            the deviation 1 where it is 0); both empty when inputs are the raw values.
        input_std: See ``input_mean``.
        target_mean: With ``target_std``, the standardisation of a regression family that hands out
            ``(raw - target_mean) / target_std`` as targets (the meta-train rows' mean and deviation):
            θ predicts in those units, and adapting it to raw rows maps support targets in and
            predictions back. 0 and 1 when targets are the raw values.
        target_std: See ``target_mean``.
    """

    name: str
    kind: TaskKind
    input_shape: tuple[int, ...]
    n_outputs: int
    input_columns: tuple[str, ...] = ()
    input_mean: tuple[float, ...] = ()
    input_std: tuple[float, ...] = ()
    target_mean: float = 0.0
    target_std: float = 1.0

    def __post_init__(self) -> None:
        width = math.prod(self.input_shape)
        for key in ("input_columns", "input_mean", "input_std"):
            if len(getattr(self, key)) not in (0, width):
                raise ValueError(
                    f"FamilyInfo {self.name!r}: {key} has {len(getattr(self, key))} values; give one per "
                    f"input value ({width}, shape {self.input_shape}) or none"
                )
        if len(self.input_mean) != len(self.input_std):
            raise ValueError(f"FamilyInfo {self.name!r}: give input_mean and input_std together")
        if not all(math.isfinite(s) and s > 0 for s in self.input_std):
            raise ValueError(f"FamilyInfo {self.name!r}: input_std must be finite and positive")
        if not (math.isfinite(self.target_mean) and math.isfinite(self.target_std) and self.target_std > 0):
            raise ValueError(
                f"FamilyInfo {self.name!r}: target_mean must be finite and target_std finite and positive"
            )


@dataclass(frozen=True)
class ParameterBounds:
    """An option of a family that a competence map may explore, with the values the family accepts.

    Attributes:
        low: Smallest accepted value.
        high: Largest accepted value (both inclusive, finite).
        integer: Values are integers (``k_shot``, ``n_way``).
        log: A sampler should spread values on a log scale (needs ``low > 0``).
        description: What a value means, for listings and messages.
    """

    low: float
    high: float
    integer: bool = False
    log: bool = False
    description: str = ""

    def check(self, family: str, key: str, value: object) -> float | int:
        """``value`` if it lies within the bounds (an integer where one is wanted); else raise
        :class:`FamilyError` naming ``key``."""
        kind = "an integer" if self.integer else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise FamilyError(
                family, key, f"must be {kind} from {self.low:g} to {self.high:g}, got {value!r}"
            )
        if self.integer and int(value) != value:
            raise FamilyError(
                family, key, f"must be an integer from {self.low:g} to {self.high:g}, got {value!r}"
            )
        if not self.low <= value <= self.high:
            raise FamilyError(
                family,
                key,
                f"{value!r} is outside the values the family accepts, {self.low:g} to {self.high:g}",
            )
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class Episode:
    """One few-shot task: adapt on the support set, score on the query set.

    Attributes:
        support_x: Support inputs, shape ``(n_support, *input_shape)``, ``float32``.
        support_y: Support targets: ``(n_support, 1)`` floats or ``(n_support,)`` ``int64`` labels.
        query_x: Query inputs, shape ``(n_query, *input_shape)``.
        query_y: Query targets, shaped like ``support_y``.
        kind: ``"regression"`` or ``"classification"``.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    kind: TaskKind


@dataclass(frozen=True)
class EpisodeBatch:
    """A meta-batch of episodes of the same shape, stacked along a leading task dimension.

    Attributes:
        support_x: ``(n_tasks, n_support, *input_shape)``.
        support_y: ``(n_tasks, n_support, 1)`` floats or ``(n_tasks, n_support)`` labels.
        query_x: ``(n_tasks, n_query, *input_shape)``.
        query_y: ``(n_tasks, n_query, 1)`` or ``(n_tasks, n_query)``.
        kind: ``"regression"`` or ``"classification"``.
        n_way: Classes per episode (classification), else 0.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    kind: TaskKind
    n_way: int = 0

    def __len__(self) -> int:
        return int(self.support_x.shape[0])

    def task(self, i: int) -> Episode:
        """The ``i``-th episode of the batch."""
        return Episode(self.support_x[i], self.support_y[i], self.query_x[i], self.query_y[i], self.kind)

    def to(self, dtype: torch.dtype) -> EpisodeBatch:
        """The batch with floating-point tensors cast to ``dtype`` (labels stay ``int64``)."""

        def cast(t: torch.Tensor) -> torch.Tensor:
            return t.to(dtype) if t.is_floating_point() else t

        return EpisodeBatch(
            cast(self.support_x),
            cast(self.support_y),
            cast(self.query_x),
            cast(self.query_y),
            self.kind,
            self.n_way,
        )


def check_int(family: str, key: str, value: object, minimum: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer >= ``minimum``; else raise :class:`FamilyError`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise FamilyError(family, key, f"must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise FamilyError(family, key, f"must be >= {minimum}, got {value!r}")
    return int(value)


def check_pool(family: str, pool: str) -> Pool:
    """``pool`` if it names one of :data:`POOLS`; else raise :class:`FamilyError`."""
    if pool not in POOLS:
        raise FamilyError(family, "pool", f"unknown pool {pool!r}; choose one of {POOLS}")
    return pool


def pool_generator(generator: torch.Generator, seed: int, pool: Pool) -> torch.Generator:
    """A generator for one draw from ``pool``: one number from ``generator`` mixed with seed and pool.

    Mixing in the pool keeps pools apart even when a caller hands the same generator state to draws
    from two pools; mixing in the family's seed makes two seeds give two families.
    """
    import numpy as np
    import torch

    draw = int(torch.randint(0, 2**62, (1,), generator=generator))
    entropy = [draw, int(seed) & (2**63 - 1), POOLS.index(pool)]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


class TaskFamily(Configurable, ABC):
    """Base class of task families (a plugin kind): a seeded distribution over few-shot tasks.

    Subclasses store their options in ``__init__`` (no work there), check them and build their pools
    lazily, and implement :meth:`info` and :meth:`sample`. The three pools must be disjoint: a
    classification family splits its classes (or tasks) between them, so meta-test classes are never
    seen in meta-training; a family with a continuous task distribution draws each pool's tasks from
    independent streams, which are disjoint with probability one.

    Attributes:
        name: Registry name (``sinusoid``, ``digits``, ``csv``).
        description: One line for listings.
        path_options: Options that name files (``("path",)`` for ``csv``): a relative path in a spec
            resolves against the spec's folder, as a task source's does. A resumed search compares the
            data (:meth:`data_fingerprint`), not where it lies.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    path_options: ClassVar[tuple[str, ...]] = ()

    def explorable(self) -> dict[str, ParameterBounds]:
        """The options a competence map may explore, each with the values the family accepts.

        Each is one number per task distribution (a range option such as the sinusoid's amplitude is
        explored as a single value, see :meth:`explored_options`). Bounds may depend on the other
        options (``n_way`` up to the meta-test pool's classes). None by default.
        """
        return {}

    def explored_options(self, values: Mapping[str, float | int]) -> dict[str, Any]:
        """The family options that give explored ``values`` (checked already); override to map a value
        onto an option of another shape, e.g. an amplitude ``a`` onto the range ``(a, a)``."""
        return dict(values)

    def explore(self, values: Mapping[str, Any]) -> TaskFamily:
        """A copy of the family with the explored options set to ``values``, the other options kept.

        Raises:
            FamilyError: A name is not explorable, or a value is outside its :meth:`explorable`
                bounds; the error names the option.
        """
        bounds = self.explorable()
        checked: dict[str, float | int] = {}
        for key, value in values.items():
            if key not in bounds:
                known = ", ".join(bounds) or "none"
                raise FamilyError(self.name, key, f"is not an explorable option; explorable: {known}")
            checked[key] = bounds[key].check(self.name, key, value)
        return self.with_options(self.explored_options(checked))

    def with_options(self, options: Mapping[str, Any]) -> TaskFamily:
        """A copy of the family with ``options`` over its own (say ``{"n_way": 20}`` for meta-training
        episodes); ``TypeError`` for an option the family does not take."""
        return type(self)(**{**self.get_params(), **options})

    def data_fingerprint(self) -> str | None:
        """A digest of the data the family reads beyond its options (a user's file), or ``None`` when
        its options determine its tasks. A meta search refuses to resume when it changed, as a per-task
        search refuses a task whose data changed. Called after :meth:`info` succeeded."""
        return None

    @abstractmethod
    def info(self) -> FamilyInfo:
        """The family's kind, input shape and output width; raises :class:`FamilyError` on bad options."""

    @abstractmethod
    def sample(
        self, pool: Pool, n_tasks: int, generator: torch.Generator, *, query_size: int | None = None
    ) -> EpisodeBatch:
        """Draw ``n_tasks`` episodes from ``pool``, using only ``generator`` for randomness.

        Args:
            pool: ``meta_train``, ``meta_val`` or ``meta_test``.
            n_tasks: Episodes in the batch, >= 1.
            generator: Source of every random number of the draw (on the CPU).
            query_size: Query examples per episode (per class for classification), overriding the
                family's own option: evaluation protocols use more query points than training.

        Raises:
            FamilyError: An option or argument cannot give the tasks asked for; the message names it.
        """
