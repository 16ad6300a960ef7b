"""Warm start: seeding a new task's strategy study from other tasks' finished studies.

When a task's strategy study starts empty and the storage holds finished strategy studies of *other*
tasks of the same kind, :func:`warm_start_study` enqueues promising configurations into it. The task's
own earlier studies (same data fingerprint, in any search) never count as a source.

Sources and similarity:
    A *source* is another task (data fingerprint) with a strategy study of at least two complete trials;
    all its studies are pooled. Each study's values are normalised by rank to [0, 1] (1 = the study's
    best, pruned trials 0), so studies judged by different evaluators or directions compare. Tasks are
    compared by their stored meta-features (:data:`DISTANCE_FEATURES`): each is scaled by its
    inter-quartile range over every stored task of the kind plus the target (its range, if that is 0),
    per-feature differences are clipped to 3, and the distance is their root mean square. A source's
    prior weight is ``exp(-(d / h)^2 / 2)``, ``h`` the median source distance, normalised to sum 1.

Methods (``WarmTarget.method``; default ``$STRATAGEM_WARM_START`` or ``"transfer"``):
    ``knn``: auto-sklearn's meta-learning baseline. The best configuration of each of the
    ``ceil(n_trials / 2)`` nearest sources is enqueued before the first trial.

    ``transfer``: uses every source's whole history. Each source gets a surrogate (extra trees on an
    encoding of the conditional configuration) that predicts the rank-normalised value; every source
    configuration, and the cross-task "best default" of the kind if one is stored, is a candidate scored
    ``sum_s w_s * pred_s(c) + w_t * pred_t(c)``. Until the target has 3 finished trials ``w`` is the prior
    and ``w_t = 0``. From then on the weights follow the target's own trials, in the spirit of RGPE
    (Feurer et al., 2018) and Watanabe et al.'s meta-learning TPE (2022): over bootstrap resamples of
    the target's trials, each model (every source surrogate, and a surrogate ``t`` of the target itself
    judged leave-one-out) counts the pairs of trials it ranks wrongly; its data weight is the share of
    resamples in which it ranks best. A model's weight blends prior and data weight by ``n / (n + 5)``
    for ``n`` target trials. After each finished trial a callback enqueues the candidate that adds most to
    a greedy portfolio (auto-sklearn 2, FLAML): ``pred_s(c)`` is replaced by ``max(pred_s(c), m_s)``, with
    ``m_s`` the best that the configurations tried so far reach on source ``s``, so the next pick covers the
    sources the earlier picks do not. Tried configurations and near duplicates of them are skipped; a
    source's own observed rank replaces its surrogate's prediction for configurations it tried. This goes
    on until ``ceil(n_trials / 2)`` warm trials are queued, the target's own model holds half the weight,
    or candidates run out; the study's sampler, which sees the warm trials in the history, takes over.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import select

from engine.search import WARM_START_ATTR
from engine.storage import Database, SearchTaskRow, TaskRow
from engine.task import TaskInfo, TaskKind
from engine.transfer import (
    NEAR_DUPLICATE,
    SourceEnsemble,
    conform_params,
    cross_task_defaults,
    discover_sources,
)

__all__ = [
    "INFO_ATTR",
    "METHODS",
    "METHOD_ENV",
    "WarmStart",
    "WarmTarget",
    "default_method",
    "warm_start_study",
]

METHODS: tuple[str, ...] = ("transfer", "knn")
METHOD_ENV = "STRATAGEM_WARM_START"
"""Environment variable naming the default warm-start method, ``transfer`` or ``knn``."""

INFO_ATTR = WARM_START_ATTR
"""Study user attribute that records what warm start used and why."""


@dataclass(frozen=True)
class WarmTarget:
    """The task whose study is being warm-started.

    Attributes:
        method: ``"transfer"`` or ``"knn"``; ``None`` uses :func:`default_method`.
    """

    fingerprint: str
    kind: TaskKind
    meta_features: Mapping[str, float]
    evaluator: str
    strategies: tuple[str, ...]
    updaters: tuple[str, ...]
    info: TaskInfo
    method: str | None = None


@dataclass(frozen=True)
class WarmStart:
    """What warm start did: ``info`` is stored on the study and shown by ``stratagem best``."""

    info: dict[str, Any]
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]] = field(default_factory=tuple)


def default_method() -> str:
    """The warm-start method named by ``$STRATAGEM_WARM_START``, else ``"transfer"``.

    Raises:
        ValueError: The variable names an unknown method.
    """
    method = os.environ.get(METHOD_ENV, "").strip() or "transfer"
    if method not in METHODS:
        raise ValueError(f"${METHOD_ENV} must be one of {', '.join(METHODS)}; got {method!r}")
    return method


# --------------------------------------------------------------------------------------------- warm start


def _population(db: Database, kind: str, exclude: str | None) -> list[dict[str, float]]:
    with db.session() as s:
        return [
            dict(r.meta_features)
            for r in s.scalars(select(TaskRow).where(TaskRow.kind == kind))
            if r.fingerprint != exclude
        ]


def _persist(db: Database, study: optuna.Study, info: dict[str, Any]) -> None:
    study.set_user_attr(INFO_ATTR, info)
    with db.session() as s:
        link = s.scalar(select(SearchTaskRow).where(SearchTaskRow.study_name == study.study_name))
        if link is not None:
            link.warm_start = json.loads(json.dumps(info))


def _fixed_params(study: optuna.Study) -> list[dict[str, Any]]:
    """Parameters of every trial of the study, including the fixed ones of waiting trials."""
    out = []
    for t in study.get_trials(deepcopy=False):
        params = dict(t.params) or dict(t.system_attrs.get("fixed_params", {}))
        if params:
            out.append(params)
    return out


def warm_start_study(
    *, db: Database, study: optuna.Study, target: WarmTarget, n_trials: int, seed: int
) -> WarmStart:
    """Enqueue promising configurations into the empty ``study`` and return callbacks to keep doing so.

    Args:
        db: The engine's tables.
        study: The target task's new strategy study.
        target: The target task.
        n_trials: Trials the study is about to run.
        seed: The search's seed.

    Returns:
        ``info`` (``used``, ``method``, ``reason``, ``sources``, ``enqueued``) and, for ``transfer``, the
        callback that enqueues the next candidates while the study runs.

    Raises:
        ValueError: ``target.method`` (or ``$STRATAGEM_WARM_START``) is not a known method.
    """
    method = target.method or default_method()
    if method not in METHODS:
        raise ValueError(f"unknown warm-start method {method!r}; choose one of {', '.join(METHODS)}")
    storage = getattr(study, "_storage", None)
    sources = discover_sources(
        db,
        target.kind,
        exclude_fingerprint=target.fingerprint,
        storage=storage if isinstance(storage, optuna.storages.BaseStorage) else None,
    )
    defaults = (
        []
        if method == "knn"
        else cross_task_defaults(db, target.kind, exclude_fingerprint=target.fingerprint)
    )
    if not sources and not defaults:
        return WarmStart(
            {
                "used": False,
                "method": method,
                "reason": f"no finished studies of other {target.kind} tasks in this storage",
                "sources": [],
                "enqueued": 0,
            }
        )
    try:
        ensemble = SourceEnsemble(
            sources,
            target.meta_features,
            _population(db, target.kind, target.fingerprint),
            extra=defaults,
            strategies=target.strategies,
            updaters=target.updaters,
            seed=seed,
        )
    except ValueError as exc:
        return WarmStart(
            {
                "used": False,
                "method": method,
                "reason": f"cannot compare tasks: {exc}",
                "sources": [],
                "enqueued": 0,
            }
        )
    if not ensemble.candidates:
        return WarmStart(
            {
                "used": False,
                "method": method,
                "sources": ensemble.summary(ensemble.prior),
                "reason": "no configuration of other tasks uses this task's strategies and updaters",
                "enqueued": 0,
            }
        )
    max_warm = max(1, min(n_trials, math.ceil(n_trials / 2)))
    if method == "knn":
        return _knn(ensemble, study, max_warm)
    first = ensemble.pick(ensemble.scores(ensemble.prior), [])
    study.enqueue_trial(ensemble.candidates[first[0]].params, skip_if_exists=True)
    info: dict[str, Any] = {
        "used": True,
        "method": "transfer",
        "reason": (
            f"{len(ensemble.sources)} other {target.kind} task(s) with history, weighted by meta-feature "
            f"similarity and, once trials finish here, by how well they rank this task's trials"
        ),
        "sources": ensemble.summary(ensemble.prior),
        "candidates": len(ensemble.candidates),
        "max_warm": max_warm,
        "target_weight": 0.0,
        "enqueued": 1,
    }
    if not sources:
        info["reason"] = "no other task's studies; enqueued the cross-task default"
    callback = _TransferCallback(
        db, ensemble, info, n_trials, max_warm, [ensemble.candidates[first[0]].params]
    )
    return WarmStart(info, (callback,) if max_warm > 1 else ())


def _knn(ensemble: SourceEnsemble, study: optuna.Study, k: int) -> WarmStart:
    """auto-sklearn's baseline: the best valid configuration of each of the ``k`` nearest sources."""
    chosen: list[int] = []
    taken: list[dict[str, Any]] = []
    for i, src in enumerate(ensemble.sources):  # nearest first
        if len(chosen) == k:
            break
        for cand in ensemble.candidates:  # each source's candidates come best first
            if cand.source == src.fingerprint and all(
                ensemble.space.distance(cand.params, o) >= NEAR_DUPLICATE for o in taken
            ):
                chosen.append(i)
                taken.append(cand.params)
                study.enqueue_trial(cand.params, skip_if_exists=True)
                break
    weights = np.zeros(len(ensemble.sources))
    weights[chosen] = 1.0 / max(1, len(chosen))
    info = {
        "used": bool(chosen),
        "method": "knn",
        "reason": f"best configurations of the {len(chosen)} most similar task(s) by meta-features",
        "sources": [s for s in ensemble.summary(weights, top=len(ensemble.sources)) if s["weight"] > 0],
        "enqueued": len(chosen),
    }
    return WarmStart(info)


