"""Warm start: seeding a new task's strategy study from other tasks' finished studies.

When a task's strategy study starts empty, :func:`warm_start_study` reads the history of other tasks of
the same kind (:func:`~engine.transfer.history.load_history`; the task's own earlier studies, in any
search, never count), hands it to the spec's warm starter (a plugin, see :mod:`engine.warmstarter`), and
stores the :class:`~engine.warmstarter.WarmStartRecord` it returns on the study and on the search's task
row, where ``stratagem best`` shows it.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from engine.storage import Database, queries
from engine.storage.optuna_adapter import planned_params
from engine.transfer.history import load_history
from engine.vocabulary import WARM_START_ATTR
from engine.warmstarter import WarmStart, WarmStartContext, WarmStarter, WarmStartRecord, WarmTarget

log = logging.getLogger("stratagem")

__all__ = ["store_record", "warm_start_study"]


def store_record(
    db: Database, study: optuna.Study, search_task_id: int | None, record: WarmStartRecord
) -> None:
    """Store ``record`` on the study (user attribute) and on the search's task row, if there is one."""
    data = record.to_dict()
    study.set_user_attr(WARM_START_ATTR, data)
    if search_task_id is not None:
        with db.session() as s:
            queries.set_warm_start(s, search_task_id, data)


def warm_start_study(
    *,
    db: Database,
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    search_task_id: int | None,
    target: WarmTarget,
    starter: WarmStarter,
    n_trials: int,
    seed: int,
    sampled: optuna.Study | None = None,
    resume: bool = False,
) -> WarmStart:
    """Let ``starter`` enqueue configurations into the empty ``study``; store and return what it did.

    If the starter returns a sampler wrapper, the sampler of ``sampled`` (the study that this worker
    samples from: ``study`` itself, or the parallel driver's in-memory mirror of it) becomes the wrapped
    sampler for the rest of this run. The strategy study's pruner does not judge later trials by the
    enqueued ones (:func:`~engine.transfer.handover.own_trials_pruner`, set where the study is opened,
    for every worker): they are the best of similar tasks, and as the pruner's reference they pruned
    nearly every later trial.

    Args:
        db: The engine's tables.
        storage: Optuna storage of the same database.
        study: The target task's new strategy study.
        search_task_id: The target's row in the search, where the record is stored too (``None``: only
            on the study).
        target: The target task.
        starter: The warm starter the spec chose.
        n_trials: Trials the study is about to run.
        seed: The search's seed.
        sampled: The study whose sampler a wrapper replaces (default ``study``).
        resume: The study may have been warm-started elsewhere (another worker, an earlier run): if its
            stored record says ``starter`` was used, let the starter keep guiding the trials sampled
            here (:meth:`WarmStarter.resume`); nothing is enqueued or stored. Otherwise the returned
            warm start does nothing.
    """
    if resume:
        if (sampled or study) in _GUIDED or type(starter).resume is WarmStarter.resume:
            return WarmStart(WarmStartRecord(False))  # guided here already, or nothing to resume: no I/O
        data = study.user_attrs.get(WARM_START_ATTR)
        record = WarmStartRecord.from_dict(data) if isinstance(data, dict) else WarmStartRecord(False)
        if not record.used or record.method != starter.name:
            return WarmStart(record)  # not this starter's study: no history read
        context = _context(db, storage, study, search_task_id, target, n_trials, seed)
        warm = _called(starter, "resume", lambda: starter.resume(context, record) or WarmStart(record))
    else:
        context = _context(db, storage, study, search_task_id, target, n_trials, seed)
        warm = _called(starter, "start", lambda: starter.start(context))
        store_record(db, study, search_task_id, warm.record)
    _guide(sampled or study, warm)
    return warm


def _called(starter: WarmStarter, method: str, call: Callable[[], Any]) -> WarmStart:
    """``call()``, a warm starter's ``method``; if it raises or returns something other than a
    :class:`WarmStart`, the study starts cold, with the reason in its record and a warning: a warm start
    only saves trials, so a plugin's bug there must not stop the search."""
    try:
        warm = call()
        if isinstance(warm, WarmStart):
            checked, problem = _checked(warm)
            if checked is not None:
                return checked
        else:
            problem = f"returned {type(warm).__name__}, not a WarmStart"
    except Exception as exc:
        problem = f"raised {type(exc).__name__}: {exc}"
    reason = f"warm starter {starter.name!r}: {method}() {problem}; the study starts cold"
    log.warning(reason)
    return WarmStart(WarmStartRecord(False, starter.name, reason))


