"""The ``stratagem`` command group and what every command shares: the ``--storage``, ``--json`` and
``--plugin`` options, and turning Stratagem's errors into one line and exit status 2."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from engine.errors import StratagemError
from engine.settings import DEFAULT_STORAGE, STORAGE_ENV
from engine.storage.database import first_line, sqlite_path
from engine.storage.locations import beside

__all__ = [
    "check_out_path",
    "cli",
    "errors",
    "json_option",
    "json_out_option",
    "output_kept_for_json",
    "plugin_option",
    "storage_option",
    "write_out",
]

F = TypeVar("F", bound=Callable[..., Any])

storage_option = click.option(
    "--storage",
    metavar="URL",
    default=None,
    help=f"SQLAlchemy database URL [default: ${STORAGE_ENV} or {DEFAULT_STORAGE}]",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
json_out_option = click.option(
    "--json", "as_json", is_flag=True, help="Write JSON instead of CSV (to --out, or standard output)."
)
plugin_option = click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    help="Load a local plugin: a dotted module path or a .py file (repeatable).",
)


def check_out_path(
    option: str, path: str, *, storage: str | None = None, inputs: Mapping[str, str | None] | None = None
) -> None:
    """Refuse, before any work, a file path the command could not write or must not: an empty one, a
    folder, one in a folder that is missing or not writable, the SQLite file of the URL ``storage`` (or
    its journal), a file in the folder beside it that keeps its models, and any of the command's
    ``inputs`` (``{option: path}``).

    Raises:
        StratagemError: Naming the option, the path and the fix.
    """
    target = Path(path)
    if not path or target.is_dir():
        raise StratagemError(f"{option} {path!r} is a folder, not a file; give a file name")
    folder = target.parent
    if not folder.is_dir():
        raise StratagemError(
            f"{option} {path!r}: folder {str(folder)!r} does not exist; create it or write elsewhere"
        )
    if not os.access(folder, os.W_OK):
        raise StratagemError(f"{option} {path!r}: folder {str(folder)!r} is not writable; write elsewhere")
    real = target.resolve()
    for other, given in (inputs or {}).items():
        if given and _same_file(Path(given), real):
            raise StratagemError(
                f"{option} {path!r} is the {other} file: writing there would replace what is being read; "
                "write elsewhere"
            )
    database = sqlite_path(storage) if storage else None
    if database is not None:
        models = beside(str(storage))
        assert models is not None  # a SQLite file has its models folder
        database = database.expanduser().resolve()
        files = (database, *(database.with_name(database.name + end) for end in SQLITE_SIDE_FILES))
        if any(_same_file(f, real) for f in files):
            raise StratagemError(
                f"{option} {path!r} is the database of --storage: writing there would destroy the stored "
                "results; write elsewhere"
            )
        if real.is_relative_to(models):
            raise StratagemError(
                f"{option} {path!r} is in {models!r}, where the database keeps its models: writing there "
                "could replace one; write elsewhere"
            )


def _same_file(a: Path, b: Path) -> bool:
    """Whether paths ``a`` and ``b`` name one file (through links, hard links included)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


@contextmanager
def output_kept_for_json(active: bool) -> Iterator[None]:
    """While ``active`` (``--json``), send what the work prints (a plugin's ``print``, a library's, a
    child process's) to standard error, so that standard output holds the JSON alone."""
    if not active:
        yield
        return
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a real file (captured in tests): Python's prints only
        fd = -1
    saved = os.dup(fd) if fd >= 0 else -1
    if saved >= 0:
        os.dup2(sys.stderr.fileno(), fd)
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved >= 0:
            os.dup2(saved, fd)
            os.close(saved)


SQLITE_SIDE_FILES = ("-journal", "-wal", "-shm")
"""Files SQLite keeps beside a database file while it writes."""


def write_out(option: str, out: str | None, write: Callable[[IO[str]], object]) -> None:
    """Write a command's output with ``write(file)`` to ``out``: standard output for ``None`` or
    ``-``; a device or a pipe (``/dev/null``, a FIFO) as it is; any other file atomically, through a
    temporary file in its (real) folder moved into place once complete, so that an interrupted write
    (Ctrl-C, a full disk) leaves the earlier file as it was. A broken pipe on standard output ends the
    command quietly (:func:`errors`).

    Raises:
        StratagemError: The file or standard output cannot be written.
    """
    to_file = out not in (None, "-")
    where = f"{option} {out!r}" if to_file else "standard output"
    tmp: Path | None = None
    try:
        if not to_file:
            with click.open_file("-", "w") as f:
                write(f)
                f.flush()
            return
        target = Path(str(out)).resolve()  # a link is followed: the file it names is replaced
        if target.exists() and not target.is_file():
            with target.open("w", newline="", encoding="utf-8") as f:
                write(f)
            return
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with tmp.open("x", newline="", encoding="utf-8") as f:
            write(f)
        if target.exists():
            os.chmod(tmp, target.stat().st_mode)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise StratagemError(f"{where} cannot be written: {exc.strerror or exc}; write elsewhere") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def errors(fn: F) -> F:
    """Turn Stratagem's own errors into a one-line message and exit status 2, and Ctrl-C into status 130.

    An error caused by a broken pipe (the reader of the output, such as ``head``, has closed it) is no
    error to report: it ends quietly, with click's status 1, as click ends any command whose output
    pipe breaks.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StratagemError as exc:
            pipe = _broken_pipe(exc)
            if pipe is not None:
                raise pipe from None  # click silences stdout and stderr, then exits with status 1
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:  # Ctrl-C: the shell's status for SIGINT, as `run` gives
            click.echo("\nInterrupted.", err=True)
            sys.exit(130)
        except Exception as exc:
            failure = _database_failure(exc)
            if failure is None:
                raise
            click.echo(
                f"Error: the study database failed: {failure}. What was committed before is kept; fix the "
                "cause (a full disk, a read-only or damaged file, a lost server) and run the command again",
                err=True,
            )
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _database_failure(exc: BaseException) -> str | None:
    """The first line of the database's own error behind ``exc`` when ``exc`` is a storage failure
    that reached a command through Optuna or SQLAlchemy (their errors name no Stratagem problem);
    ``None`` for anything else, which stays a traceback."""
    optuna_errors = sys.modules.get("optuna.exceptions")  # only raised once Optuna was imported
    storage_error = getattr(optuna_errors, "StorageInternalError", None)
    if not isinstance(exc, SQLAlchemyError) and not (storage_error and isinstance(exc, storage_error)):
        return None
    cause: BaseException = exc
    while isinstance(cause.__cause__ or cause.__context__, SQLAlchemyError | OSError):
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    return first_line(cause)


def _broken_pipe(exc: BaseException) -> BrokenPipeError | None:
    """The broken pipe among the causes of ``exc`` (``raise ... from None`` keeps it as the context)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, BrokenPipeError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, *_: Any, **__: Any
) -> None:
    """A library's warning (Optuna's experimental samplers, ...) as one line, without its source line,
    once per command."""
    text = f"Warning: {category.__name__}: {(str(message).strip().splitlines() or [''])[0]}"
    if text not in _shown:
        _shown.add(text)
        click.echo(text, err=True)


_shown: set[str] = set()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stratagem")
def cli() -> None:
    """Stratagem: find the best learning strategy for each of many tasks, and learn across them."""
    warnings.showwarning = _one_line_warning
