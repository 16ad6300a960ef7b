"""Running a search: load plugins, resolve the spec, register it, then explore, all in one database.

For a spec named ``S`` the storage ends up holding Optuna's studies (``S`` for task exploration and
``S/<task>`` for strategy exploration, or ``S/cross_task`` in cross-task mode) beside the engine's tables
(:mod:`engine.storage.models`): the tasks by fingerprint with meta-features and split, the search and its
spec, and the best strategy per task (or the best default), kept current as trials finish.

Running the same spec again resumes: each study gets trials only up to ``n_trials`` finished ones.
"""

from __future__ import annotations

import logging
import numbers
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from engine.errors import SearchFailed, SpecError, StratagemError
from engine.plugin import PluginHost
from engine.results import BestDefault, BestMeta, BestStrategy
from engine.results import best as query_best
from engine.results import defaults as query_defaults
from engine.results import meta_best as query_meta_best
from engine.search.cross_task import explore_cross_task
from engine.search.meta import check_meta_resumable, explore_meta
from engine.search.parallel import check_parallel, explore_per_task_parallel
from engine.search.per_task import explore_per_task
from engine.search.progress import ProgressSink
from engine.search.register import check_resumable, register
from engine.settings import heartbeat_problem
from engine.spec import Plan, SearchSpec, load_spec, resolve
from engine.storage import Database, queries, reads
from engine.storage.optuna_adapter import open_optuna_storage, working_trials
from engine.study import quiet_optuna, torch_threads
from engine.trained import resolve_artifacts
from engine.vocabulary import (
    DONE_STATES,
    FAILURE_ATTR,
    cross_task_study_name,
    meta_study_name,
    strategy_study_name,
)

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
    meta: list[BestMeta] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the run's figures, the best strategy per task and the best defaults."""
        return {
            "search": self.search,
            "storage": self.storage,
            "trials_run": self.trials_run,
            "seconds": round(self.seconds, 3),
            "best": [b.to_dict() for b in self.best],
            "defaults": [d.to_dict() for d in self.defaults],
            "meta": [m.to_dict() for m in self.meta],
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
    n_jobs: int | None = None,
    dask: str | None = None,
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
        n_jobs: Trials run at once, on a local Dask cluster when above 1 (per-task mode; see
            :mod:`engine.search.parallel`). With ``dask``: trials in flight, by default one per
            thread of the cluster.
        dask: Address of a Dask scheduler whose workers run the trials; the driver (this process)
            keeps the samplers and the database.

    Raises:
        SpecError: The spec is invalid (nothing has been written then).
        StorageError: The database cannot be used.
        SearchFailed: Some task (or the cross-task study) has no successful trial; says why.
        KeyboardInterrupt: Ctrl-C or SIGTERM, after failing the running trial with that reason and
            marking the search interrupted; finished trials stay stored.
    """
    heartbeat = heartbeat_problem()
    if heartbeat is not None:
        raise StratagemError(heartbeat)
    _check_arguments(progress, n_jobs)
    n_jobs = None if n_jobs is None else int(n_jobs)
    if not isinstance(spec, SearchSpec):
        spec = load_spec(spec)
    if isinstance(plugins, str) or isinstance(spec.plugins, str):
        raise SpecError("must be a list of plugin modules or files, not one string", key="search.plugins")
    spec = spec.replace(
        n_trials=n_trials, seed=seed, warm_start=warm_start, plugins=(*spec.plugins, *plugins) or None
    )
    host = PluginHost.load(tuple(spec.plugins), base_dir=spec.base_dir)
    for problem in host.problems:
        log.warning("plugin %s was not loaded: %s", problem.plugin, problem.message)
    plan = resolve(spec, host)
    parallel = (n_jobs or 1) > 1 or dask is not None
    if parallel or n_jobs is not None:
        check_parallel(plan, storage, n_jobs, dask)
    db = Database(storage)
    _warn_if_no_models_kept(spec, db)
    started = time.perf_counter()
    optuna_storage = open_optuna_storage(db.url)
    if spec.mode == "meta":
        check_meta_resumable(plan, optuna_storage)
    check_resumable(plan, optuna_storage)
    has = _already_has(db, plan, optuna_storage)
    if has is not None:  # asked for fewer trials than it has: nothing to run, nothing to rewrite
        log.warning(
            "search %r already has %d finished trials in each of its studies; this run asks for n_trials = "
            "%d, so nothing ran and the search is stored as it was (ask for more than %d to add trials)",
            spec.name,
            has,
            spec.n_trials,
            has,
        )
        return SearchResult(
            search=spec.name,
            storage=db.safe_url,
            trials_run=0,
            seconds=time.perf_counter() - started,
            best=query_best(storage=db.url, search=spec.name),
            defaults=query_defaults(storage=db.url, search=spec.name),
            meta=query_meta_best(storage=db.url, search=spec.name),
        )
    search_id, tasks = register(db, plan)
    sink = progress or ProgressSink()
    trials_run = 0
    try:
        with sigterm_as_interrupt(), quiet_optuna(), torch_threads(spec.threads):
            if spec.mode == "meta":
                trials_run = explore_meta(plan, host, db, optuna_storage, sink)
            elif spec.mode == "cross_task":
                trials_run = explore_cross_task(plan, host, db, optuna_storage, tasks, search_id, sink)
            elif parallel:
                trials_run = explore_per_task_parallel(
                    plan, host, db, optuna_storage, tasks, sink, n_jobs=n_jobs, address=dask
                )
            else:
                trials_run = explore_per_task(plan, host, db, optuna_storage, tasks, sink)
        best = query_best(storage=db.url, search=spec.name)
        defaults = query_defaults(storage=db.url, search=spec.name)
        meta = query_meta_best(storage=db.url, search=spec.name)
        check_succeeded(plan, optuna_storage, best, defaults, meta)
    except BaseException as exc:
        if not _others_at_work(plan, optuna_storage):  # else the last worker to stop says how it ended
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
        best=best,
        defaults=defaults,
        meta=meta,
    )


def _warn_if_no_models_kept(spec: SearchSpec, db: Database) -> None:
    """Say so when the search will keep no trained model (or θ): a server database has no folder beside
    it, and neither ``search.artifacts`` nor ``$STRATAGEM_ARTIFACTS`` names one."""
    if spec.mode == "cross_task":  # keeps a default configuration, no model
        return
    if resolve_artifacts(db.url, spec.artifacts_dir) is None:
        log.warning(
            "%s has no folder for trained models, so this search keeps none (stratagem export, "
            "predict --search and adapt need one); set search.artifacts or $STRATAGEM_ARTIFACTS to a "
            "directory to keep them",
            db.safe_url,
        )


def _check_arguments(progress: object, n_jobs: object) -> None:
    """``run``'s own arguments, checked before anything is stored (a bad one found later left the
    search registered and marked failed)."""
    missing = [m for m in _SINK_METHODS if not callable(getattr(progress, m, None))]
    if progress is not None and progress is not False and missing:
        raise StratagemError(
            f"progress must be an engine ProgressSink (or None), got {progress!r}: "
            f"it has no {', '.join(missing)}"
        )
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral)):
        raise StratagemError(f"n_jobs must be a whole number of trials run at once, got {n_jobs!r}")


_SINK_METHODS = ("task_started", "trial_finished", "task_finished")


def _already_has(db: Database, plan: Plan, storage: optuna.storages.BaseStorage) -> int | None:
    """The finished trials that each study of a search stored with a larger ``n_trials`` already has,
    when that is at least what ``plan`` asks for (the run would then only rewrite the stored spec with
    the smaller number); else ``None``."""
    spec = plan.spec
    with db.session() as s:
        stored = reads.stored_spec(s, spec.name)
    before = dict(stored.get("search") or {}).get("n_trials") if stored else None
    if not isinstance(before, int) or before <= spec.n_trials:
        return None
    counts = []
    for name in _study_names(plan):
        try:
            study_id = storage.get_study_id_from_name(name)
        except KeyError:  # not created yet
            return None
        counts.append(len(storage.get_all_trials(study_id, deepcopy=False, states=DONE_STATES)))
    has = min(counts, default=0)
    return has if has >= spec.n_trials else None


def _study_names(plan: Plan) -> list[str]:
    """The studies whose trials count toward a search's ``n_trials``."""
    spec = plan.spec
    if spec.mode == "meta":
        return [meta_study_name(spec.name)]
    if spec.mode == "cross_task":
        return [cross_task_study_name(spec.name)]
    return [strategy_study_name(spec.name, t.key) for t in plan.tasks]


