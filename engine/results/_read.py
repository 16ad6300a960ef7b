"""Reading the engine's tables into records: best strategies, best defaults, tasks, searches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from optuna.exceptions import OptunaError
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from engine.errors import StorageError, UnknownNameError
from engine.results._meta import meta_best
from engine.results._records import (
    BestDefault,
    BestReport,
    BestStrategy,
    Recheck,
    SearchSummary,
    StoredTask,
    TrialFailures,
)
from engine.storage import Database, DefaultRow, SearchRow, reads
from engine.storage.locations import locate, meta_artifacts
from engine.storage.optuna_adapter import open_optuna_storage, study_id
from engine.vocabulary import FAILURE_ATTR, SKIPPED_REASON, meta_study_name, search_study_names
from engine.warmstarter import WarmStartRecord

__all__ = ["best", "best_report", "defaults", "failures", "searches", "tasks"]


def _open(storage: str | None) -> Database | None:
    db = Database(storage, create=False)
    return db if db.has_tables() else None


@contextmanager
def _reading(storage: str | None, search: str | None) -> Iterator[Session | None]:
    """A session on the storage (``None`` if it holds no Stratagem data); checks ``search`` exists.

    Raises:
        UnknownNameError: ``search`` is given but not stored; the message lists the stored ones.
    """
    db = _open(storage)
    if db is None:
        if search is not None:
            raise UnknownNameError(f"no search {search!r}: the storage holds no Stratagem data yet")
        yield None
        return
    with db.session() as s:
        if search is not None and SearchRow.by_name(s, search) is None:
            raise reads.unknown_search(s, search)
        yield s


def best(
    *, storage: str | None = None, search: str | None = None, task: str | None = None
) -> list[BestStrategy]:
    """The best strategy per task, optionally for one search and/or one task.

    Args:
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        search: Only this search.
        task: Only this task: its name in its search, else a prefix of its fingerprint (six
            characters or more).

    Raises:
        UnknownNameError: ``search`` is given but no such search is stored, or it has no task ``task``;
            or ``task`` names no stored task.
    """
    with _reading(storage, search) as s:
        if s is None:
            return []
        rows = reads.best_rows(s, search=search)
        if task is not None:
            # By name in its search; only a name that no task has is read as a fingerprint prefix
            # (six characters or more, as reads.tasks_matching reads it).
            named = [r for r in rows if r[1].key == task]
            rows = named or [r for r in rows if len(task) >= 6 and r[3].fingerprint.startswith(task)]
        if task is not None and not rows:
            row = SearchRow.by_name(s, search) if search is not None else None
            if row is not None and task not in (keys := [t.key for t in row.tasks]):
                known = ", ".join(keys)
                raise UnknownNameError(f"search {search!r} has no task {task!r}; its tasks: {known}")
            if search is None and not reads.tasks_matching(s, task):
                known = ", ".join(reads.task_names(s)) or "none (run a search first)"
                raise UnknownNameError(f"no stored task {task!r}; stored tasks: {known}")
        return [
            BestStrategy(
                search=srch.name,
                task=link.key,
                fingerprint=trow.fingerprint,
                study=link.study_name,
                trial=b.trial_number,
                config=b.configuration,
                evaluator=link.evaluator,
                direction=link.direction,
                value=b.value,
                test_value=b.test_value,
                n_trials=b.n_trials,
                updated_at=b.updated_at,
                warm_start=WarmStartRecord.from_dict(link.warm_start) if link.warm_start else None,
                recheck=Recheck.from_notes(b.notes),
            )
            for b, link, srch, trow in rows
        ]


def defaults(*, storage: str | None = None, search: str | None = None) -> list[BestDefault]:
    """The best default of every cross-task search, or of one, ordered by search name.

    Args:
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        search: Only this search.

    Raises:
        UnknownNameError: ``search`` is given but no such search is stored.
    """
    with _reading(storage, search) as s:
        if s is None:
            return []
        return [_best_default(row, name) for row, name in reads.default_rows(s, search=search)]


def best_report(
    *, storage: str | None = None, search: str | None = None, task: str | None = None
) -> BestReport:
    """The best strategy per task together with the best cross-task defaults, as ``stratagem best`` shows.

    Defaults are judged over a whole search's tasks: with ``task``, those of the cross-task searches that
    include that task (by its name there) are listed.

    Args:
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        search: Only this search.
        task: Only this task: its name in its search or a prefix of its fingerprint.

    Raises:
        UnknownNameError: ``search`` is given but no such search is stored.
    """
    rows = best(storage=storage, search=search, task=task)
    found = [d for d in defaults(storage=storage, search=search) if task is None or task in d.per_task]
    failed = [f for f in failures(storage=storage, search=search) if task is None or task in f.tasks]
    meta = meta_best(storage=storage, search=search) if task is None else []
    return BestReport(rows, found, failed, meta)


def _best_default(row: DefaultRow, search: str) -> BestDefault:
    per_task = {k: dict(v) for k, v in dict(row.per_task).items()}
    test_losses = [float(x) for t in per_task.values() if isinstance(x := t.get("test_loss"), int | float)]
    complete = bool(per_task) and len(test_losses) == len(per_task)
    return BestDefault(
        search=search,
        study=row.study_name,
        kind=row.kind,
        trial=row.trial_number,
        config=row.configuration,
        loss=row.loss,
        test_loss=sum(test_losses) / len(test_losses) if complete else None,
        per_task=per_task,
        n_trials=row.n_trials,
        task_evaluations=row.task_evaluations,
        updated_at=row.updated_at,
    )


def tasks(*, storage: str | None = None) -> list[StoredTask]:
    """Every stored task with its meta-features and the searches that used it, by name.

    Args:
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
    """
    with _reading(storage, None) as s:
        if s is None:
            return []
        used = reads.searches_by_task(s)
        return [
            StoredTask(
                name=r.name,
                fingerprint=r.fingerprint,
                kind=r.kind,
                source=r.source,
                options=dict(r.options),
                n_samples=r.n_samples,
                n_features=r.n_features,
                n_classes=r.n_classes,
                meta_features=dict(r.meta_features),
                searches=used.get(r.id, []),
            )
            for r in reads.task_rows(s)
        ]


def searches(*, storage: str | None = None) -> list[SearchSummary]:
    """Every stored search, newest first.

    Args:
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
    """
    db = _open(storage)
    if db is None:
        return []
    with db.session() as s:
        kept = reads.artifact_totals(s)
        rows = [
            (r, search_study_names(r.name, (t.study_name for t in r.tasks)))
            for r in reads.searches_newest_first(s)
        ]
    trials = _trials_per_study(db.url)
    for r, _ in rows:
        if r.spec.get("search", {}).get("mode") == "meta" and meta_study_name(r.name) in trials:
            kept[r.id] = _kept_theta(db.url, meta_study_name(r.name))  # listed on its study, not in rows
    return [
        SearchSummary(
            name=r.name,
            status=r.status,
            tasks=[t.key for t in r.tasks],
            n_trials=int(r.spec.get("search", {}).get("n_trials", 0)),
            seed=int(r.spec.get("search", {}).get("seed", 0)),
            created_at=r.created_at,
            updated_at=r.updated_at,
            studies=sum(name in trials for name in names),
            trials=sum(trials.get(name, 0) for name in names),
            artifacts=kept.get(r.id, (0, 0))[0],
            artifact_bytes=kept.get(r.id, (0, 0))[1],
        )
        for r, names in rows
    ]


def _trials_per_study(url: str) -> dict[str, int]:
    """Study name -> its number of trials, read through Optuna's storage (empty if it has no tables)."""
    try:
        storage = open_optuna_storage(url, create=False)
        return {
            st.study_name: storage.get_n_trials(study_id(storage, st.study_name))
            for st in storage.get_all_studies()
        }
    except (SQLAlchemyError, OptunaError, StorageError):  # Optuna's tables are not there (yet): none
        return {}


