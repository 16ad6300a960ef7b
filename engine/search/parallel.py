"""Many trials at once: one driver process samples and stores, Dask workers train and evaluate.

``stratagem run SPEC --n-jobs N`` (a local Dask cluster) or ``--dask ADDRESS`` (a running one) runs a
per-task search this way. The driver holds the samplers and the database; a worker gets a task's
objective once (scattered) and per trial only its parameters and number (:mod:`engine.search.remote`).

Cheap per trial: each strategy study is *mirrored* in memory, where the sampler reads its history (on
PostgreSQL, Optuna's sampler re-reads every trial from the database at each ask). The database stays
the system of record; per trial the driver writes:

* at the claim, under the study's claim lock (the one :mod:`engine.search.trials` takes, so sequential
  workers and drivers can share a study): a RUNNING trial with its parameters and a first heartbeat, only
  while finished plus running trials are fewer than ``n_trials``; so counts stay exact over every
  process working on the study;
* while it runs: a heartbeat every interval, for every trial in flight, from one thread; a killed driver
  stops beating, and the next claimer fails its trials with the reason (:data:`~engine.search.trials.STALE`);
* when it is over: its intermediate values, record and final state, from a writer thread (the round
  trips overlap), before it counts as finished; it is RUNNING, so counted, until then.

Pruning: a worker cannot see the study, so a trial is never pruned while it trains; the values its
updater reported are stored afterwards (for the dashboard and later pruners). A worker that dies fails
its trial with the reason (Dask does not re-run it) and the driver claims a new one; Ctrl-C or SIGTERM
fails every trial in flight as :data:`~engine.search.trials.INTERRUPTED`. With ``trials_per_visit`` the
driver still makes one visit per task and run (each task's trials run side by side).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import optuna

from engine.errors import StorageError, StratagemError
from engine.plugin import PluginHost
from engine.search.driver import WORKER_DIED, Driver, Lane
from engine.search.per_task import Visit, open_studies
from engine.search.progress import ProgressSink
from engine.search.recheck import Candidate, Replay, recheck_timeout
from engine.search.recorder import StrategyRecorder
from engine.search.register import SearchTask
from engine.search.remote import PluginNames, TrialResult, dask_client, pack, run_trial, warm_workers
from engine.settings import resolve_storage
from engine.spec import Plan
from engine.storage import Database
from engine.storage.optuna_adapter import study_id
from engine.study import StrategyObjective
from engine.vocabulary import DONE_STATES

__all__ = ["WORKER_DIED", "check_parallel", "explore_per_task_parallel"]


DASK_ADDRESS = re.compile(r"^([a-z0-9+]+://)?\[?[\w.:-]*?\]?:\d{1,5}$|^[a-z0-9+]+://\S+$")
"""A scheduler address: ``host:port`` or ``protocol://...`` (``tcp://10.0.0.5:8786``, ``inproc://...``)."""


def check_parallel(plan: Plan, storage: str | None, n_jobs: int | None, address: str | None = None) -> None:
    """Refuse, before anything is written, a parallel run that cannot work.

    Raises:
        StratagemError: ``n_jobs`` below 1, or a cross-task or meta search (one trial at a time per
            process: start several ``stratagem run`` processes on one database instead).
        StorageError: An in-memory database: each connection would see its own empty one.
    """
    if n_jobs is not None and n_jobs < 1:
        raise StratagemError(f"--n-jobs must be at least 1, got {n_jobs}")
    if address is not None and not DASK_ADDRESS.match(address):
        raise StratagemError(
            f"--dask {address!r} is not a Dask scheduler address: give one such as tcp://host:8786 (what "
            "`dask scheduler` prints)"
        )
    mode = plan.spec.mode
    if mode != "per_task":
        raise StratagemError(
            f"--n-jobs and --dask run per-task searches only; mode {mode!r} runs one trial at a time per "
            "process: start several `stratagem run` processes on one database file or server instead"
        )
    url = resolve_storage(storage)
    if url.startswith("sqlite") and (url.rstrip("/").endswith(":") or ":memory:" in url):
        raise StorageError(
            f"--n-jobs and --dask need a database that outlives one connection, not {url!r} (in "
            "memory): use sqlite:///stratagem.db on one machine, or PostgreSQL for many"
        )


