"""Sources: other tasks' finished strategy studies, read from the storage for transfer.

A *source* is another task (data fingerprint) with a strategy study of at least two complete trials;
all its studies are pooled. Each study's values are normalised by rank to [0, 1] (1 = the study's best,
pruned trials 0), so studies judged by different evaluators or directions compare.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.storage.optuna_adapter import study_id
from engine.storage.optuna_reads import (
    StoredStudy,
    StoredTrial,
    StudyTrials,
    read_trials,
    studies_with_user_attr,
)
from engine.vocabulary import ATTR, DONE_STATES, KIND_STRATEGIES
from engine.warmstarter import Source, SourceTrial

__all__ = ["discover_sources", "is_strategy_trial", "rank_normalise"]


def rank_normalise(values: Sequence[float], maximize: bool) -> np.ndarray:
    """Average ranks scaled to [0, 1], 1 for the best value (a single value gets 1)."""
    arr = np.asarray(values, dtype=np.float64) * (1.0 if maximize else -1.0)
    n = len(arr)
    if n <= 1:
        return np.ones(n)
    order = np.argsort(arr, kind="mergesort")
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.arange(n, dtype=np.float64)
    for v in np.unique(arr):
        tied = arr == v
        ranks[tied] = ranks[tied].mean()
    return ranks / (n - 1)


def is_strategy_trial(t: FrozenTrial | StoredTrial) -> bool:
    return "strategy" in t.params and "updater" in t.params


def _study_trials(name: str, read: StudyTrials) -> list[SourceTrial]:
    trials = read.trials
    complete = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.value is not None
        and math.isfinite(t.value)
        and is_strategy_trial(t)
    ]
    if not complete:
        return []
    maximize = read.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    ranks = rank_normalise([float(t.value) for t in complete if t.value is not None], maximize)
    out = [
        SourceTrial(
            name,
            t.number,
            dict(t.params),
            dict(t.distributions),
            t.value,
            t.user_attrs.get(ATTR, {}).get("test_value"),
            float(r),
            True,
        )
        for t, r in zip(complete, ranks, strict=True)
    ]
    out += [
        SourceTrial(name, t.number, dict(t.params), dict(t.distributions), None, None, 0.0, False)
        for t in trials
        if t.state == TrialState.PRUNED and is_strategy_trial(t)
    ]
    return out


def _strategy_studies(storage: optuna.storages.BaseStorage) -> list[StoredStudy]:
    """Every study with the engine's attribute (strategy studies and others), with its value."""
    if isinstance(storage, optuna.storages.RDBStorage):
        return studies_with_user_attr(storage, ATTR)
    return [
        StoredStudy(study_id(storage, s.study_name), s.study_name, s.user_attrs[ATTR])
        for s in storage.get_all_studies()
        if ATTR in s.user_attrs
    ]


def _read_trials(storage: optuna.storages.BaseStorage, ids: Sequence[int]) -> dict[int, StudyTrials]:
    """The finished trials of the studies ``ids``: a few queries for them all on a relational storage,
    Optuna's public API study by study on any other."""
    if isinstance(storage, optuna.storages.RDBStorage):
        return read_trials(storage, ids, states=DONE_STATES, user_attrs=(ATTR,))
    out = {}
    for sid in ids:
        trials = [
            StoredTrial(t.number, t.state, t.params, t.distributions, t.values, t.user_attrs)
            for t in storage.get_all_trials(sid, deepcopy=False, states=DONE_STATES)
        ]
        out[sid] = StudyTrials(storage.get_study_directions(sid), trials)
    return out


def discover_sources(
    storage: optuna.storages.BaseStorage,
    tasks: Mapping[str, tuple[str, dict[str, float]]],
    *,
    exclude_fingerprint: str | None,
) -> list[Source]:
    """Every task in ``tasks`` with a strategy study holding at least two complete trials.

    Args:
        storage: Optuna storage of the engine's database (an ``RDBStorage`` is read in bulk).
        tasks: Fingerprint -> (name, meta-features) of the stored tasks that may be sources.
        exclude_fingerprint: The target task; its studies, in any search, are never read.

    Returns:
        The sources, ordered by fingerprint.
    """
    rows = {fp: v for fp, v in tasks.items() if fp != exclude_fingerprint}
    wanted: list[tuple[StoredStudy, dict[str, Any], str]] = []
    for study in _strategy_studies(storage):
        attrs = study.attr
        if not isinstance(attrs, dict) or attrs.get("kind") != KIND_STRATEGIES:
            continue
        fp = attrs.get("fingerprint")
        if not fp or fp == exclude_fingerprint or fp not in rows:
            continue
        wanted.append((study, attrs, fp))
    read = _read_trials(storage, [study.study_id for study, _, _ in wanted])
    grouped: dict[str, list[tuple[dict[str, Any], str, list[SourceTrial]]]] = {}
    for study, attrs, fp in wanted:
        found = read.get(study.study_id)
        trials = [] if found is None else _study_trials(study.name, found)
        if sum(t.complete for t in trials) >= 2:
            grouped.setdefault(fp, []).append((attrs, study.name, trials))
    sources = []
    for fp, studies in sorted(grouped.items()):
        studies.sort(key=lambda x: (-sum(t.complete for t in x[2]), x[1]))
        attrs, name, _ = studies[0]
        sources.append(
            Source(
                fingerprint=fp,
                task=str(attrs.get("task") or rows[fp][0]),
                search=str(attrs.get("search", "")),
                study=name,
                studies=tuple(n for _, n, _ in studies),
                evaluator=str(attrs.get("evaluator", "")),
                meta_features=rows[fp][1],
                trials=tuple(t for _, _, ts in studies for t in ts),
            )
        )
    return sources
