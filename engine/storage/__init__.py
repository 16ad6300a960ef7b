"""The study database: the engine's SQLAlchemy models, the :class:`Database` that opens them, and the
engine's queries (:mod:`.queries` for searches and transfer, :mod:`.reads` for results), beside Optuna's
own tables (reached through :mod:`.optuna_adapter`, and in bulk through :mod:`.optuna_batch` for
writes and :mod:`.optuna_reads` for transfer's reads)."""

from __future__ import annotations

from engine.storage import queries
from engine.storage.database import Database
from engine.storage.models import ArtifactRow, Base, BestRow, DefaultRow, SearchRow, SearchTaskRow, TaskRow

__all__ = [
    "ArtifactRow",
    "Base",
    "BestRow",
    "Database",
    "DefaultRow",
    "SearchRow",
    "SearchTaskRow",
    "TaskRow",
    "queries",
]
