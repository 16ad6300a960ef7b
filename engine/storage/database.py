"""Opening the study database: engines per URL, SQLite tuning, sessions that turn errors into ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import StorageError
from engine.settings import resolve_storage
from engine.storage.models import SCHEMA_VERSION, Base, SchemaRow

__all__ = ["Database", "tune_sqlite"]

_engines: dict[str, Engine] = {}


def _engine(url: str) -> Engine:
    if url in _engines:
        return _engines[url]
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise StorageError(
            f"cannot use storage URL {url!r}: {exc}. Give an SQLAlchemy URL such as "
            "sqlite:///stratagem.db or postgresql+psycopg://user@host/dbname"
        ) from None
    tune_sqlite(engine)
    _engines[url] = engine
    return engine


def tune_sqlite(engine: Engine) -> None:
    """On SQLite: write-ahead logging, no fsync per commit, wait for locks instead of failing.

    WAL with ``synchronous=NORMAL`` keeps the file consistent after a crash (the last commits may be
    lost on power failure, never half-written) and lets readers work while a worker writes. The
    engine applies it to its own connections and to Optuna's storage on the same file.
    """
    if engine.dialect.name != "sqlite" or ":memory:" in str(engine.url):
        return

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    engine.dispose()  # connections opened before the listener get replaced


class Database:
    """The engine's tables in the database at ``url`` (created if missing).

    Args:
        url: An SQLAlchemy URL; ``None`` means ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.

    Raises:
        StorageError: The URL is malformed, the server unreachable, or the schema newer than this
            version of Stratagem understands.
    """

    def __init__(self, url: str | None = None, *, create: bool = True) -> None:
        self.url = resolve_storage(url)
        self.engine = _engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if create:
            self._ensure_schema()

    def _ensure_schema(self) -> None:
        try:
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot open the study database {self.safe_url}: {_first_line(exc)}. "
                "Check that the server runs and the URL (user, host, database name) is right"
            ) from None
        with self.session() as s:
            row = s.get(SchemaRow, 1)
            if row is None:
                try:
                    with s.begin_nested():
                        s.add(SchemaRow(id=1, version=SCHEMA_VERSION))
                except IntegrityError:
                    pass  # another worker created it first
            elif row.version > SCHEMA_VERSION:
                raise StorageError(
                    f"{self.safe_url} was written by a newer Stratagem (schema {row.version}, this "
                    f"one understands {SCHEMA_VERSION}); upgrade with `pip install -U stratagem`"
                )

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success, rolls back on error, and raises StorageError."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise StorageError(f"database error on {self.safe_url}: {_first_line(exc)}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def has_tables(self) -> bool:
        """Whether the engine's tables exist (without creating them)."""
        from sqlalchemy import inspect

        try:
            return inspect(self.engine).has_table("stratagem_tasks")
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot open the study database {self.safe_url}: {_first_line(exc)}"
            ) from None

    def scalars(self, statement: Any) -> list[Any]:
        with self.session() as s:
            return list(s.scalars(statement))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
