"""What a Dask worker runs, and the Dask client the parallel driver talks to.

A worker receives a task's :class:`~engine.study.StrategyObjective` once (scattered: the data travels
once per worker, not per trial), then per trial only its fixed parameters and number. It replays them
through the objective with a :class:`optuna.trial.FixedTrial` that records what the updater reports, and
returns a :class:`TrialResult`. Workers never open the study database and never sample.

Dask is an optional extra (``pip install 'stratagem[dask]'``); it is imported only when a parallel run
starts, so the rest of the engine does not need it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import optuna
import torch
from optuna.trial import FixedTrial

from engine.errors import StratagemError
from engine.search.deadline import TrialTimedOut, trial_deadline
from engine.study import StrategyObjective, TrialFailed
from engine.study.trained import TrainedModel
from engine.vocabulary import ATTR

__all__ = ["PackedObjective", "PluginNames", "TrialResult", "dask_client", "pack", "run_trial"]

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


class _RecordingTrial(FixedTrial):
    """A fixed trial that keeps what is reported; it never prunes (a worker cannot see the study)."""

    def __init__(self, params: dict[str, Any], number: int) -> None:
        super().__init__(params, number)
        self.intermediate: dict[int, float] = {}

    def report(self, value: float, step: int) -> None:
        if math.isfinite(value):
            self.intermediate[int(step)] = float(value)

    def should_prune(self) -> bool:
        return False


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


def run_trial(
    packed: PackedObjective,
    params: dict[str, Any],
    number: int,
    *,
    keep_model: bool,
    trial_timeout: float | None = None,
    threads: int = 1,
) -> TrialResult:
    """Train and evaluate one configuration (on a worker); raise what the objective raises."""
    torch.set_num_threads(max(1, threads))
    own = dataclasses.replace(packed.load())  # its own last_record / last_trained: workers run threads
    trial = _RecordingTrial(params, number)
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

    The local cluster has one worker process per core (at most ``n_jobs``), each with enough threads
    for ``n_jobs`` trials in all; a worker that dies fails its trial at once (no silent re-run).

    Raises:
        StratagemError: Dask is not installed, or the scheduler cannot be reached.
    """
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise StratagemError(
            "--n-jobs and --dask need Dask: pip install 'stratagem[dask]' (dask[distributed])"
        ) from None
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        if address is not None:
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
            return
        workers = max(1, min(n_jobs, os.cpu_count() or 1))
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=math.ceil(n_jobs / workers),
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
        try:
            yield client
        finally:
            started = time.monotonic()
            client.close()
            cluster.close(timeout=max(5.0, 30 - (time.monotonic() - started)))
