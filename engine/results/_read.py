"""Reading the engine's tables into records: best strategies, best defaults, tasks, searches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from engine.errors import UnknownNameError
from engine.results._records import BestDefault, BestReport, BestStrategy, SearchSummary, StoredTask
from engine.storage import Database, DefaultRow, SearchRow, reads
from engine.warmstarter import WarmStartRecord

__all__ = ["best", "best_report", "defaults", "searches", "tasks"]


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
            known = ", ".join(reads.search_names(s)) or "none"
            raise UnknownNameError(f"no search {search!r} in this storage; stored searches: {known}")
        yield s


def best(
    *, storage: str | None = None, search: str | None = None, task: str | None = None
) -> list[BestStrategy]:
    """The best strategy per task, optionally for one search and/or one task.

    Args:
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        search: Only this search.
        task: Only this task: its name in its search or a prefix of its fingerprint.

    Raises:
        UnknownNameError: ``search`` is given but no such search is stored.
    """
    with _reading(storage, search) as s:
        if s is None:
            return []
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
            )
            for b, link, srch, trow in reads.best_rows(s, search=search)
            if task is None or task == link.key or trow.fingerprint.startswith(task)
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

    Defaults are judged over a whole search's tasks, so when ``task`` is given there are none.

    Args:
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        search: Only this search.
        task: Only this task: its name in its search or a prefix of its fingerprint.

    Raises:
        UnknownNameError: ``search`` is given but no such search is stored.
    """
    rows = best(storage=storage, search=search, task=task)
    found = defaults(storage=storage, search=search) if task is None else []
    return BestReport(rows, found)


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
    db = _open(storage)
    if db is None:
        return []
    with db.session() as s:
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
        return [
            SearchSummary(
                name=r.name,
                status=r.status,
                tasks=[t.key for t in r.tasks],
                n_trials=int(r.spec.get("search", {}).get("n_trials", 0)),
                seed=int(r.spec.get("search", {}).get("seed", 0)),
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in reads.searches_newest_first(s)
        ]
