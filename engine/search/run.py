"""Running a search: load plugins, resolve the spec, register it, then explore, all in one database.

For a spec named ``S`` the storage ends up holding Optuna's studies (``S`` for task exploration and
``S/<task>`` for strategy exploration, or ``S/cross_task`` in cross-task mode) beside the engine's tables
(:mod:`engine.storage.models`): the tasks by fingerprint with meta-features and split, the search and its
spec, and the best strategy per task (or the best default), kept current as trials finish.

Running the same spec again resumes: each study gets trials only up to ``n_trials`` finished ones.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.plugin import PluginHost
from engine.results import BestDefault, BestStrategy
from engine.results import best as query_best
from engine.results import defaults as query_defaults
from engine.search.cross_task import explore_cross_task
from engine.search.per_task import explore_per_task
from engine.search.progress import ProgressSink
from engine.search.register import check_resumable, register
from engine.spec import SearchSpec, load_spec, resolve
from engine.storage import Database, queries
from engine.storage.optuna_adapter import open_optuna_storage
from engine.study import quiet_optuna, torch_threads

__all__ = ["SearchResult", "run"]

log = logging.getLogger("stratagem")


@dataclass(frozen=True)
class SearchResult:
    """What :func:`run` did."""

    search: str
    storage: str
    trials_run: int
    seconds: float
    best: list[BestStrategy]
    defaults: list[BestDefault] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the run's figures, the best strategy per task and the best defaults."""
        return {
            "search": self.search,
            "storage": self.storage,
            "trials_run": self.trials_run,
            "seconds": round(self.seconds, 3),
            "best": [b.to_dict() for b in self.best],
            "defaults": [d.to_dict() for d in self.defaults],
        }


def run(
    spec: SearchSpec | str | Path,
    *,
    storage: str | None = None,
    n_trials: int | None = None,
    seed: int | None = None,
    warm_start: bool | None = None,
    plugins: tuple[str, ...] = (),
    progress: ProgressSink | None = None,
) -> SearchResult:
    """Run (or resume) a search and return the best strategy per task.

    Args:
        spec: A :class:`~engine.spec.SearchSpec` or the path of a TOML spec.
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        n_trials: Overrides ``search.n_trials`` (finished strategy trials wanted per task).
        seed: Overrides ``search.seed``.
        warm_start: Overrides ``search.warm_start``.
        plugins: Extra local plugin modules, added to ``search.plugins``.
        progress: Receives progress events.

    Raises:
        SpecError: The spec is invalid (nothing has been written then).
        StorageError: The database cannot be used.
        KeyboardInterrupt: After marking the search interrupted; finished trials stay stored.
    """
    if not isinstance(spec, SearchSpec):
        spec = load_spec(spec)
    spec = spec.replace(
        n_trials=n_trials, seed=seed, warm_start=warm_start, plugins=(*spec.plugins, *plugins) or None
    )
    host = PluginHost.load(tuple(spec.plugins), base_dir=spec.base_dir)
    for problem in host.problems:
        log.warning("plugin %s was not loaded: %s", problem.plugin, problem.message)
    plan = resolve(spec, host)
    db = Database(storage)
    started = time.perf_counter()
    optuna_storage = open_optuna_storage(db.url)
    check_resumable(plan, optuna_storage)
    search_id, tasks = register(db, plan)
    sink = progress or ProgressSink()
    trials_run = 0
    try:
        with quiet_optuna(), torch_threads(spec.threads):
            if spec.mode == "cross_task":
                trials_run = explore_cross_task(plan, host, db, optuna_storage, tasks, search_id, sink)
            else:
                trials_run = explore_per_task(plan, host, db, optuna_storage, tasks, sink)
    except BaseException as exc:
        with db.session() as s:
            queries.set_search_status(
                s, search_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            )
        raise
    with db.session() as s:
        queries.set_search_status(s, search_id, "finished")
    return SearchResult(
        search=spec.name,
        storage=db.safe_url,
        trials_run=trials_run,
        seconds=time.perf_counter() - started,
        best=query_best(storage=db.url, search=spec.name),
        defaults=query_defaults(storage=db.url, search=spec.name),
    )