class _TransferCallback:
    """After each finished trial, enqueue the next candidate until the warm phase ends."""

    def __init__(
        self,
        db: Database,
        ensemble: SourceEnsemble,
        info: dict[str, Any],
        n_trials: int,
        max_warm: int,
        enqueued: list[dict[str, Any]],
    ) -> None:
        self.db = db
        self.ensemble = ensemble
        self.info = info
        self.n_trials = n_trials
        self.max_warm = max_warm
        self.enqueued = enqueued
        self.finished = 0
        self.active = True

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.finished += 1
        if not self.active or self.finished >= self.n_trials:
            return
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        weights, target_weight, target_pred = self.ensemble.reweight(done, maximize)
        self.info["sources"] = self.ensemble.summary(weights)
        self.info["target_weight"] = round(target_weight, 4)
        stop = None
        if len(self.enqueued) >= self.max_warm:
            stop = f"warm phase over after {len(self.enqueued)} trials; the sampler takes over"
        elif target_weight >= 0.5:
            stop = "this task's own trials now outweigh the sources; the sampler takes over"
        else:
            dists: dict[str, BaseDistribution] = {}
            for t in done:
                dists.update(t.distributions)
            tried = [*self.enqueued, *_fixed_params(study)]
            covered = self.ensemble.coverage(tried)
            chosen = self.ensemble.pick(
                self.ensemble.scores(weights, target_weight, target_pred, covered), tried, conform=dists
            )
            if not chosen:
                stop = "no untried configuration of other tasks is left; the sampler takes over"
            else:
                params = conform_params(self.ensemble.candidates[chosen[0]].params, dists)
                assert params is not None
                study.enqueue_trial(params, skip_if_exists=True)
                self.enqueued.append(params)
                self.info["enqueued"] = len(self.enqueued)
        if stop is not None:
            self.active = False
            self.info["stopped"] = stop
        _persist(self.db, study, self.info)
