"""Joining a stored search as one more worker: ``stratagem worker --search NAME --storage URL``.

A search's spec is stored with it (``stratagem_searches.spec``), so a machine that reaches the database
needs only the search's name to work on it: :func:`join` reads the spec back and runs it, exactly as a
second ``stratagem run`` of the same file would. Trials are claimed under the study's lock
(:mod:`engine.search.trials`), so any number of workers, started in any order, finish each study with
exactly ``n_trials`` trials; a worker that finds every trial done or running elsewhere waits for them
(one may die and leave its trial to the others) and then returns.

What the spec does not carry must be present where the worker runs: the installed plugin packages, and
the local plugin modules and CSV files that the spec names by relative path, resolved against
``base_dir`` (by default the current directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import SpecError, StorageError
from engine.search.progress import ProgressSink
from engine.search.run import SearchResult, run
from engine.spec import SearchSpec
from engine.storage import Database, reads
from engine.storage.database import refuse_in_memory

__all__ = ["join", "stored_search_spec"]


def stored_search_spec(
    search: str, *, storage: str | None = None, base_dir: Path | None = None
) -> SearchSpec:
    """The spec that the search ``search`` was last run with, read back from ``storage``.

    Raises:
        StorageError: The storage holds no search of that name (the message lists those it holds).
    """
    db = Database(storage, create=False)
    refuse_in_memory(db.url)
    data: dict[str, Any] | None = None
    names: list[str] = []
    if db.has_tables():
        with db.session() as s:
            data = reads.stored_spec(s, search)
            names = reads.search_names(s) if data is None else []
    if data is None:
        held = ", ".join(repr(n) for n in names) or "none"
        raise StorageError(
            f"no search named {search!r} in {db.safe_url} (it holds: {held}); start it with "
            "`stratagem run SPEC` first, or give the storage URL it was run on"
        )
    try:
        return SearchSpec.from_stored(
            data, source=f"search {search!r} in {db.safe_url}", base_dir=base_dir or Path.cwd()
        )
    except SpecError as exc:
        raise SpecError(
            f"{exc}\nThe stored spec of search {search!r} no longer loads (a file it names has moved, or a "
            "newer version of Stratagem wrote it): run its spec file with `stratagem run` instead."
        ) from None


def join(
    search: str,
    *,
    storage: str | None = None,
    base_dir: Path | None = None,
    plugins: tuple[str, ...] = (),
    progress: ProgressSink | None = None,
    n_jobs: int | None = None,
    dask: str | None = None,
) -> SearchResult:
    """Work on the stored search ``search`` until its studies have their trials; return its results.

    Args:
        search: The search's name.
        storage: The database it is stored in (its URL; default ``$STRATAGEM_STORAGE``).
        base_dir: Folder that the spec's relative paths (local plugins, CSV files) are resolved from.
        plugins: Extra local plugin modules, as with :func:`engine.run`.
        progress: Receives progress events.
        n_jobs: Trials at once on a local Dask cluster, as with :func:`engine.run`.
        dask: Address of a Dask scheduler to run trials on, as with :func:`engine.run`.

    Raises:
        StorageError: No such search, or the database cannot be used.
        SpecError: The stored spec does not load here (a plugin or a file is missing on this machine).
        SearchFailed: As :func:`engine.run`.
    """
    spec = stored_search_spec(search, storage=storage, base_dir=base_dir)
    return run(spec, storage=storage, plugins=plugins, progress=progress, n_jobs=n_jobs, dask=dask)
