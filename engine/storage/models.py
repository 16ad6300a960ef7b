"""The engine's own tables, beside Optuna's in the same database.

=========================== ==========================================================================
table                       one row per
=========================== ==========================================================================
``stratagem_schema``        the schema version (one row)
``stratagem_tasks``         task, identified by its data's fingerprint: meta-features and stored split
``stratagem_searches``      search (a spec run under a name): its spec, status and task-study name
``stratagem_search_tasks``  task of a search: its name there, its strategy study, the evaluator
``stratagem_best``          task of a search that has a finished trial: the best strategy so far
``stratagem_defaults``      cross-task search: the best single configuration over all its tasks
``stratagem_artifacts``     kept trained model of a trial (weights in Optuna's artifact store)
=========================== ==========================================================================
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from engine.configuration import Configuration

__all__ = [
    "ArtifactRow",
    "Base",
    "BestRow",
    "DefaultRow",
    "SchemaRow",
    "SearchRow",
    "SearchTaskRow",
    "TaskRow",
]

SCHEMA_VERSION = 1


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class ConfigurationColumns:
    """The four columns of a stored :class:`~engine.configuration.Configuration`, read and written as one."""

    strategy: Mapped[str] = mapped_column(String(200))
    strategy_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    updater: Mapped[str] = mapped_column(String(200))
    updater_params: Mapped[dict[str, Any]] = mapped_column(JSON)

    @property
    def configuration(self) -> Configuration:
        """The stored configuration as one value."""
        return Configuration(
            self.strategy, dict(self.strategy_params), self.updater, dict(self.updater_params)
        )

    @configuration.setter
    def configuration(self, config: Configuration) -> None:
        self.strategy, self.strategy_params = config.strategy, dict(config.strategy_params)
        self.updater, self.updater_params = config.updater, dict(config.updater_params)


class SchemaRow(Base):
    __tablename__ = "stratagem_schema"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class TaskRow(Base):
    """A task, stored once per distinct data (fingerprint), whatever search or name it came under."""

    __tablename__ = "stratagem_tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(200))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    n_samples: Mapped[int] = mapped_column(Integer)
    n_features: Mapped[int] = mapped_column(Integer)
    n_classes: Mapped[int] = mapped_column(Integer)
    meta_features: Mapped[dict[str, Any]] = mapped_column(JSON)
    split: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)

    @classmethod
    def by_fingerprint(cls, session: Session, fingerprint: str) -> TaskRow | None:
        return session.scalar(select(cls).where(cls.fingerprint == fingerprint))


class SearchRow(Base):
    """A named search: the spec it was last run with and how that run ended.

    ``status`` is ``running``, ``finished``, ``interrupted`` (Ctrl-C) or ``failed`` (an error).
    """

    __tablename__ = "stratagem_searches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), default="running")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)

    tasks: Mapped[list[SearchTaskRow]] = relationship(back_populates="search", cascade="all, delete-orphan")

    @classmethod
    def by_name(cls, session: Session, name: str) -> SearchRow | None:
        return session.scalar(select(cls).where(cls.name == name))


class SearchTaskRow(Base):
    """A task as one search knows it: its name there and the Optuna study of its strategies."""

    __tablename__ = "stratagem_search_tasks"
    __table_args__ = (UniqueConstraint("search_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int] = mapped_column(ForeignKey("stratagem_searches.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(ForeignKey("stratagem_tasks.id"))
    key: Mapped[str] = mapped_column(String(200))
    study_name: Mapped[str] = mapped_column(String(512))
    evaluator: Mapped[str] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(16))
    warm_start: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    search: Mapped[SearchRow] = relationship(back_populates="tasks")
    task: Mapped[TaskRow] = relationship()
    best: Mapped[BestRow | None] = relationship(back_populates="search_task", cascade="all, delete-orphan")


class BestRow(ConfigurationColumns, Base):
    """The best finished trial of a task in a search, kept current while the search runs."""

    __tablename__ = "stratagem_best"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_task_id: Mapped[int] = mapped_column(
        ForeignKey("stratagem_search_tasks.id", ondelete="CASCADE"), unique=True
    )
    trial_number: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    test_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_trials: Mapped[int] = mapped_column(Integer, default=0)
    notes: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)

    search_task: Mapped[SearchTaskRow] = relationship(back_populates="best")


class DefaultRow(ConfigurationColumns, Base):
    """The best default of a cross-task search: one configuration judged over all its tasks.

    ``loss`` is the seed's meta-objective, ``L(θ) = Σ_i 𝓛_i / N``, with each task's value normalised
    to a loss in which 0 is a perfect prediction and 1 a trivial one (majority class, mean value).
    """

    __tablename__ = "stratagem_defaults"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_id: Mapped[int] = mapped_column(
        ForeignKey("stratagem_searches.id", ondelete="CASCADE"), unique=True
    )
    study_name: Mapped[str] = mapped_column(String(512))
    kind: Mapped[str] = mapped_column(String(32))
    trial_number: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float] = mapped_column(Float)
    per_task: Mapped[dict[str, Any]] = mapped_column(JSON)
    n_trials: Mapped[int] = mapped_column(Integer, default=0)
    task_evaluations: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=_now, onupdate=_now)


class ArtifactRow(Base):
    """A trained model kept for a trial of a search's task: the Optuna artifact holding its weights.

    The file itself is in the artifact store (:mod:`engine.trained`), linked from the trial by Optuna's
    ``artifacts:<id>`` system attribute; this row says which artifacts the engine still keeps, so that
    keeping only the best, ``stratagem searches`` and ``stratagem delete`` need not scan the store.
    """

    __tablename__ = "stratagem_artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    search_task_id: Mapped[int] = mapped_column(
        ForeignKey("stratagem_search_tasks.id", ondelete="CASCADE"), index=True
    )
    trial_number: Mapped[int] = mapped_column(Integer)
    artifact_id: Mapped[str] = mapped_column(String(64), unique=True)
    store: Mapped[str] = mapped_column(Text)
    n_bytes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=_now)