def explore_per_task_parallel(
    plan: Plan,
    host: PluginHost,
    db: Database,
    storage: optuna.storages.RDBStorage,
    tasks: list[SearchTask],
    progress: ProgressSink,
    *,
    n_jobs: int | None,
    address: str | None = None,
) -> int:
    """Run each task's missing strategy trials, ``n_jobs`` at a time on Dask; return trials run.

    Args:
        plan: The resolved spec (per-task mode).
        host: Loaded plugins.
        db: The engine's tables.
        storage: Optuna's storage on the same database (the system of record).
        tasks: The search's tasks as stored.
        progress: Receives progress events.
        n_jobs: Trials in flight at once (``None`` with ``address``: one per thread of the cluster).
        address: A Dask scheduler's address; ``None`` starts a local cluster of ``n_jobs`` slots.
    """
    task_study, studies = open_studies(plan, db, storage, tasks)
    keys = [t.key for t in tasks]
    names = PluginNames(
        {s.name: host.strategies.plugin_of(s.name) for t in tasks for s in t.resolved.strategies},
        {u.name: host.updaters.plugin_of(u.name) for t in tasks for u in t.resolved.updaters},
    )
    with dask_client(n_jobs or 1, address) as client:
        if n_jobs is None:
            n_jobs = max(1, sum(client.nthreads().values()))
        lanes = []
        for task in tasks:
            visit = Visit(plan, host, db, storage, task_study, studies[task.key], task, progress)
            lanes.append(_lane(visit, storage, client, names))
        warm_workers(client, [lane.remote for lane in lanes])
        driver = Driver(plan, db, storage, client, lanes, progress, n_jobs)
        driver.run()
        for lane in lanes:
            if lane.run.status == "done":
                lane.visit.final_choice(lane.recorder, lane.objective, _replay_on(client, plan))
    for lane in lanes:
        lane.visit.record(keys, lane.run, lane.recorder)
    return sum(lane.run.attempts for lane in lanes)


def _lane(visit: Visit, storage: optuna.storages.RDBStorage, client: Any, names: PluginNames) -> Lane:
    study, spec = visit.study, visit.plan.spec
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    recorder = StrategyRecorder(visit.db, visit.task.search_task_id, maximize)
    keeper = visit.keeper()
    visit.mend(recorder, keeper)
    mirror = optuna.create_study(
        direction=study.direction, sampler=visit.plan.sampler(_mirror_seed(spec.seed, visit.task.fingerprint))
    )
    mirror.add_trials(study.get_trials(deepcopy=False, states=DONE_STATES))
    visit.resume_warm_start(spec.n_trials, sampled=mirror)  # guided here too if warm-started elsewhere
    objective = visit.objective(names)
    packed = pack(objective)
    return Lane(
        visit=visit,
        study=study,
        study_id=study_id(storage, study.study_name),
        mirror=mirror,
        objective=objective,
        packed=packed,
        remote=client.scatter(packed, broadcast=True),
        recorder=recorder,
        keeper=keeper,
    )


def _replay_on(client: Any, plan: Plan) -> Replay:
    """A :data:`~engine.search.recheck.Replay` that trains the candidates side by side on the workers."""
    spec = plan.spec

    def replay(
        objective: StrategyObjective, candidates: Sequence[Candidate], keep: bool, tick: Callable[[], None]
    ) -> list[TrialResult | str]:
        remote = client.scatter(pack(objective), broadcast=True)
        futures = [
            client.submit(
                run_trial,
                remote,
                c.params,
                c.number,
                keep_model=keep,
                trial_timeout=recheck_timeout(spec.trial_timeout, spec.evaluation.folds),
                threads=spec.threads,
                pure=False,
            )
            for c in candidates
        ]
        out: list[TrialResult | str] = []
        for future in futures:
            try:
                out.append(future.result())
            except Exception as exc:  # a plugin's error or a lost worker: that candidate is out
                out.append(f"{type(exc).__name__}: {exc}")
            tick()
        return out

    return replay


def _mirror_seed(seed: int, fingerprint: str) -> int:
    return (seed * 7_919 + int(fingerprint[:8], 16)) % (2**31 - 1)