def _checked(warm: WarmStart) -> tuple[WarmStart | None, str]:
    """A warm starter's answer with its callbacks as a tuple, or what is wrong with it (it would fail
    later, where the plugin is not named)."""
    if not isinstance(warm.record, WarmStartRecord):
        return None, f"returned a record of type {type(warm.record).__name__}, not a WarmStartRecord"
    try:
        json.dumps(warm.record.to_dict())
    except Exception as exc:
        return None, f"returned a record that cannot be stored ({type(exc).__name__}: {exc})"
    if isinstance(warm.callbacks, str | bytes) or not isinstance(warm.callbacks, Iterable):
        return None, f"returned callbacks of type {type(warm.callbacks).__name__}, not a list of callables"
    callbacks = tuple(warm.callbacks)
    if not all(callable(c) for c in callbacks):
        return None, "returned callbacks that are not all callable"
    if warm.sampler is not None and not callable(warm.sampler):
        return None, f"returned a sampler of type {type(warm.sampler).__name__}, not a callable"
    return replace(warm, callbacks=callbacks), ""


_GUIDED: weakref.WeakSet[optuna.Study] = weakref.WeakSet()
"""Studies (objects of this process) whose sampler a warm starter already wraps: a later visit of the
same study object in the same run must not wrap it twice."""


def _guide(sampled: optuna.Study, warm: WarmStart) -> None:
    if warm.sampler is not None and sampled not in _GUIDED:
        base = sampled.sampler
        wrapper = _called_sampler(warm, base)
        if wrapper is not None:
            sampled.sampler = _Guarded(wrapper, base, warm.record.method)
        _GUIDED.add(sampled)


def _called_sampler(warm: WarmStart, base: BaseSampler) -> BaseSampler | None:
    """The warm starter's sampler wrapped around ``base``, or ``None`` (with a warning) if making it fails."""
    assert warm.sampler is not None
    try:
        wrapper = warm.sampler(base)
        if isinstance(wrapper, BaseSampler):
            return wrapper
        problem = f"returned {type(wrapper).__name__}, not an Optuna sampler"
    except Exception as exc:
        problem = f"raised {type(exc).__name__}: {exc}"
    log.warning(
        "warm starter %r: its sampler %s; the study's own sampler goes on alone", warm.record.method, problem
    )
    return None


class _Guarded(BaseSampler):
    """A warm starter's sampler that, once it raises, hands every later call to the study's own sampler
    (with one warning): a warm start only saves trials, so a plugin's bug there must not stop the search."""

    def __init__(self, wrapper: BaseSampler, base: BaseSampler, method: str) -> None:
        self.wrapper, self.base, self.method = wrapper, base, method
        self.failed = False

    def _call(self, name: str, *args: Any) -> Any:
        if not self.failed:
            try:
                return getattr(self.wrapper, name)(*args)
            except Exception as exc:
                self.failed = True
                log.warning(
                    "warm starter %r: its sampler raised %s in %s: %s; the study's own sampler goes on alone",
                    self.method,
                    type(exc).__name__,
                    name,
                    exc,
                )
        return getattr(self.base, name)(*args)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        result: dict[str, BaseDistribution] = self._call("infer_relative_search_space", study, trial)
        return result

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._call("sample_relative", study, trial, search_space)
        return result

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._call("sample_independent", study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._call("before_trial", study, trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._call("after_trial", study, trial, state, values)

    def reseed_rng(self) -> None:
        self._call("reseed_rng")


def _context(
    db: Database,
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    search_task_id: int | None,
    target: WarmTarget,
    n_trials: int,
    seed: int,
) -> WarmStartContext:
    history = load_history(db, target.kind, exclude_fingerprint=target.fingerprint, storage=storage)

    def planned() -> list[dict[str, object]]:
        return [p for p in (planned_params(t) for t in study.get_trials(deepcopy=False)) if p]

    return WarmStartContext(
        target=target,
        study=study,
        n_trials=n_trials,
        seed=seed,
        sources=history.sources,
        defaults=history.defaults,
        population=history.population,
        planned=planned,
        persist=lambda record: store_record(db, study, search_task_id, record),
    )
