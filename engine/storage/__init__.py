"""The study database: the engine's SQLAlchemy models and the :class:`Database` that opens them."""

from __future__ import annotations

from engine.storage.database import Database
from engine.storage.models import Base, BestRow, DefaultRow, SearchRow, SearchTaskRow, TaskRow

__all__ = ["Base", "BestRow", "Database", "DefaultRow", "SearchRow", "SearchTaskRow", "TaskRow"]
