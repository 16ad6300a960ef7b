"""Warm start of a meta study from the meta studies of other searches, like per-task strategy studies.

When a search's meta study starts empty and ``search.warm_start`` is on, the best trial of each other
meta-mode search in the same database whose family is of the same kind (classification or regression)
is a candidate. Nearest families first: the same family with the same options, then the same family by
the share of its options that differ (a different seed or ``k_shot`` is near), then other families of
the kind. The best configurations of up to :data:`MAX_WARM` of them are enqueued, each only if this
search can run it as it is (its meta-strategy, updater, meta-batch and width are in this spec's space);
the rest of the study samples as usual. What was done is stored on the study as a
:class:`~engine.warmstarter.WarmStartRecord` (attribute :data:`~engine.vocabulary.WARM_START_ATTR`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from engine.results import BestMeta, meta_best
from engine.spec import Plan
from engine.storage import Database
from engine.vocabulary import WARM_START_ATTR
from engine.warmstarter import SourceUse, WarmStartRecord

__all__ = ["MAX_WARM", "METHOD", "family_distance", "warm_start_meta"]

MAX_WARM = 3
"""Most configurations enqueued into a new meta study."""

METHOD = "meta_best"
"""The method name in the record: the best trials of the nearest families' meta studies."""


def family_distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """0 for the same family with the same options, the share of options that differ for the same
    family (in ``(0, 1]``), and 2 for another family."""
    if a.get("name") != b.get("name"):
        return 2.0
    keys = (set(a) | set(b)) - {"name"}
    if not keys:
        return 0.0
    return sum(a.get(k) != b.get(k) for k in keys) / len(keys)


def warm_start_meta(
    db: Database,
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    plan: Plan,
    family: Mapping[str, Any],
) -> WarmStartRecord:
    """Enqueue the best configurations of the nearest other meta searches into the empty ``study``.

    Call it under the lock that creates the study, and only while the study has no trial, so that one
    worker does it once. Returns (and stores on the study) what it did.
    """
    spec = plan.spec
    metric = "accuracy" if plan.family is not None and plan.family.info().kind == "classification" else "mse"
    others = [b for b in meta_best(storage=db.url) if b.search != spec.name and b.metric == metric]
    others.sort(key=lambda b: (family_distance(family, b.family), -b.n_trials, b.search))
    sources: list[SourceUse] = []
    skipped: list[str] = []
    enqueued: list[dict[str, Any]] = []
    for best in others:
        if len(enqueued) >= MAX_WARM:
            break
        source_id = storage.get_study_id_from_name(best.study)
        params = storage.get_trial(
            storage.get_trial_id_from_study_id_trial_number(source_id, best.trial)
        ).params
        why = _cannot_run(params, plan)
        if why is not None:
            skipped.append(f"{best.search}: {why}")
            continue
        if params in enqueued:
            continue
        study.enqueue_trial(params, user_attrs={WARM_START_ATTR: best.search})
        enqueued.append(params)
        sources.append(_use(best, family))
    if enqueued:
        reason = f"enqueued the best configuration of {len(enqueued)} meta search(es) on the nearest families"
    elif others:
        reason = "no other meta search's best configuration fits this spec's space: " + "; ".join(skipped)
    else:
        reason = (
            f"no other meta search on a {'classification' if metric == 'accuracy' else 'regression'} family"
        )
    record = WarmStartRecord(
        used=bool(enqueued),
        method=METHOD,
        reason=reason,
        sources=tuple(sources),
        enqueued=len(enqueued),
        candidates=len(others),
        max_warm=MAX_WARM,
    )
    study.set_user_attr(WARM_START_ATTR, record.to_dict())
    return record


def _cannot_run(params: Mapping[str, Any], plan: Plan) -> str | None:
    """Why ``params`` (a meta trial's) is outside this spec's space, or ``None`` if it can run here."""
    meta = plan.spec.meta
    strategies = {s.name for s in plan.meta_strategies}
    updaters = {u.name for u in plan.meta_updaters}
    if params.get("strategy") not in strategies:
        return f"meta-strategy {params.get('strategy')!r} is not in meta.strategies"
    if "updater" in params and params["updater"] not in updaters:
        return f"updater {params['updater']!r} is not in meta.updaters"
    if "meta_batch" in params and params["meta_batch"] not in tuple(meta.meta_batch):
        return f"meta_batch {params['meta_batch']!r} is not in meta.meta_batch"
    return None


def _use(best: BestMeta, family: Mapping[str, Any]) -> SourceUse:
    return SourceUse(
        task=str(best.family.get("name", "")),
        search=best.search,
        study=best.study,
        fingerprint="",
        distance=family_distance(family, best.family),
        weight=1.0,
        n_trials=best.n_trials,
    )
