"""Zero-shot recommendation: the strategies most likely to do well on a task, before any trial on it.

The storage's finished strategy studies of other tasks of the same kind are the evidence. Every
configuration tried there is a candidate, scored by the ensemble :mod:`engine.transfer` builds, with
weights from meta-feature similarity alone (there are no trials on the task to re-weight by): each
source task's surrogate predicts the candidate's rank-normalised value there (1 = as good as the best
trial of that task) and the score is the similarity-weighted mean. The top ``K`` distinct candidates
are returned with their evidence: the nearest tasks, their distance and weight, the rank each predicts
for the candidate, and the value the candidate actually got on a task where it was tried.

Python API::

    from engine.recommendation import recommend, recommend_for_task
    rec = recommend(dataset, storage="sqlite:///stratagem.db", top=3)
    rec.configs[0].strategy, rec.configs[0].strategy_params
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select

from engine.errors import StratagemError, UnknownNameError
from engine.objective import split_params
from engine.storage import Database, SearchTaskRow, TaskRow
from engine.task import Dataset, TaskKind, fingerprint

__all__ = [
    "Evidence",
    "NoHistoryError",
    "Recommendation",
    "Recommended",
    "recommend",
    "recommend_for_entry",
    "recommend_for_features",
    "recommend_for_task",
]

EVIDENCE_PER_CONFIG = 5


class NoHistoryError(StratagemError):
    """The storage holds no finished strategy studies of tasks of the asked kind."""


@dataclass(frozen=True)
class Evidence:
    """What one neighbour task says about a recommended configuration.

    Attributes:
        task: The neighbour's name; ``search`` and ``study`` hold its largest strategy study.
        fingerprint: The neighbour's data fingerprint.
        distance: Normalised meta-feature distance to the task recommended for.
        weight: The neighbour's share of the ensemble (similarity only, sums to 1 over neighbours).
        predicted_rank: The neighbour's surrogate's rank-normalised prediction (1 = its best).
        value: The evaluator's validation value the configuration got there, if it was tried there.
        test_value: Its test-split value there, if it was tried there.
        evaluator: The neighbour study's evaluator.
    """

    task: str
    search: str
    study: str
    fingerprint: str
    distance: float
    weight: float
    predicted_rank: float
    value: float | None
    test_value: float | None
    evaluator: str


@dataclass(frozen=True)
class Recommended:
    """One recommended configuration.

    Attributes:
        rank: 1 for the best recommendation.
        strategy: Strategy name; ``strategy_params`` are its ``__init__`` keyword arguments.
        updater: Updater name; ``updater_params`` are its ``__init__`` keyword arguments.
        params: The same as flat Optuna trial parameters (``study.enqueue_trial(params)`` accepts them).
        score: Predicted rank score in [0, 1], the similarity-weighted mean of ``predicted_rank``.
        origin: Where the configuration was tried (study and trial number, or a cross-task search).
        evidence: The most similar neighbours' view of it, nearest first.
    """

    rank: int
    strategy: str
    strategy_params: dict[str, Any]
    updater: str
    updater_params: dict[str, Any]
    params: dict[str, Any]
    score: float
    origin: str
    evidence: tuple[Evidence, ...]


@dataclass(frozen=True)
class Recommendation:
    """The answer of :func:`recommend`: the top configurations and the tasks they rest on."""

    task: str
    kind: str
    storage: str
    configs: tuple[Recommended, ...]
    neighbours: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    excluded_fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _no_history(kind: str, excluded: bool) -> NoHistoryError:
    own = " (the task's own history does not count)" if excluded else ""
    return NoHistoryError(
        f"the storage holds no finished searches of {kind} tasks{own}; run a search first, such as: "
        "stratagem run studies/quickstart.toml"
    )


def _open(storage: str | None, kind: str, excluded: bool) -> Database:
    db = Database(storage, create=False)
    if not db.has_tables() or not inspect(db.engine).has_table("studies"):
        raise _no_history(kind, excluded)
    return db


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
        meta_features: The task's meta-features (:func:`engine.metafeatures.compute_meta_features`).
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
        ValueError: ``top`` is not positive, or the meta-features are incomplete.
    """
    from engine.transfer import SourceEnsemble, cross_task_defaults, discover_sources

    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    db = _open(storage, kind, exclude_fingerprint is not None)
    sources = discover_sources(db, kind, exclude_fingerprint=exclude_fingerprint)
    if not sources:
        raise _no_history(kind, exclude_fingerprint is not None)
    with db.session() as s:
        population = [
            dict(r.meta_features)
            for r in s.scalars(select(TaskRow).where(TaskRow.kind == kind))
            if r.fingerprint != exclude_fingerprint
        ]
    ensemble = SourceEnsemble(
        sources,
        meta_features,
        population,
        extra=cross_task_defaults(db, kind, exclude_fingerprint=exclude_fingerprint),
        strategies=strategies,
        updaters=updaters,
        seed=seed,
    )
    if not ensemble.candidates:
        raise NoHistoryError(
            f"no configuration stored for {kind} tasks uses the strategies {list(strategies or [])} and "
            f"updaters {list(updaters or [])}; widen the selection or run a search with them first"
        )
    weights = ensemble.prior
    scores = ensemble.scores(weights)
    tried = [{_params_key(t.params): t for t in src.trials if t.complete} for src in ensemble.sources]
    nearest = sorted(range(len(ensemble.sources)), key=lambda i: float(ensemble.distances[i]))
    configs = []
    for rank, c in enumerate(ensemble.pick(scores, [], top=top), start=1):
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
        strategy, s_params, updater, u_params = split_params(dict(cand.params))
        configs.append(
            Recommended(
                rank=rank,
                strategy=strategy,
                strategy_params=s_params,
                updater=updater,
                updater_params=u_params,
                params=dict(cand.params),
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
        neighbours=tuple(ensemble.summary(weights)),
        excluded_fingerprint=exclude_fingerprint,
    )


def _params_key(params: Mapping[str, Any]) -> str:
    import json

    return json.dumps(dict(params), sort_keys=True, default=str)


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
        NoHistoryError: No other task of the dataset's kind has a finished strategy study.
    """
    from engine.metafeatures import compute_meta_features

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


def recommend_for_task(name: str, *, storage: str | None = None, top: int = 5) -> Recommendation:
    """Recommend configurations for a stored task from the other tasks' history only.

    Args:
        name: The task's name (as stored, or its name in a search) or a prefix of its fingerprint.
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        top: How many configurations to return.

    Raises:
        UnknownNameError: No stored task has that name, or several do.
        NoHistoryError: No other task of its kind has a finished strategy study.
    """
    db = Database(storage, create=False)
    if not db.has_tables():
        raise UnknownNameError(
            f"no task {name!r}: the storage holds no Stratagem data yet; run a search first"
        )
    with db.session() as s:
        by_key = {link.task_id for link in s.scalars(select(SearchTaskRow).where(SearchTaskRow.key == name))}
        rows = [
            r
            for r in s.scalars(select(TaskRow))
            if r.name == name or r.id in by_key or (len(name) >= 6 and r.fingerprint.startswith(name))
        ]
        known = sorted({r.name for r in s.scalars(select(TaskRow))})
    if not rows:
        raise UnknownNameError(f"no stored task {name!r}; stored tasks: {', '.join(known) or 'none'}")
    if len(rows) > 1:
        fps = ", ".join(r.fingerprint[:12] for r in rows)
        raise UnknownNameError(
            f"{len(rows)} stored tasks match {name!r} (fingerprints {fps}); give a fingerprint"
        )
    row = rows[0]
    return recommend_for_features(
        dict(row.meta_features),
        row.kind,  # type: ignore[arg-type]
        name=name,
        storage=db.url,
        top=top,
        exclude_fingerprint=row.fingerprint,
    )


def recommend_for_entry(
    source: str,
    options: Mapping[str, Any],
    *,
    storage: str | None = None,
    top: int = 5,
    plugins: Sequence[str] = (),
    base_dir: Path | None = None,
    exclude_own: bool = False,
) -> Recommendation:
    """Recommend configurations for a spec-like task entry, such as ``("csv", {"path": ..., "target": ...})``.

    The data is loaded through the plugin host, as a search would load it.

    Args:
        source: Task source name (``sklearn``, ``csv``, ``synthetic`` or a plugin's).
        options: The source's options.
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        top: How many configurations to return.
        plugins: Extra local plugin modules.
        base_dir: Folder relative paths resolve against (default: the current directory).
        exclude_own: Leave out the data's own history, if it is stored.

    Raises:
        UnknownNameError: The source is not registered.
        TaskDataError: The data cannot be loaded.
        NoHistoryError: No other task of its kind has a finished strategy study.
    """
    from engine.plugins import PluginHost

    host = PluginHost.load(tuple(plugins), base_dir=base_dir)
    task_source = host.task_sources.get(source)
    unknown = [k for k in options if k not in task_source.options]
    if unknown:
        raise UnknownNameError(
            f"task source {source!r} has no option(s) {unknown}; valid: {', '.join(task_source.options)}"
        )
    dataset = task_source.load(options, base_dir or Path.cwd())
    return recommend(
        dataset,
        storage=storage,
        top=top,
        exclude_fingerprint=fingerprint(dataset) if exclude_own else None,
    )
