"""Warm starters: the plugin kind that seeds a new task's strategy study from other tasks' history.

The engine finds the history (:class:`Source` per other task, cross-task defaults as :class:`Candidate`)
and hands it to the warm starter named by the spec (``search.warm_start_method``) in a
:class:`WarmStartContext`; the warm starter enqueues configurations into the study and returns a
:class:`WarmStart`: the :class:`WarmStartRecord` stored on the study (and shown by ``stratagem best``)
plus optional callbacks that go on enqueuing while the study runs, and optionally a sampler wrapper that
guides later trials of the run. Built-ins: ``guided`` (the default), ``transfer`` and ``knn``
(:mod:`plugins.warm_starters`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from engine.task import TaskInfo, TaskKind

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.samplers import BaseSampler
    from optuna.trial import FrozenTrial

__all__ = [
    "Candidate",
    "Source",
    "SourceTrial",
    "SourceUse",
    "WarmStart",
    "WarmStartContext",
    "WarmStartRecord",
    "WarmStarter",
    "WarmTarget",
]


@dataclass(frozen=True)
class WarmTarget:
    """The task whose study is being warm-started.

    ``space`` holds the flat parameter distributions that the target's own plugins use (empty when
    unknown): other tasks' configurations may come from plugins with other ranges or choices, and an
    enqueued value outside the target's space fails its trial, so fit them in first
    (:func:`engine.conform_params`).
    """

    fingerprint: str
    kind: TaskKind
    meta_features: Mapping[str, float]
    evaluator: str
    strategies: tuple[str, ...]
    updaters: tuple[str, ...]
    info: TaskInfo
    space: Mapping[str, BaseDistribution] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceTrial:
    """A finished trial of a source study: flat parameters, raw values and rank within its study."""

    study: str
    number: int
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    value: float | None
    test_value: float | None
    rank: float
    complete: bool


@dataclass(frozen=True)
class Source:
    """Another task's history: every strategy study stored for one data fingerprint.

    ``search``, ``study`` and ``evaluator`` are those of its study with the most complete trials.
    """

    fingerprint: str
    task: str
    search: str
    study: str
    studies: tuple[str, ...]
    evaluator: str
    meta_features: dict[str, float]
    trials: tuple[SourceTrial, ...]

    @property
    def n_complete(self) -> int:
        return sum(t.complete for t in self.trials)

    def ranked(self) -> list[SourceTrial]:
        """Complete trials, best (highest rank) first."""
        return sorted((t for t in self.trials if t.complete), key=lambda t: (-t.rank, t.study, t.number))


@dataclass(frozen=True)
class Candidate:
    """A configuration to try, and where it was seen.

    Attributes:
        params: Flat trial parameters (``strategy``, ``<strategy>.<param>``, ``updater``, ...).
        source: Fingerprint of the task it was tried on, or ``None`` for a cross-task default.
        origin: Study and trial number it comes from, or the cross-task search it was chosen by.
        value: Its value there (the evaluator's, or the cross-task loss).
        test_value: Its test-split value there, if recorded.
        rank: Its rank-normalised value there (1 = best of that study), ``None`` for a default.
    """

    params: dict[str, Any]
    source: str | None
    origin: str
    value: float | None
    test_value: float | None
    rank: float | None


@dataclass(frozen=True)
class SourceUse:
    """One source as a warm start used it: how near it is and how much it counted."""

    task: str
    search: str
    study: str
    fingerprint: str
    distance: float
    weight: float
    n_trials: int


@dataclass(frozen=True)
class WarmStartRecord:
    """What warm start did on one study, and why; stored as the study's ``stratagem.warm_start`` attribute.

    Attributes:
        used: Whether any configuration was enqueued.
        method: The warm starter's name (empty when warm start was off).
        reason: Why it ran as it did, for people.
        sources: The sources it used, most weighted first.
        enqueued: Configurations enqueued so far.
        candidates: Candidate configurations it chose from, where it counts them.
        max_warm: Most configurations it would enqueue (``guided``: also the trials its sampler chooses).
        target_weight: Weight of the task's own trials in the last choice.
        stopped: Why it stopped enqueuing, once it has.
    """

    used: bool
    method: str = ""
    reason: str = ""
    sources: tuple[SourceUse, ...] = ()
    enqueued: int = 0
    candidates: int | None = None
    max_warm: int | None = None
    target_weight: float | None = None
    stopped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the optional fields that are unset."""
        out = asdict(self)
        out["sources"] = [asdict(s) for s in self.sources]
        return {k: v for k, v in out.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WarmStartRecord:
        """Read a stored record (unknown keys are ignored, so older and newer records both read; so are
        values of the wrong type and sources that lack a field, as in an edited or damaged database)."""
        raw = data.get("sources", ())
        sources = tuple(
            SourceUse(**{k: s[k] for k in SourceUse.__dataclass_fields__})
            for s in (raw if isinstance(raw, list | tuple) else ())
            if isinstance(s, Mapping)
            and all(_fits(s.get(k), _SOURCE_TYPES[k]) for k in SourceUse.__dataclass_fields__)
        )
        fields = {k: v for k, v in data.items() if k in _RECORD_TYPES and _fits(v, _RECORD_TYPES[k])}
        return cls(**{"used": False, **fields}, sources=sources)

    def summary(self) -> str:
        """One line for people: the method and its nearest sources, or why it did not run."""
        if not self.used:
            return self.reason or "cold start"
        names = ", ".join(s.task for s in self.sources[:3])
        more = f" +{len(self.sources) - 3}" if len(self.sources) > 3 else ""
        return f"{self.method or 'warm'}: {names}{more}"


_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "used": (bool,),
    "method": (str,),
    "reason": (str,),
    "enqueued": (int,),
    "candidates": (int,),
    "max_warm": (int,),
    "target_weight": (int, float),
    "stopped": (str,),
}
_SOURCE_TYPES: dict[str, tuple[type, ...]] = {
    "task": (str,),
    "search": (str,),
    "study": (str,),
    "fingerprint": (str,),
    "distance": (int, float),
    "weight": (int, float),
    "n_trials": (int,),
}


def _fits(value: Any, types: tuple[type, ...]) -> bool:
    """Whether a stored value has one of ``types`` (a bool is no number here)."""
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


@dataclass(frozen=True)
class WarmStart:
    """A warm starter's answer: the record to store, callbacks, and a sampler wrapper.

    Attributes:
        record: What was done, stored on the study.
        callbacks: Called after each finished trial of the run (as Optuna's ``optimize`` callbacks).
        sampler: Given the study's own sampler (the spec's ``[sampler]``), returns the sampler for the
            rest of the run, which may delegate to it. Applies to the worker that warm-started the study,
            and to other workers and resumed runs through :meth:`WarmStarter.resume`.
    """

    record: WarmStartRecord
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = field(default_factory=tuple)
    sampler: Callable[[BaseSampler], BaseSampler] | None = None


@dataclass(frozen=True)
class WarmStartContext:
    """Everything a warm starter gets.

    Attributes:
        target: The task being warm-started.
        study: Its new, empty strategy study (enqueue with ``study.enqueue_trial(params)``).
        n_trials: Trials the study is about to run.
        seed: The search's seed.
        sources: Other tasks of the same kind with history, ordered by fingerprint (never the target).
        defaults: Stored cross-task best defaults of the kind that did not involve the target.
        population: Meta-features of every stored task of the kind except the target (scales distances).
        planned: Flat parameters of every trial of the study so far, waiting (enqueued) ones included.
        persist: Stores an updated record on the study and the search's task row.
    """

    target: WarmTarget
    study: optuna.Study
    n_trials: int
    seed: int
    sources: Sequence[Source]
    defaults: Sequence[Candidate]
    population: Sequence[Mapping[str, float]]
    planned: Callable[[], list[dict[str, Any]]]
    persist: Callable[[WarmStartRecord], None]


class WarmStarter(ABC):
    """Base class of warm-start plugins: ``registry.add(MyWarmStarter())`` in
    ``stratagem_register_warm_starters``.

    Attributes:
        name: Registry name, as a spec's ``search.warm_start_method`` names it.
        description: One line for ``stratagem plugins``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def start(self, context: WarmStartContext) -> WarmStart:
        """Enqueue configurations into ``context.study`` and say what was done.

        Called once, before the study's first trial, only when the study is empty. Return a record with
        ``used=False`` and a reason when the history gives nothing to use. To guide every trial rather
        than enqueue, return a :attr:`WarmStart.sampler` that wraps the study's sampler.
        """

    def resume(self, context: WarmStartContext, record: WarmStartRecord) -> WarmStart | None:
        """Keep guiding a study that this starter warm-started in another worker or an earlier run.

        Called when a worker opens a study whose stored ``record`` names this starter and says it was
        used. It must not enqueue (the study has what :meth:`start` enqueued). Return a
        :class:`WarmStart` whose :attr:`WarmStart.sampler` guides this worker's trials too, or ``None``
        (the default) when enqueuing was all the starter did.
        """
        return None
