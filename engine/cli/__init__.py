"""The ``stratagem`` command line: a face on the Python API, with no logic of its own.

:mod:`._base` holds the command group and shared options, :mod:`.commands` the search commands,
:mod:`.models` those that use what a search found, :mod:`.render` the tables, JSON and progress bars. The
console script ``stratagem`` is :func:`main`; ``python -m engine`` and ``python -m engine.cli`` run it too.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.cli import commands, models  # noqa: F401  (importing them adds their commands to `cli`)
from engine.cli._base import cli

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``stratagem`` console script.

    Args:
        argv: The arguments (default: the process's own).
    """
    cli.main(args=list(argv) if argv is not None else None, prog_name="stratagem")
