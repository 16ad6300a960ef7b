"""Opening the study database: engines per URL, SQLite tuning, sessions that turn errors into ours."""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import StorageError
from engine.settings import mask_password, resolve_storage
from engine.storage import queries
from engine.storage.models import SCHEMA_VERSION, Base, SchemaRow

__all__ = [
    "Database",
    "check_local_file",
    "file_lock",
    "filesystem_type",
    "refuse_uri_filename",
    "sqlite_path",
    "tune_sqlite",
]

_engines: dict[tuple[str, bool], Engine] = {}
_warned: set[str] = set()
log = logging.getLogger("stratagem")


def _engine(url: str, write: bool = True) -> Engine:
    if (url, write) in _engines:
        return _engines[url, write]
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        raise StorageError(
            f"cannot use storage URL {mask_password(url)!r}: {exc}. Give an SQLAlchemy URL such as "
            "sqlite:///stratagem.db or postgresql+psycopg://user@host/dbname"
        ) from None
    tune_sqlite(engine, write=write)
    _engines[url, write] = engine
    return engine


def tune_sqlite(engine: Engine, *, write: bool = True) -> None:
    """On SQLite: wait for locks instead of failing; for writers also WAL and immediate transactions.

    WAL with ``synchronous=NORMAL`` keeps the file consistent after a crash (the last commits may be
    lost on power failure, never half-written) and lets readers work while a worker writes. Writers
    begin every transaction with ``BEGIN IMMEDIATE`` so that a transaction that reads and then writes
    waits for the write lock up front instead of failing ("database is locked") when another worker
    wrote in between. Readers (``write=False``) change nothing in the file, not even its journal mode.
    The engine applies it to its own connections and to Optuna's storage on the same file.
    """
    if engine.dialect.name != "sqlite" or ":memory:" in str(engine.url):
        return

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if write and not _foreign_sqlite(cursor):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
        if write:
            dbapi_connection.isolation_level = None  # transactions begin below, not in the driver

    if write:

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listener get replaced


def _foreign_sqlite(cursor: Any) -> bool:
    """Whether an SQLite file holds another program's tables (:func:`foreign`), which the engine refuses
    (``Database._foreign_tables``) and must leave as it found it, journal mode included."""
    try:
        tables = {row[0] for row in cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except Exception:  # not a database, or unreadable: opening reports it
        return False
    return foreign(tables, sqlite=True)


def foreign(tables: set[str], *, sqlite: bool) -> bool:
    """Whether a database with these tables is not the engine's to use: tables named like Optuna's or
    the engine's that are not theirs (Optuna's ``studies`` without its ``version_info``, ...), or an
    SQLite file that holds only other tables (another program's file: the engine keeps its studies in a
    database of its own). An empty database is the engine's."""
    ours = {name for name in tables if name.startswith("stratagem_")}
    optunas = tables & OPTUNA_TABLES
    clash = bool(optunas and "version_info" not in tables) or bool(ours and "stratagem_schema" not in tables)
    alien = sqlite and bool(tables) and not ours and not optunas
    return clash or alien


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (``None`` for other databases and in-memory SQLite)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # not a URL, or a port that is no number: not an SQLite file
        return None
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def in_memory_sqlite(url: str) -> bool:
    """Whether ``url`` is an SQLite database in memory (``sqlite://``, ``sqlite:///:memory:``, ...)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return False
    name = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and (
        name in ("", ":memory:")
        or (name.startswith("file:") and ("mode=memory" in name or parsed.query.get("mode") == "memory"))
        or name.startswith("file::memory:")
    )


def refuse_uri_filename(url: str) -> None:
    """Refuse an SQLite URI filename (``sqlite:///file:x.db``, with or without ``?uri=true``).

    Stratagem finds the database file by its path, to lock it for many workers and keep trained models
    beside it; a URI names it otherwise (and without ``uri=true`` SQLite makes a file called
    ``file:x.db``). In-memory URIs are left to :func:`refuse_in_memory`.

    Raises:
        StorageError: Naming the plain form of the same file.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return
    name = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not name.startswith("file:") or in_memory_sqlite(url):
        return
    path = unquote(name[len("file:") :].split("?", 1)[0])
    if path.startswith("//"):  # file://localhost/abs/x.db or file:///abs/x.db
        path = "/" + path[2:].split("/", 1)[-1] if "/" in path[2:] else "/"
    plain = parsed.set(database=path or "stratagem.db", query={})
    raise StorageError(
        f"{mask_password(url)} is an SQLite URI filename ('file:...'), which Stratagem does not open: it "
        "finds the database file by its path, to lock it for many workers and keep trained models beside "
        f"it. Use the plain form {plain.render_as_string(hide_password=False)}"
    )


def refuse_in_memory(url: str) -> None:
    """Refuse an in-memory SQLite URL for a study database.

    Raises:
        StorageError: ``url`` is an SQLite database in memory.
    """
    if in_memory_sqlite(url):
        raise StorageError(
            f"{url} is an SQLite database in memory, private to one connection: Optuna's studies and the "
            "engine's tables cannot share it, and it is gone when the process ends. Use a file, such as "
            "sqlite:///stratagem.db"
        )


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a directory) shared by every process of this machine.

    The kernel releases it when the process dies. Without ``fcntl`` (Windows) it does nothing.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph", "glusterfs", "lustre", "gpfs"}
)
"""File systems on which SQLite's locks do not hold between machines (SQLite's own FAQ warns of them)."""

