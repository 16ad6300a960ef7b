"""Scale: trials that sleep 0.5 s, 1 to 32 at once, Stratagem's Dask driver beside plain Optuna.

Each trial stands in for training on a remote GPU: the updater sleeps 0.5 s. Efficiency is finished
trials per second divided by the ideal ``concurrency / 0.5 s``, measured between the first trial's start
and the last trial's end as stored (so start-up of processes and clusters is left out). CPU
milliseconds per trial add up the driver (or Optuna processes) and the Dask workers (user + system, from
``psutil``), and beside them the PostgreSQL server's processes. Every path runs TPE (seeded) on a scratch
PostgreSQL database created for the run on 127.0.0.1:5432 and dropped after; each run's finished trials
are checked to be exactly the number asked.

Paths, at each concurrency ``c``:

* ``stratagem``: ``engine.run(spec, dask=ADDRESS, n_jobs=c)`` on one local Dask cluster (2 worker
  processes x 16 threads), the driver sampling from its in-memory mirror;
* ``optuna processes``: ``c`` processes each running ``study.optimize`` on the same study;
* ``optuna ask/tell``: one process asking ``c`` trials at a time, the sleeps in threads.

Run: ``python bench/scale.py`` (about 6-8 minutes) or ``--quick``; writes its section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import optuna
import psutil
from _docs import replace_section
from sqlalchemy import create_engine

import engine
from engine.search.remote import local_cluster
from engine.updater import FitResult, Report, TrainingProblem

SLEEP_S = 0.5
ADMIN_URL = os.environ.get("STRATAGEM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
N_JOBS = "stratagem --n-jobs"
DASK = "stratagem --dask"
HEADING = "## Many workers: trials that sleep 0.5 s (bench/scale.py)"


class SleepUpdater(engine.Updater):
    """Sleeps 0.5 s instead of training (a remote GPU's time), reporting once."""

    name: ClassVar[str] = "sleep"

    def __init__(self, lr: float = 1e-3) -> None:
        self.lr = lr

    @classmethod
    def suggest(cls, trial: optuna.Trial, info: engine.TaskInfo) -> dict[str, Any]:
        return {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True)}

    def fit(self, model: Any, problem: TrainingProblem, report: Report) -> FitResult:
        time.sleep(SLEEP_S)
        return FitResult(steps=1, train_loss=0.0)


@engine.hookimpl
def stratagem_register_updaters(registry: engine.Registry[type[engine.Updater]]) -> None:
    """Register ``sleep``."""
    registry.add(SleepUpdater)


def plain_objective(trial: optuna.Trial) -> float:
    """Plain Optuna's trial: the same kind of space (a category, three floats), then the sleep."""
    kind = trial.suggest_categorical("strategy", ["linear"])
    a = trial.suggest_float("linear.weight_decay", 1e-6, 1e-2, log=True)
    b = trial.suggest_float("sleep.lr", 1e-4, 1e-1, log=True)
    time.sleep(SLEEP_S)
    return float(len(kind)) + a + b


@dataclass(frozen=True)
class Row:
    path: str
    concurrency: int
    trials: int
    efficiency: float
    cpu_ms: float
    server_ms: float


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def _tree() -> list[psutil.Process]:
    me = psutil.Process()
    return [me, *me.children(recursive=True)]


def _reaped() -> float:
    """CPU seconds of this process's children that have ended (and theirs)."""
    t = psutil.Process().cpu_times()
    return t.children_user + t.children_system


def _server() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]


def _efficiency(url: str, study_name: str, concurrency: int, expected: int) -> tuple[float, int]:
    study = optuna.load_study(study_name=study_name, storage=url)
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) != expected:
        raise SystemExit(f"{study_name}: {len(done)} finished trials, {expected} asked: counts are not exact")
    start = min(t.datetime_start or datetime.max for t in done)
    end = max(t.datetime_complete or datetime.min for t in done)
    rate = len(done) / max(1e-9, (end - start).total_seconds())
    return rate / (concurrency / SLEEP_S), len(done)


