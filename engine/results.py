"""Reading results back: the best strategy per task, the best default of cross-task searches, the
stored tasks, the searches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from engine.errors import UnknownNameError
from engine.storage import BestRow, Database, DefaultRow, SearchRow, SearchTaskRow, TaskRow

__all__ = [
    "BestDefault",
    "BestStrategy",
    "SearchSummary",
    "StoredTask",
    "best",
    "defaults",
    "searches",
    "tasks",
]


@dataclass(frozen=True)
class BestStrategy:
    """The best strategy found for one task of one search.

    Attributes:
        search: The search's name.
        task: The task's name in that search.
        fingerprint: The task's data fingerprint (same data, same fingerprint, across searches).
        study: The Optuna study that explored strategies for the task.
        trial: Number of the best trial in that study.
        strategy: Strategy name; ``strategy_params`` are its ``__init__`` keyword arguments.
        updater: Updater name; ``updater_params`` are its ``__init__`` keyword arguments.
        evaluator: Evaluator name; ``direction`` says whether higher or lower is better.
        value: The evaluator's value on the validation split (the mean over folds for k-fold).
        test_value: The same strategy's value on the untouched test split.
        n_trials: Finished (complete or pruned) trials in the study.
        warm_start: How the study was warm-started, if it was (sources and reasons).
    """

    search: str
    task: str
    fingerprint: str
    study: str
    trial: int
    strategy: str
    strategy_params: dict[str, Any]
    updater: str
    updater_params: dict[str, Any]
    evaluator: str
    direction: str
    value: float
    test_value: float | None
    n_trials: int
    updated_at: datetime | None = None
    warm_start: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        return d


@dataclass(frozen=True)
class StoredTask:
    """A task stored in the database, with its meta-features."""

    name: str
    fingerprint: str
    kind: str
    source: str
    options: dict[str, Any]
    n_samples: int
    n_features: int
    n_classes: int
    meta_features: dict[str, float]
    searches: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchSummary:
    """A search stored in the database."""

    name: str
    status: str
    tasks: list[str]
    n_trials: int
    seed: int
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["updated_at"] = self.updated_at.isoformat()
        return d


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
            known = ", ".join(s.scalars(select(SearchRow.name))) or "none"
            raise UnknownNameError(f"no search {search!r} in this storage; stored searches: {known}")
        yield s


def best(
    *, storage: str | None = None, search: str | None = None, task: str | None = None
) -> list[BestStrategy]:
    """The best strategy per task, optionally for one search and/or one task.

    ``task`` matches a task's name in its search or a prefix of its fingerprint.

    Raises:
        UnknownNameError: ``search`` is given but no such search is stored.
    """
    with _reading(storage, search) as s:
        if s is None:
            return []
        stmt = (
            select(BestRow, SearchTaskRow, SearchRow, TaskRow)
            .join(SearchTaskRow, BestRow.search_task_id == SearchTaskRow.id)
            .join(SearchRow, SearchTaskRow.search_id == SearchRow.id)
            .join(TaskRow, SearchTaskRow.task_id == TaskRow.id)
            .order_by(SearchRow.name, SearchTaskRow.key)
        )
        if search is not None:
            stmt = stmt.where(SearchRow.name == search)
        out = []
        for b, link, srch, trow in s.execute(stmt):
            if task is not None and task != link.key and not trow.fingerprint.startswith(task):
                continue
            out.append(
                BestStrategy(
                    search=srch.name,
                    task=link.key,
                    fingerprint=trow.fingerprint,
                    study=link.study_name,
                    trial=b.trial_number,
                    strategy=b.strategy,
                    strategy_params=dict(b.strategy_params),
                    updater=b.updater,
                    updater_params=dict(b.updater_params),
                    evaluator=link.evaluator,
                    direction=link.direction,
                    value=b.value,
                    test_value=b.test_value,
                    n_trials=b.n_trials,
                    updated_at=b.updated_at,
                    warm_start=link.warm_start,
                )
            )
        return out


def tasks(*, storage: str | None = None) -> list[StoredTask]:
    """Every stored task with its meta-features and the searches that used it."""
    db = _open(storage)
    if db is None:
        return []
    with db.session() as s:
        rows = s.scalars(select(TaskRow).order_by(TaskRow.name)).all()
        links = s.execute(
            select(SearchTaskRow.task_id, SearchRow.name).join(
                SearchRow, SearchTaskRow.search_id == SearchRow.id
            )
        ).all()
        used: dict[int, list[str]] = {}
        for task_id, search_name in links:
            used.setdefault(task_id, []).append(search_name)
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
                searches=sorted(used.get(r.id, [])),
            )
            for r in rows
        ]


def searches(*, storage: str | None = None) -> list[SearchSummary]:
    """Every stored search, newest first."""
    db = _open(storage)
    if db is None:
        return []
    with db.session() as s:
        rows = s.scalars(
            select(SearchRow).options(joinedload(SearchRow.tasks)).order_by(SearchRow.created_at.desc())
        ).unique()
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
            for r in rows
        ]


@dataclass(frozen=True)
class BestDefault:
    """The best single configuration a cross-task search found over all its tasks.

    Attributes:
        search: The search's name.
        study: Its Optuna study (``<search>/cross_task``).
        kind: The tasks' kind, or ``"mixed"``.
        trial: Number of the best complete trial in that study.
        strategy: Strategy name; ``strategy_params`` are its ``__init__`` keyword arguments.
        updater: Updater name; ``updater_params`` are its ``__init__`` keyword arguments.
        loss: Mean normalised validation loss over the tasks (0 perfect, 1 trivial predictor); see
            :mod:`engine.crosstask`.
        test_loss: The same mean on the test splits (``None`` if a task lacks a test value).
        per_task: ``{task: {"value", "loss", "test_value", "test_loss"}}``, values in each task's
            evaluator's units.
        n_trials: Finished (complete or pruned) trials in the study.
        task_evaluations: Task evaluations spent over all trials (racing keeps it below
            ``n_trials × tasks``).
        updated_at: When the row last changed.
    """

    search: str
    study: str
    kind: str
    trial: int
    strategy: str
    strategy_params: dict[str, Any]
    updater: str
    updater_params: dict[str, Any]
    loss: float
    test_loss: float | None
    per_task: dict[str, dict[str, Any]]
    n_trials: int
    task_evaluations: int
    updated_at: datetime | None = None

    @property
    def tasks(self) -> list[str]:
        """The tasks the default was judged on."""
        return sorted(self.per_task)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        d = asdict(self)
        d["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        return d


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
        stmt = (
            select(DefaultRow, SearchRow.name)
            .join(SearchRow, DefaultRow.search_id == SearchRow.id)
            .order_by(SearchRow.name)
        )
        if search is not None:
            stmt = stmt.where(SearchRow.name == search)
        return [_record(row, name) for row, name in s.execute(stmt)]


def _record(row: DefaultRow, search: str) -> BestDefault:
    per_task = {k: dict(v) for k, v in dict(row.per_task).items()}
    test_losses = [float(x) for t in per_task.values() if isinstance(x := t.get("test_loss"), int | float)]
    complete = bool(per_task) and len(test_losses) == len(per_task)
    test_loss = sum(test_losses) / len(test_losses) if complete else None
    return BestDefault(
        search=search,
        study=row.study_name,
        kind=row.kind,
        trial=row.trial_number,
        strategy=row.strategy,
        strategy_params=dict(row.strategy_params),
        updater=row.updater,
        updater_params=dict(row.updater_params),
        loss=row.loss,
        test_loss=test_loss,
        per_task=per_task,
        n_trials=row.n_trials,
        task_evaluations=row.task_evaluations,
        updated_at=row.updated_at,
    )
