"""The engine's queries on its own tables, for the write side (searches) and transfer.

Each function takes an open :class:`~sqlalchemy.orm.Session` (from :meth:`Database.session`, which
commits or rolls back), so a caller composes several into one transaction. The read side of results and
recommendations is in :mod:`engine.storage.reads`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, inspect, or_, select, text
from sqlalchemy.orm import Session

from engine.errors import StorageError
from engine.storage.models import ArtifactRow, BestRow, DefaultRow, SearchRow, SearchTaskRow, TaskRow
from engine.vocabulary import SearchStatus

__all__ = [
    "advisory_xact_lock",
    "artifacts_of",
    "best_row",
    "default_row",
    "defaults_of_kind",
    "delete_search_rows",
    "drop_artifacts",
    "fingerprints_by_search",
    "named_lock",
    "set_search_status",
    "set_warm_start",
    "tasks_of_kind",
]


def tasks_of_kind(s: Session, kind: str) -> list[TaskRow]:
    """Every stored task of ``kind`` (``"classification"`` or ``"regression"``)."""
    return list(s.scalars(select(TaskRow).where(TaskRow.kind == kind)))


def fingerprints_by_search(s: Session) -> dict[int, set[str]]:
    """Search id -> the fingerprints of its tasks."""
    out: dict[int, set[str]] = {}
    stmt = select(SearchTaskRow.search_id, TaskRow.fingerprint).join(
        TaskRow, SearchTaskRow.task_id == TaskRow.id
    )
    for search_id, fp in s.execute(stmt):
        out.setdefault(search_id, set()).add(fp)
    return out


def defaults_of_kind(s: Session, kind: str) -> list[tuple[DefaultRow, str]]:
    """Cross-task best defaults of ``kind`` with their search's name, lowest loss first.

    An older database may not have the defaults table yet; then there are none.
    """
    if not inspect(s.connection()).has_table(DefaultRow.__tablename__):
        return []
    stmt = (
        select(DefaultRow, SearchRow.name)
        .join(SearchRow, DefaultRow.search_id == SearchRow.id)
        .where(DefaultRow.kind == kind)
        .order_by(DefaultRow.loss)
    )
    return [(row, name) for row, name in s.execute(stmt)]


def set_warm_start(s: Session, search_task_id: int, record: dict[str, Any]) -> None:
    """Store a warm-start record on a search's task row."""
    link = s.get(SearchTaskRow, search_task_id)
    if link is not None:
        link.warm_start = record


def set_search_status(s: Session, search_id: int, status: SearchStatus) -> None:
    """Mark a search ``running``, ``finished``, ``interrupted`` or ``failed``."""
    row = s.get(SearchRow, search_id)
    if row is not None:
        row.status = status


def best_row(s: Session, search_task_id: int) -> BestRow | None:
    """The best-so-far row of a search's task, if it has one, locked until the transaction ends.

    (``FOR UPDATE`` on PostgreSQL; an SQLite writer holds the whole database from ``BEGIN IMMEDIATE``.)
    Workers read it to decide what to write, so two of them must not both act on the same old row.
    """
    return s.scalar(select(BestRow).where(BestRow.search_task_id == search_task_id).with_for_update())


def default_row(s: Session, search_id: int) -> DefaultRow | None:
    """The best-default row of a cross-task search, if it has one, locked like :func:`best_row`."""
    return s.scalar(select(DefaultRow).where(DefaultRow.search_id == search_id).with_for_update())


def advisory_xact_lock(s: Session, key: int) -> None:
    """PostgreSQL: wait for the advisory lock ``key``, held until the session's transaction ends.

    The server releases it when the transaction ends or the connection drops (a killed worker).
    """
    s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


@contextmanager
def named_lock(s: Session, name: str) -> Iterator[None]:
    """MySQL / MariaDB: hold the named lock ``name`` (``GET_LOCK``) on the session's connection.

    The server releases it on ``RELEASE_LOCK`` or when the connection drops (a killed worker).
    """
    got = s.execute(text("SELECT GET_LOCK(:name, -1)"), {"name": name}).scalar()
    if got != 1:
        raise StorageError(f"could not take the database lock {name!r} (GET_LOCK returned {got!r})")
    try:
        yield
    finally:
        s.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})


def drop_artifacts(
    s: Session, search_task_id: int, *, keep_trial: int, keep_artifact: str | None = None
) -> list[tuple[str, str]]:
    """Delete the kept-model rows of a search's task other than trial ``keep_trial``'s (and, given
    ``keep_artifact``, other than that one model).

    Returns ``(artifact_id, store)`` of each deleted row, for the caller to remove the files after commit.
    """
    other = ArtifactRow.trial_number != keep_trial
    if keep_artifact is not None:
        other = or_(other, ArtifactRow.artifact_id != keep_artifact)
    rows = list(s.scalars(select(ArtifactRow).where(ArtifactRow.search_task_id == search_task_id, other)))
    if rows:
        s.execute(delete(ArtifactRow).where(ArtifactRow.id.in_([r.id for r in rows])))
    return [(r.artifact_id, r.store) for r in rows]


def artifact_kept(s: Session, artifact_id: str) -> bool:
    """Whether a kept-model row records the artifact ``artifact_id``."""
    return s.scalar(select(ArtifactRow.id).where(ArtifactRow.artifact_id == artifact_id)) is not None


def artifacts_of(s: Session, search_task_ids: list[int]) -> list[ArtifactRow]:
    """The kept-model rows of the given search tasks."""
    if not search_task_ids:
        return []
    return list(s.scalars(select(ArtifactRow).where(ArtifactRow.search_task_id.in_(search_task_ids))))


def delete_search_rows(s: Session, search_id: int, search_task_ids: list[int] | None = None) -> None:
    """Delete a search's engine rows (or only those of some of its tasks): kept models, best rows, links.

    Without ``search_task_ids`` the search row and its cross-task default go too. Stored tasks
    (``stratagem_tasks``) stay: other searches may use them, and a task keeps its split for good.
    """
    whole = search_task_ids is None
    ids = (
        list(s.scalars(select(SearchTaskRow.id).where(SearchTaskRow.search_id == search_id)))
        if search_task_ids is None
        else list(search_task_ids)
    )
    if ids:
        s.execute(delete(ArtifactRow).where(ArtifactRow.search_task_id.in_(ids)))
        s.execute(delete(BestRow).where(BestRow.search_task_id.in_(ids)))
        s.execute(delete(SearchTaskRow).where(SearchTaskRow.id.in_(ids)))
    if whole:
        s.execute(delete(DefaultRow).where(DefaultRow.search_id == search_id))
        s.execute(delete(SearchRow).where(SearchRow.id == search_id))