ALLOW_NETWORK_ENV = "STRATAGEM_ALLOW_NETWORK_SQLITE"


def filesystem_type(path: Path, mounts: str | None = None) -> str | None:
    """The type of the file system that holds ``path`` (Linux ``/proc/mounts``; ``None`` elsewhere).

    Args:
        path: A file or folder; it need not exist (its nearest existing parent is looked at).
        mounts: The text of a mount table, for tests (default: ``/proc/mounts``).
    """
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    target = path.resolve()
    best: tuple[int, str] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(fields[1].replace("\\040", " "))
        if target == point or point in target.parents:
            depth = len(point.parts)
            if best is None or depth >= best[0]:
                best = (depth, fields[2])
    return None if best is None else best[1]


def check_local_file(path: Path, mounts: str | None = None) -> None:
    """Refuse an SQLite file on a network share, where its locks fail and concurrent writers corrupt it.

    Raises:
        StorageError: Naming the file system and the fix (PostgreSQL, or a local disk).
    """
    kind = filesystem_type(path, mounts)
    if kind in NETWORK_FILESYSTEMS and os.environ.get(ALLOW_NETWORK_ENV) != "1":
        raise StorageError(
            f"the SQLite file {path} is on a network file system ({kind}), where SQLite's locks do not "
            "work and workers writing at once corrupt it. Use a PostgreSQL URL "
            "(postgresql+psycopg://user@host/db) for workers on several machines, or put the file on a "
            f"local disk. Set {ALLOW_NETWORK_ENV}=1 to use it anyway (one process at a time)."
        )


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
        refuse_uri_filename(self.url)
        path = sqlite_path(self.url)
        if path is not None and path.is_dir():
            raise StorageError(
                f"the SQLite path {str(path)!r} is a folder, not a database file; name a file in it, such "
                f"as sqlite:///{(path / 'stratagem.db').as_posix()}"
            )
        self.missing = not create and path is not None and not path.is_file()
        """A reader of an SQLite file that does not exist: it holds nothing, and is not created."""
        if create and path is not None:
            check_local_file(path)
        self.engine = _engine(self.url, write=create)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        if create:
            self._ensure_schema()

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the lock ``name``, shared by every process working on this database.

        PostgreSQL: an advisory lock, released with its transaction or when the holder dies.
        MySQL and MariaDB: a named lock (``GET_LOCK``), released at the end or when the connection drops.
        SQLite: an exclusive lock on the database's folder (one machine). Used to create the schema and
        to claim trials, so that counts and creation are safe with many workers. Other databases have
        no lock here: a warning says that only one worker at a time is safe on them.
        """
        path = sqlite_path(self.url)
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            with self.session() as s:
                queries.advisory_xact_lock(s, zlib.crc32(name.encode()))
                yield
        elif dialect in ("mysql", "mariadb"):
            with self.session() as s, queries.named_lock(s, f"stratagem:{zlib.crc32(name.encode()):08x}"):
                yield
        elif path is not None:
            with file_lock(path.resolve().parent):
                yield
        else:
            if dialect not in _warned and ":memory:" not in self.url and self.url != "sqlite://":
                _warned.add(dialect)
                log.warning(
                    "%s has no lock that Stratagem knows: run one worker at a time on it, or use "
                    "PostgreSQL for many",
                    dialect,
                )
            yield

    def _ensure_schema(self) -> None:
        try:
            with self.lock("stratagem.schema"):
                foreign = self._foreign_tables()
                if foreign is None:
                    Base.metadata.create_all(self.engine)
        except (SQLAlchemyError, StorageError, OSError) as exc:
            raise StorageError(
                f"cannot open the study database {self.safe_url}: {first_line(exc)}. {self._open_hint()}"
            ) from None
        if foreign is not None:
            raise StorageError(foreign)
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

    def _open_hint(self) -> str:
        """What to check when the database cannot be opened: the file and its folder for SQLite (WAL
        mode writes ``-wal`` and ``-shm`` files beside it, even to read), the server and URL otherwise."""
        path = sqlite_path(self.url)
        if path is None:
            return "Check that the server runs and the URL (user, host, database name) is right"
        return (
            f"Check that {path} is a Stratagem database and that its folder exists and is writable (SQLite "
            "keeps -wal and -shm files beside it, even to read); for a read-only copy, copy it to a "
            "writable folder first"
        )

    def _foreign_tables(self) -> str | None:
        """Why another program's tables make this database unusable (before anything is created), or
        ``None``: tables named like Optuna's or the engine's that are not theirs (Optuna's ``studies``
        without its ``version_info``, ...), or an SQLite file that holds only other tables (another
        program's file: the engine keeps its studies in a database of its own)."""
        tables = set(inspect(self.engine).get_table_names())
        if not foreign(tables, sqlite=sqlite_path(self.url) is not None):
            return None
        listed = ", ".join(sorted(tables)[:8]) + (", ..." if len(tables) > 8 else "")
        return (
            f"{self.safe_url} already holds tables of another program ({listed}); Stratagem would mix its "
            "tables with them, so it left them as they were. Point --storage at a new file (such as "
            "sqlite:///studies.db) or at a database of its own"
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
            raise StorageError(f"database error on {self.safe_url}: {first_line(exc)}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def has_tables(self) -> bool:
        """Whether the engine's tables exist (without creating them, nor a missing SQLite file)."""
        if self.missing:
            return False
        try:
            return inspect(self.engine).has_table("stratagem_tasks")
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot open the study database {self.safe_url}: {first_line(exc)}") from None

    def scalars(self, statement: Any) -> list[Any]:
        with self.session() as s:
            return list(s.scalars(statement))


OPTUNA_TABLES = frozenset(
    {
        "studies",
        "study_directions",
        "study_system_attributes",
        "study_user_attributes",
        "trial_heartbeats",
        "trial_intermediate_values",
        "trial_params",
        "trial_system_attributes",
        "trial_user_attributes",
        "trial_values",
        "trials",
        "version_info",
    }
)
"""The tables of Optuna's RDB storage (``version_info`` marks a database Optuna made)."""


def first_line(exc: BaseException) -> str:
    """The first line of a database error: the driver's own words (``orig``) where SQLAlchemy wraps them."""
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
