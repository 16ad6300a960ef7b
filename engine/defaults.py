"""Reading back the best defaults that cross-task searches found (table ``stratagem_defaults``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from engine.errors import UnknownNameError
from engine.storage import Database, DefaultRow, SearchRow

__all__ = ["BestDefault", "defaults"]


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
    db = Database(storage, create=False)
    if not db.has_tables():
        if search is not None:
            raise UnknownNameError(f"no search {search!r}: the storage holds no Stratagem data yet")
        return []
    with db.session() as s:
        if search is not None and SearchRow.by_name(s, search) is None:
            known = ", ".join(s.scalars(select(SearchRow.name))) or "none"
            raise UnknownNameError(f"no search {search!r} in this storage; stored searches: {known}")
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
