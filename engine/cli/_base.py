"""The ``stratagem`` command group and what every command shares: the ``--storage``, ``--json`` and
``--plugin`` options, and turning Stratagem's errors into one line and exit status 2."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from engine.errors import StratagemError
from engine.settings import DEFAULT_STORAGE, STORAGE_ENV

__all__ = ["check_out_path", "cli", "errors", "json_option", "plugin_option", "storage_option"]

F = TypeVar("F", bound=Callable[..., Any])

storage_option = click.option(
    "--storage",
    metavar="URL",
    default=None,
    help=f"SQLAlchemy database URL [default: ${STORAGE_ENV} or {DEFAULT_STORAGE}]",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
plugin_option = click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    help="Load a local plugin: a dotted module path or a .py file (repeatable).",
)


def check_out_path(option: str, path: str) -> None:
    """Refuse, before any work, a file path the command could not write: an empty one, a folder, one in
    a folder that is missing or not writable.

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

    return wrapper  # type: ignore[return-value]


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
