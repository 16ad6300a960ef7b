"""What a Dask worker runs, and the Dask client the parallel driver talks to.

A worker receives a task's :class:`~engine.study.StrategyObjective` once (scattered: the data travels
once per worker, not per trial), then per trial only its fixed parameters and number. It replays them
through the objective with a :class:`optuna.trial.FixedTrial` that records what the updater reports, and
returns a :class:`TrialResult`. Workers never open the study database and never sample.

Dask is an optional extra (``pip install 'stratagem[dask]'``); it is imported only when a parallel run
starts, so the rest of the engine does not need it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import optuna
import torch

from engine.errors import StratagemError
from engine.search.deadline import TrialTimedOut, trial_deadline
from engine.study import ReplayTrial, StrategyObjective, TrialFailed
from engine.study.trained import TrainedModel
from engine.vocabulary import ATTR

__all__ = [
    "PackedObjective",
    "PluginNames",
    "TrialResult",
    "dask_client",
    "pack",
    "run_trial",
    "warm_workers",
]

log = logging.getLogger("stratagem")

LOCAL_PLUGIN_PREFIX = "stratagem_local_"
"""Modules that the plugin host loaded from a file path; workers cannot import them by name."""


@dataclass(frozen=True)
class PluginNames:
    """Which plugin registered each strategy and updater, for error messages on a worker (picklable)."""

    strategies: dict[str, str]
    updaters: dict[str, str]

    def __call__(self, kind: str, name: str) -> str:
        return (self.strategies if kind == "strategy" else self.updaters).get(name, "unknown")


@dataclass(frozen=True)
class TrialResult:
    """One trial's outcome as a worker returns it.

    Attributes:
        value: The objective's value (validation).
        record: The trial's ``stratagem`` user attribute (evaluator, test value, timings, seed).
        intermediate: The values the updater reported, by step (stored afterwards; see the driver).
        trained: The trained model, when the driver asked for it (it keeps models).
    """

    value: float
    record: dict[str, Any]
    intermediate: dict[int, float]
    trained: TrainedModel | None


@dataclass(frozen=True)
class PackedObjective:
    """A task's objective as bytes (cloudpickle), unpacked once per worker process.

    Dask pickles data with plain pickle when it can, which sends classes by name; a strategy from a
    plugin file (not importable on a worker) must travel by value, so the objective is packed here.
    """

    key: str
    blob: bytes

    def load(self) -> StrategyObjective:
        objective = _unpacked.get(self.key)
        if objective is None:
            import cloudpickle

            objective = _unpacked[self.key] = cloudpickle.loads(self.blob)
        return objective


_unpacked: dict[str, StrategyObjective] = {}


def pack(objective: StrategyObjective) -> PackedObjective:
    """Pack ``objective`` for workers, with plugin modules loaded from a file path sent by value."""
    import cloudpickle

    classes = [*objective.strategies, *objective.updaters, type(objective.evaluator)]
    for cls in classes:
        module = sys.modules.get(cls.__module__)
        if module is not None and module.__name__.startswith(LOCAL_PLUGIN_PREFIX):
            cloudpickle.register_pickle_by_value(module)
    return PackedObjective(uuid.uuid4().hex, cloudpickle.dumps(objective))


def warm_workers(client: Any, remotes: list[Any]) -> None:
    """Unpack every scattered objective on every worker now (torch, the task's data, plugins), so that
    no trial claimed afterwards waits seconds for its worker's first imports. A worker that fails here
    is left to fail its first trial, with the reason."""
    futures = [
        client.submit(_unpack, remote, workers=[worker], allow_other_workers=False, pure=False)
        for worker in client.scheduler_info(n_workers=-1)["workers"]
        for remote in remotes
    ]
    try:
        client.gather(futures)
    except Exception as exc:  # reported again, per trial, when the driver runs on that worker
        log.warning("a Dask worker could not load a task's objective: %s", exc)


def _unpack(packed: PackedObjective) -> None:
    packed.load()


def run_trial(
    packed: PackedObjective | StrategyObjective,
    params: dict[str, Any],
    number: int,
    *,
    keep_model: bool,
    trial_timeout: float | None = None,
    threads: int | None = 1,
) -> TrialResult:
    """Train and evaluate one configuration (on a worker, or here given the objective itself, with
    ``threads = None`` to leave torch's threads alone); raise what the objective raises."""
    if threads is not None:
        torch.set_num_threads(max(1, threads))
    objective = packed.load() if isinstance(packed, PackedObjective) else packed
    own = dataclasses.replace(objective)  # its own last_record / last_trained: workers run threads
    trial = ReplayTrial(params, number)
    try:
        with trial_deadline(trial_timeout):
            value = own(cast(optuna.Trial, trial))
    except TrialTimedOut as exc:  # a BaseException: Dask would not pass it back as the trial's error
        raise TrialFailed(str(exc) or f"the trial ran longer than {trial_timeout} s") from None
    return TrialResult(
        value=value,
        record=dict(trial.user_attrs.get(ATTR, {})),
        intermediate=dict(trial.intermediate),
        trained=own.last_trained if keep_model else None,
    )


@contextmanager
def dask_client(n_jobs: int, address: str | None) -> Iterator[Any]:
    """A Dask client: on the scheduler at ``address``, or on a local cluster of ``n_jobs`` slots.

    The local cluster is a scheduler and one worker process per core (at most ``n_jobs``, each with
    enough threads for ``n_jobs`` trials in all), started as subprocesses with Dask's own command line
    (:func:`local_cluster`), so that the driver's process does nothing but drive; a worker that dies fails
    its trial at once (no silent re-run).

    Raises:
        StratagemError: Dask is not installed, or the scheduler cannot be reached or started.
    """
    try:
        import dask
        from dask.distributed import Client
    except ImportError:
        raise StratagemError(
            "--n-jobs and --dask need Dask: pip install 'stratagem[dask]' (dask[distributed])"
        ) from None
    # Ctrl-C or SIGTERM cancels the client's pending gathers; asyncio then logs each one as "Task
    # exception was never retrieved ... AllExit" with a traceback. The engine reports the interrupt itself.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), contextlib.ExitStack() as stack:
        if address is None:
            workers = max(1, min(n_jobs, os.cpu_count() or 1))
            address = stack.enter_context(local_cluster(workers, math.ceil(n_jobs / workers)))
        try:
            client = Client(address, timeout=30)
        except OSError as exc:
            raise StratagemError(
                f"cannot reach the Dask scheduler at {address!r}: {exc}. Start one with "
                "`dask scheduler` and workers with `dask worker ADDRESS`, or use --n-jobs"
            ) from None
        try:
            yield client
        finally:
            client.close()


LOCAL_START_S = 60.0
"""Seconds a local cluster's scheduler and workers get to start."""


@contextmanager
def local_cluster(workers: int, threads: int) -> Iterator[str]:
    """A scheduler and ``workers`` worker processes of ``threads`` threads on this machine; yields the
    scheduler's address and stops them all when the block ends.

    Each is a subprocess started with Dask's command line (``distributed.cli.dask_scheduler`` and
    ``dask_worker``, the scheduler refusing to rerun a task whose worker died), its output in a log
    file that an error quotes. On Linux each dies with this process, even killed (``PR_SET_PDEATHSIG``,
    set by the child itself, :data:`_BOOT`); workers also stop on their own once the scheduler is gone
    (``--death-timeout``). A killed driver leaves only the small folder of those logs in the temporary
    directory.

    Raises:
        StratagemError: They did not start within :data:`LOCAL_START_S` seconds.
    """
    from dask.distributed import Client

    folder = Path(tempfile.mkdtemp(prefix="stratagem-dask-"))
    file = folder / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0", _PARENT_ENV: str(os.getpid())}
    procs: list[subprocess.Popen[bytes]] = []

    def start(module: str, *args: str) -> None:
        with open(folder / f"{module}-{len(procs)}.log", "wb") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _BOOT, f"distributed.cli.{module}", "--no-dashboard", *args],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )

    def logs() -> str:
        tails = [f.read_text(errors="replace")[-600:] for f in sorted(folder.glob("*.log"))]
        return "\n".join(t for t in tails if t.strip()) or "(no output)"

    try:
        start("dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(file))
        deadline = time.monotonic() + LOCAL_START_S
        while not _address_in(file):
            if procs[0].poll() is not None or time.monotonic() > deadline:
                raise StratagemError(f"the local Dask scheduler did not start: {logs()}")
            time.sleep(0.05)
        for _ in range(workers):
            start(
                "dask_worker",
                "--scheduler-file",
                str(file),
                "--nthreads",
                str(threads),
                "--death-timeout",
                "30",
            )
        with Client(scheduler_file=str(file), timeout=LOCAL_START_S) as client:
            address = str(client.scheduler.address)
            try:
                client.wait_for_workers(workers, timeout=LOCAL_START_S)
            except TimeoutError:
                raise StratagemError(f"the local Dask workers did not start: {logs()}") from None
        yield address
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


_PARENT_ENV = "STRATAGEM_DASK_PARENT"

_BOOT = f"""
import ctypes, os, runpy, sys
if sys.platform.startswith("linux"):
    ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: die with the driver, even killed
if os.getppid() != int(os.environ["{_PARENT_ENV}"]):
    sys.exit("stratagem: the driver that started this Dask process is gone")
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
"""What a local cluster's subprocess runs first: it asks Linux to kill it when the driver dies (set in
the child itself, so nothing runs between fork and exec), checks that the driver did not die already,
then runs the Dask command-line module named by its first argument."""


def _address_in(file: Path) -> bool:
    """Whether the scheduler has written its whole scheduler file (it is not written atomically)."""
    try:
        return bool(json.loads(file.read_text()).get("address"))
    except (OSError, ValueError):
        return False
