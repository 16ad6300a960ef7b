"""Scoring stored configurations for a task described by its meta-features, before any trial on it.

The answer starts with a portfolio chosen to cover the stored tasks, ordered for this task by a model
learned across them (:mod:`engine.transfer.portfolio`); each configuration comes with the evidence of
the nearest stored tasks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from engine.configuration import Configuration
from engine.errors import TaskDataError
from engine.recommendation._records import Evidence, NoHistoryError, Recommendation, Recommended
from engine.storage import Database, reads
from engine.task import Dataset, TaskKind, magnitude_problems
from engine.task.metafeatures import compute_meta_features
from engine.transfer.history import load_history
from engine.transfer.portfolio import ranked_portfolio
from engine.transfer.surrogate import SourceEnsemble

__all__ = ["EVIDENCE_PER_CONFIG", "recommend", "recommend_for_features"]

EVIDENCE_PER_CONFIG = 5
"""Neighbours listed as evidence for each recommended configuration."""


def no_history(kind: str, excluded: bool, *, searched: bool = False) -> NoHistoryError:
    """The error for a storage without usable history of ``kind``, pointing to the first search (or, when
    ``searched``, saying why the searches it holds do not count)."""
    own = " (the task's own history does not count)" if excluded else ""
    if searched:
        return NoHistoryError(
            f"the storage holds searches of {kind} tasks{own}, but none of their studies has the two "
            "completed trials a recommendation learns from (their trials failed, were pruned, or are "
            "still running); `stratagem best` shows each one's trials, and a search with more trials gives "
            "a history"
        )
    return NoHistoryError(
        f"the storage holds no finished searches of {kind} tasks{own}; run a search first, such as: "
        "stratagem run studies/quickstart.toml"
    )


def _open(storage: str | None, kind: str, exclude_fingerprint: str | None) -> Database:
    """The storage, once it is known to hold strategy studies of another task of ``kind``.

    Raises:
        NoHistoryError: It holds none (then Optuna's tables need not exist, and are not created).
    """
    db = Database(storage, create=False)
    if db.has_tables():
        with db.session() as s:
            if reads.has_strategy_studies(s, kind, exclude_fingerprint=exclude_fingerprint):
                return db
    raise no_history(kind, exclude_fingerprint is not None)


def _params_key(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True, default=str)


def recommend_for_features(
    meta_features: Mapping[str, float],
    kind: TaskKind,
    *,
    name: str = "task",
    storage: str | None = None,
    top: int = 5,
    exclude_fingerprint: str | None = None,
    strategies: Sequence[str] | None = None,
    updaters: Sequence[str] | None = None,
    seed: int = 0,
) -> Recommendation:
    """Recommend configurations for a task described by its meta-features.

    Args:
        meta_features: The task's meta-features (:func:`engine.task.metafeatures.compute_meta_features`).
        kind: The task's kind.
        name: The task's name, for the answer.
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        top: How many configurations to return.
        exclude_fingerprint: A task whose studies must not count (the task itself, when stored).
        strategies: Only configurations of these strategies (default: any).
        updaters: Only configurations of these updaters (default: any).
        seed: Seeds the surrogates.

    Raises:
        NoHistoryError: No other task of ``kind`` has a finished strategy study in the storage.
        TaskDataError: The meta-features are incomplete or hold a value that is not a finite number.
        ValueError: ``top`` is not positive.
    """
    if isinstance(top, bool) or not isinstance(top, int | np.integer) or top < 1:
        raise ValueError(f"top must be an integer of at least 1, got {top!r}")
    for key, names in (("strategies", strategies), ("updaters", updaters)):
        if isinstance(names, str):
            raise ValueError(f"{key} must be a list of names, not the string {names!r}; write [{names!r}]")
    db = _open(storage, kind, exclude_fingerprint)
    history = load_history(db, kind, exclude_fingerprint=exclude_fingerprint)
    if not history.sources:
        raise no_history(kind, exclude_fingerprint is not None, searched=True)
    try:
        ensemble = SourceEnsemble(
            history.sources,
            meta_features,
            history.population,
            extra=history.defaults,
            strategies=strategies,
            updaters=updaters,
            seed=seed,
        )
    except ValueError as exc:  # the task's own meta-features are incomplete or not finite
        raise TaskDataError(f"task {name!r} cannot be compared with the stored tasks: {exc}") from None
    if not ensemble.candidates:
        raise NoHistoryError(
            f"no configuration stored for {kind} tasks uses the strategies {list(strategies or [])} and "
            f"updaters {list(updaters or [])}; widen the selection or run a search with them first"
        )
    weights = ensemble.prior
    order, scores = ranked_portfolio(ensemble, meta_features, top)
    tried = [{_params_key(t.params): t for t in src.trials if t.complete} for src in ensemble.sources]
    nearest = sorted(range(len(ensemble.sources)), key=lambda i: float(ensemble.distances[i]))
    configs = []
    for rank, c in enumerate(order, start=1):
        cand = ensemble.candidates[c]
        key = _params_key(cand.params)
        evidence = []
        for i in nearest[:EVIDENCE_PER_CONFIG]:
            src = ensemble.sources[i]
            hit = tried[i].get(key)
            evidence.append(
                Evidence(
                    task=src.task,
                    search=src.search,
                    study=src.study,
                    fingerprint=src.fingerprint,
                    distance=round(float(ensemble.distances[i]), 4),
                    weight=round(float(weights[i]), 4),
                    predicted_rank=round(float(ensemble.predictions[i, c]), 4),
                    value=hit.value if hit else None,
                    test_value=hit.test_value if hit else None,
                    evaluator=src.evaluator,
                )
            )
        configs.append(
            Recommended(
                rank=rank,
                config=Configuration.from_params(cand.params),
                score=round(float(scores[c]), 4),
                origin=cand.origin,
                evidence=tuple(evidence),
            )
        )
    return Recommendation(
        task=name,
        kind=kind,
        storage=db.safe_url,
        configs=tuple(configs),
        neighbours=tuple(asdict(use) for use in ensemble.summary(weights)),
        excluded_fingerprint=exclude_fingerprint,
    )


def recommend(
    dataset: Dataset,
    *,
    storage: str | None = None,
    top: int = 5,
    exclude_fingerprint: str | None = None,
    strategies: Sequence[str] | None = None,
    updaters: Sequence[str] | None = None,
) -> Recommendation:
    """Recommend configurations for ``dataset`` without running a trial on it.

    Its meta-features are computed here (a second or so on large data). If the same data is stored
    already, its own history counts unless ``exclude_fingerprint`` names it.

    Args:
        dataset: The task's data.
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        top: How many configurations to return.
        exclude_fingerprint: A task whose studies must not count.
        strategies: Only configurations of these strategies (default: any).
        updaters: Only configurations of these updaters (default: any).

    Raises:
        TaskDataError: A value is beyond ±1e30 (or not finite), as a search refuses it.
        NoHistoryError: No other task of the dataset's kind has a finished strategy study.
    """
    _check_magnitudes(dataset)
    return recommend_for_features(
        compute_meta_features(dataset),
        dataset.kind,
        name=dataset.name,
        storage=storage,
        top=top,
        exclude_fingerprint=exclude_fingerprint,
        strategies=strategies,
        updaters=updaters,
    )


def _check_magnitudes(dataset: Dataset) -> None:
    """Refuse values a search refuses too: beyond ±1e30 they overflow the meta-features' statistics."""
    problems = magnitude_problems(dataset)
    if problems:
        raise TaskDataError(f"task {dataset.name!r}: {problems[0]}")
