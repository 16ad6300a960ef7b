"""The read side of the engine's tables: what results and recommendations show.

Each function takes an open :class:`~sqlalchemy.orm.Session` (from :meth:`Database.session`) and returns
rows or plain values; turning them into records is left to :mod:`engine.results` and
:mod:`engine.recommendation`, which hold no SQL. The write side (searches, transfer) is in
:mod:`engine.storage.queries`. Nothing here touches Optuna's tables.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from engine.errors import UnknownNameError
from engine.storage.models import ArtifactRow, BestRow, DefaultRow, SearchRow, SearchTaskRow, TaskRow

__all__ = [
    "BestJoin",
    "artifact_row",
    "artifact_totals",
    "best_rows",
    "default_rows",
    "has_strategy_studies",
    "search_names",
    "search_studies",
    "searches_by_task",
    "searches_newest_first",
    "stored_spec",
    "task_names",
    "task_rows",
    "tasks_matching",
]

BestJoin = tuple[BestRow, SearchTaskRow, SearchRow, TaskRow]
"""A best row with the search's task it belongs to, the search and the task."""


def search_names(s: Session) -> list[str]:
    """The names of every stored search, sorted."""
    return sorted(s.scalars(select(SearchRow.name)))


def unknown_search(s: Session, search: str) -> UnknownNameError:
    """The error for a search that a lookup did not find, listing the stored ones.

    The listing is a second query: a search registered in between (another process starting it) is
    in it, and is then said to have appeared meanwhile rather than listed as if it were another one.
    """
    names = search_names(s)
    if search in names:
        return UnknownNameError(f"search {search!r} was being registered while this read; run it again")
    return UnknownNameError(
        f"no search {search!r} in this storage; stored searches: {', '.join(names) or 'none'}"
    )


def best_rows(s: Session, *, search: str | None = None) -> list[BestJoin]:
    """Every best row (of one search, if given), ordered by search name and task name in the search."""
    stmt = (
        select(BestRow, SearchTaskRow, SearchRow, TaskRow)
        .join(SearchTaskRow, BestRow.search_task_id == SearchTaskRow.id)
        .join(SearchRow, SearchTaskRow.search_id == SearchRow.id)
        .join(TaskRow, SearchTaskRow.task_id == TaskRow.id)
        .order_by(SearchRow.name, SearchTaskRow.key)
    )
    if search is not None:
        stmt = stmt.where(SearchRow.name == search)
    return [(b, link, srch, task) for b, link, srch, task in s.execute(stmt)]


def default_rows(s: Session, *, search: str | None = None) -> list[tuple[DefaultRow, str]]:
    """Every cross-task best default (of one search, if given) with its search's name, by that name."""
    stmt = (
        select(DefaultRow, SearchRow.name)
        .join(SearchRow, DefaultRow.search_id == SearchRow.id)
        .order_by(SearchRow.name)
    )
    if search is not None:
        stmt = stmt.where(SearchRow.name == search)
    return [(row, name) for row, name in s.execute(stmt)]


def task_rows(s: Session) -> list[TaskRow]:
    """Every stored task, by name."""
    return list(s.scalars(select(TaskRow).order_by(TaskRow.name)))


def task_names(s: Session) -> list[str]:
    """The distinct names of the stored tasks, sorted."""
    return sorted(set(s.scalars(select(TaskRow.name))))


def searches_by_task(s: Session) -> dict[int, list[str]]:
    """Task id -> the names of the searches that used the task, sorted."""
    stmt = select(SearchTaskRow.task_id, SearchRow.name).join(
        SearchRow, SearchTaskRow.search_id == SearchRow.id
    )
    used: dict[int, list[str]] = {}
    for task_id, name in s.execute(stmt):
        used.setdefault(task_id, []).append(name)
    return {task_id: sorted(names) for task_id, names in used.items()}


def stored_spec(s: Session, name: str) -> dict[str, Any] | None:
    """The spec the search ``name`` was last run with (as :meth:`SearchSpec.to_dict` wrote it), if stored."""
    spec = s.scalar(select(SearchRow.spec).where(SearchRow.name == name))
    return dict(spec) if spec is not None else None


def searches_newest_first(s: Session) -> list[SearchRow]:
    """Every stored search, newest first, with its tasks loaded."""
    stmt = select(SearchRow).options(joinedload(SearchRow.tasks)).order_by(SearchRow.created_at.desc())
    return list(s.scalars(stmt).unique())


def tasks_matching(s: Session, name: str) -> list[TaskRow]:
    """Stored tasks that ``name`` may mean.

    A task matches by its stored name, by its name in any search, or (for six characters or more) by a
    prefix of its fingerprint.
    """
    in_searches = set(s.scalars(select(SearchTaskRow.task_id).where(SearchTaskRow.key == name)))
    return [
        r
        for r in s.scalars(select(TaskRow).order_by(TaskRow.id))
        if r.name == name or r.id in in_searches or (len(name) >= 6 and r.fingerprint.startswith(name))
    ]


def has_strategy_studies(s: Session, kind: str, *, exclude_fingerprint: str | None = None) -> bool:
    """Whether some search ran a study on a stored task of ``kind`` other than ``exclude_fingerprint``.

    Read from the engine's own tables: a search records each of its task studies there, so when this is
    false there is no history to read from Optuna's tables (which may not even exist yet).
    """
    stmt = (
        select(SearchTaskRow.id)
        .join(TaskRow, SearchTaskRow.task_id == TaskRow.id)
        .where(TaskRow.kind == kind)
        .limit(1)
    )
    if exclude_fingerprint is not None:
        stmt = stmt.where(TaskRow.fingerprint != exclude_fingerprint)
    return s.scalar(stmt) is not None


def artifact_row(s: Session, search_task_id: int, trial_number: int) -> ArtifactRow | None:
    """The kept model of one trial of a search's task, if it is kept."""
    return s.scalar(
        select(ArtifactRow)
        .where(ArtifactRow.search_task_id == search_task_id, ArtifactRow.trial_number == trial_number)
        .order_by(ArtifactRow.id.desc())
        .limit(1)
    )


def artifact_totals(s: Session) -> dict[int, tuple[int, int]]:
    """Search id -> (kept models, their bytes)."""
    stmt = (
        select(
            SearchTaskRow.search_id,
            func.count(ArtifactRow.id),
            func.coalesce(func.sum(ArtifactRow.n_bytes), 0),
        )
        .join(SearchTaskRow, ArtifactRow.search_task_id == SearchTaskRow.id)
        .group_by(SearchTaskRow.search_id)
    )
    return {search_id: (int(n), int(size)) for search_id, n, size in s.execute(stmt)}


def search_studies(s: Session, *, search: str | None = None) -> list[tuple[str, str, str]]:
    """(search, task, study name) of every task of every search (or of ``search``), by search and task.

    A cross-task search's tasks share one study, so it appears once per task.
    """
    stmt = (
        select(SearchRow.name, SearchTaskRow.key, SearchTaskRow.study_name)
        .join(SearchRow, SearchTaskRow.search_id == SearchRow.id)
        .order_by(SearchRow.name, SearchTaskRow.key)
    )
    if search is not None:
        stmt = stmt.where(SearchRow.name == search)
    return [(a, b, c) for a, b, c in s.execute(stmt)]