def _measure(path: str, concurrency: int, n: int, url: str, study_name: str, body: Callable[[], None]) -> Row:
    server = {p.pid: _cpu([p]) for p in _server()}
    before = _cpu(_tree()) + _reaped()
    body()
    after = _cpu(_tree()) + _reaped()  # processes that ended inside body count through their parent
    # PostgreSQL backends that started meanwhile count whole; those that ended meanwhile are missed
    after_server = sum(_cpu([p]) - server.get(p.pid, 0.0) for p in _server())
    before_server = 0.0
    eff, trials = _efficiency(url, study_name, concurrency, n)
    row = Row(
        path, concurrency, trials, eff, 1000 * (after - before) / n, 1000 * (after_server - before_server) / n
    )
    print(
        f"{path:18} c={concurrency:2d} n={n:4d} efficiency {eff:.2f}  cpu {row.cpu_ms:6.1f} ms/trial  "
        f"postgres {row.server_ms:5.1f} ms/trial",
        flush=True,
    )
    return row


def run_stratagem(url: str, address: str | None, c: int, n: int) -> Row:
    """``engine.run(..., n_jobs=c)``: on the cluster at ``address``, or (``None``) on the local cluster
    that the engine starts for the run, as ``stratagem run --n-jobs`` does."""
    from engine.spec import SearchSpec, TaskSpec

    path = DASK if address else N_JOBS
    name = f"scale{c}x{n}_dask" if address else f"scale{c}x{n}"
    spec = SearchSpec(
        name=name,
        tasks=(TaskSpec("sklearn", {"dataset": "iris"}),),
        n_trials=n,
        strategies=("linear",),
        updaters=("sleep",),
        warm_start=False,
        seed=0,
        plugins=(str(Path(__file__).resolve()),),
        artifacts=None,
    )
    return _measure(
        path, c, n, url, f"{name}/iris", lambda: engine.run(spec, storage=url, dask=address, n_jobs=c)
    )


def run_optuna_processes(url: str, c: int, n: int) -> Row:
    name = f"plain_processes{c}"
    optuna.create_study(study_name=name, storage=url, sampler=optuna.samplers.TPESampler(seed=0))
    per = [n // c + (i < n % c) for i in range(c)]
    code = (
        "import sys, optuna; sys.path.insert(0, sys.argv[4]); from scale import plain_objective;"
        "optuna.logging.set_verbosity(optuna.logging.WARNING);"
        "s = optuna.load_study(study_name=sys.argv[2], storage=sys.argv[1]);"
        "s.optimize(plain_objective, n_trials=int(sys.argv[3]))"
    )

    def body() -> None:
        here = str(Path(__file__).resolve().parent)
        procs = [subprocess.Popen([sys.executable, "-c", code, url, name, str(k), here]) for k in per if k]
        for p in procs:
            if p.wait() != 0:
                raise SystemExit("a plain Optuna process failed")

    return _measure("optuna processes", c, n, url, name, body)


def run_optuna_ask_tell(url: str, c: int, n: int) -> Row:
    name = f"plain_ask_tell{c}"
    study = optuna.create_study(study_name=name, storage=url, sampler=optuna.samplers.TPESampler(seed=0))

    def body() -> None:
        asked = 0
        with ThreadPoolExecutor(c) as pool:
            flying: dict[Any, optuna.Trial] = {}
            while asked < n or flying:
                while asked < n and len(flying) < c:
                    trial = study.ask()
                    flying[pool.submit(plain_objective, trial)] = trial
                    asked += 1
                done, _ = wait(list(flying), return_when=FIRST_COMPLETED)
                for f in done:
                    study.tell(flying.pop(f), f.result())

    return _measure("optuna ask/tell", c, n, url, name, body)


def _scratch_database() -> tuple[str, Callable[[], None]]:
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"stratagem_scale_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin.url.set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
                "AND pid <> pg_backend_pid()"
            )
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()

    return url, drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1, 8 and 32 concurrent trials, fewer trials")
    args = parser.parse_args()
    levels = (1, 8, 32) if args.quick else (1, 2, 4, 8, 16, 32)
    per_slot = 4 if args.quick else 8
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, drop = _scratch_database()
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        with local_cluster(2, 16) as address:  # the engine's own, kept for every cell
            for c in levels:
                n = max(8, per_slot * c)
                rows.append(run_stratagem(url, None, c, n))
                rows.append(run_stratagem(url, address, c, n))
                rows.append(run_optuna_processes(url, c, n))
                rows.append(run_optuna_ask_tell(url, c, n))
    finally:
        drop()
    wall = time.perf_counter() - started
    _write(rows, levels, per_slot, wall, args.quick)