def _others_at_work(plan: Plan, storage: optuna.storages.BaseStorage) -> bool:
    """Whether a study of this search has a running trial that another worker is still at work on.

    Called after this worker failed its own running trial, so whatever still runs is someone else's: a
    dead worker's (its heartbeats lapsed; the next claim fails it) does not count, or a search whose
    workers were all killed would stay marked running.
    """
    try:
        for name in _study_names(plan):
            try:
                if working_trials(storage, name):
                    return True
            except KeyError:  # not created yet
                continue
    except Exception:  # the database is what failed: say how this worker ended
        return False
    return False


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (``kill``, a scheduler stopping a job) is handled like Ctrl-C.

    The running trial is then failed with the reason and the search marked interrupted. Only the main
    thread can set signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def check_succeeded(
    plan: Plan,
    storage: optuna.storages.BaseStorage,
    best: list[BestStrategy],
    defaults: list[BestDefault],
    meta: list[BestMeta] = (),  # type: ignore[assignment]
) -> None:
    """Raise :class:`SearchFailed` naming each task (or the cross-task study) without a successful trial.

    The message gives the failed count and the last reasons stored on the failed trials.
    """
    spec = plan.spec
    if spec.mode == "meta":
        missing = [] if meta else [meta_study_name(spec.name)]
    elif spec.mode == "cross_task":
        missing = [] if defaults else [cross_task_study_name(spec.name)]
    else:
        have = {b.task for b in best}
        missing = [strategy_study_name(spec.name, t.key) for t in plan.tasks if t.key not in have]
    if not missing:
        return
    lines = []
    for name in missing:
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials(
                deepcopy=False, states=(TrialState.FAIL,)
            )
        except KeyError:
            trials = []
        reasons = list(dict.fromkeys(str(t.user_attrs.get(FAILURE_ATTR, "no reason stored")) for t in trials))
        if trials:
            lines.append(
                f"{name}: no successful trial, {len(trials)} failed; last reasons: "
                + " | ".join(reasons[-3:])
            )
        elif spec.timeout is not None:
            lines.append(
                f"{name}: no trial finished before search.timeout ({spec.timeout:g} s) ran out; raise the "
                "timeout, or run the same command again to go on"
            )
        else:
            lines.append(f"{name}: no trial finished (none failed either): another worker may still run them")
    raise SearchFailed(
        f"search {spec.name!r} found nothing for {len(missing)} of its studies:\n  "
        + "\n  ".join(lines)
        + "\nFix the cause above, then run the same command again: finished trials are kept."
    )