def _kept_theta(url: str, study_name: str) -> tuple[int, int]:
    """How many θ files the meta study ``study_name`` kept that are still on disk, and their bytes."""
    count = size = 0
    try:
        listed = meta_artifacts(open_optuna_storage(url, create=False), study_name)
    except (SQLAlchemyError, OptunaError, StorageError, KeyError):
        return 0, 0
    for artifact_id, recorded in listed:
        path = Path(locate(recorded, url, artifact_id)[0]) / artifact_id
        if path.is_file():
            count, size = count + 1, size + path.stat().st_size
    return count, size


LAST_REASONS = 3
"""How many distinct failure reasons :func:`failures` keeps per study (the last ones)."""


def failures(*, storage: str | None = None, search: str | None = None) -> list[TrialFailures]:
    """Every study of the stored searches (or of ``search``) that has failed trials.

    Raises:
        UnknownNameError: ``search`` is given but not stored.
    """
    with _reading(storage, search) as s:
        if s is None:
            return []
        rows = reads.search_studies(s, search=search)
        url = s.get_bind().engine.url.render_as_string(hide_password=False)
    tasks: dict[tuple[str, str], list[str]] = {}
    for name, task, study in rows:
        tasks.setdefault((name, study), []).append(task)
    if not tasks:
        return []
    try:
        optuna_storage = open_optuna_storage(url, create=False)
    except (StorageError, OptunaError):  # Optuna's tables are not there (yet): no trial failed
        return []
    out: list[TrialFailures] = []
    for (name, study), keys in tasks.items():
        try:
            trials = optuna_storage.get_all_trials(study_id(optuna_storage, study), states=(TrialState.FAIL,))
        except KeyError:  # registered, but no trial ran yet
            continue
        trials = [t for t in trials if t.user_attrs.get(FAILURE_ATTR) != SKIPPED_REASON]
        if not trials:
            continue
        reasons = [str(t.user_attrs.get(FAILURE_ATTR, "no reason stored")) for t in trials]
        last = list(dict.fromkeys(reversed(reasons)))[:LAST_REASONS]
        out.append(TrialFailures(name, study, tuple(keys), len(trials), tuple(reversed(last))))
    return out