def _write(rows: list[Row], levels: tuple[int, ...], per_slot: int, wall: float, quick: bool) -> None:
    paths = (N_JOBS, DASK, "optuna processes", "optuna ask/tell")
    header = (
        "| concurrent | " + " | ".join(f"{p}: efficiency (CPU ms/trial, PostgreSQL ms)" for p in paths) + " |"
    )
    lines = [header, "|---:|" + "---|" * len(paths)]
    for c in levels:
        cells = []
        for p in paths:
            r = next(r for r in rows if r.path == p and r.concurrency == c)
            cells.append(f"{r.efficiency:.2f} ({r.cpu_ms:.0f}, {r.server_ms:.0f})")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    top = max(levels)
    verdicts = []
    for path in (N_JOBS, DASK):
        r = next((r for r in rows if r.path == path and r.concurrency == top), None)
        if r is not None:
            met = "met" if r.efficiency >= 0.80 else "missed"
            verdicts.append(f"`{path}` **{met}** ({r.efficiency:.2f})")
    verdict = f"Target ≥ 0.80 at {top} concurrent trials on PostgreSQL: " + ", ".join(verdicts) + "."
    section = f"""{HEADING}

`python bench/scale.py{" --quick" if quick else ""}` on this machine ({os.cpu_count()} cores), Optuna \
{optuna.__version__}, TPE everywhere, PostgreSQL on 127.0.0.1 as the system of record (a scratch \
database), max({per_slot} x concurrency, 8) trials per cell, each sleeping {SLEEP_S} s; whole run \
{wall:.0f} s. Efficiency = finished trials per second / (concurrency / {SLEEP_S} s), between the first \
start and the last end stored. CPU ms per trial: every process of the path (driver or Optuna processes,
Dask scheduler and workers, including those that started and ended inside the cell);
PostgreSQL ms: the server's backends (those that ended during a cell are missed). Every cell's finished
trials were checked to be exactly the number asked. This machine is shared: other jobs' load moves the
figures by up to about 0.1 between runs.

{table}

{verdict}

`{N_JOBS}` is `engine.run(spec, n_jobs=c)`, as `stratagem run --n-jobs c`: the engine starts a local
cluster for the run (a Dask scheduler and 2 worker processes, as subprocesses) and stops it after; its
start-up is outside the efficiency window but inside the CPU per trial. `{DASK}` is
`engine.run(spec, dask=ADDRESS, n_jobs=c)` on a cluster started once by the bench with Dask's command
line (a scheduler and 2 workers of 16 threads, `engine.search.remote.local_cluster`), kept for every
cell as a real cluster is. In both the driver
samples from an in-memory mirror of each study and writes each trial to PostgreSQL: a RUNNING row with
its parameters at the claim (claims batched by an eighth of the slots), and its values and state in one
transaction from a writer thread when it ends. `optuna processes` is `c` processes running `optimize`
on one study; `optuna ask/tell` one process with the sleeps in threads. The CPU of a run's start-up
(plugins, registration, the cluster's copy of the task) is spread over its trials, which is why one
trial at a time looks dear; `--n-jobs` also pays for starting its cluster in every run.

Where the driver's time goes at 32 (512 trials, timers around its steps and py-spy, 2026-11-29): the
driver's main thread is busy about 80% of the run, nearly all of it claiming; per trial that is about 7
ms of CPU for TPE's sampling in the mirror (Optuna 5's TPE with its default constant liar, which refits
on every running trial for every ask), about 3 ms for creating the RUNNING rows, and the database round
trips; writer threads add about 4 ms per finished trial and take the same lock (Python's). The driver
process is then near one full core, which is what holds 32 trials at about 0.7 on 2 cores: starting
ready trials from the futures' callbacks instead (tried) changed nothing.
"""
    replace_section(DOC, HEADING, section)


if __name__ == "__main__":
    main()
