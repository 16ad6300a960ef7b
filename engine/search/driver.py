"""The driver of a parallel per-task search (:mod:`engine.search.parallel`): claim, submit, store.

A :class:`Lane` is one task's strategy study as the driver runs it (the study, its in-memory mirror, the
objective scattered to the workers, the best-row recorder); a :class:`Flight` is one trial in flight. The
:class:`Driver` keeps ``capacity`` trials in flight over all lanes (and an eighth more claimed and ready
to start), claims them in batches under each study's claim lock, and stores each finished one from a
writer thread before counting it.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import queue
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_threads
from dataclasses import dataclass, field
from typing import Any, cast

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from engine.errors import ModelStoreError, StratagemError
from engine.search.per_task import Visit, count_done
from engine.search.progress import ProgressSink
from engine.search.recorder import Outcome, StrategyRecorder, tie_loss
from engine.search.remote import PackedObjective, TrialResult, run_trial
from engine.search.trials import INTERRUPTED, STALE, TrialsRun, failure_reason, wait_a_moment
from engine.spec import Plan
from engine.storage import Database
from engine.storage.optuna_adapter import Heartbeats, fail_stale_trials, planned_params
from engine.storage.optuna_batch import complete_trial, count_trials, create_running_trials
from engine.study import PrefixedTrial, StrategyObjective, TrialFailed
from engine.trained import KeptModel, ModelKeeper
from engine.vocabulary import ATTR, DONE_STATES, FAILURE_ATTR

__all__ = ["MAX_RESUBMITS", "WORKER_DIED", "WRITERS", "Driver", "Flight", "Lane"]

log = logging.getLogger("stratagem")

WORKER_DIED = "its Dask worker died while it ran (killed, out of memory, or its machine stopped)"
WRITERS = 2
"""Threads that write finished trials, so that the database's round trips overlap."""
MAX_RESUBMITS = 3
"""Times a trial is sent again when Dask cancelled it because another trial's worker died."""


@dataclass
class Flight:
    """A trial in flight: its row in the database, its twin in the mirror, its Dask future.

    ``enqueued``: its row lacks its parameters still (a warm-start trial taken from the queue, or one
    whose sampling failed); they are written with its result.
    """

    lane: Lane
    trial_id: int
    number: int
    twin: optuna.Trial
    future: Any
    enqueued: bool
    resubmitted: int = 0


@dataclass
class Lane:
    """One task's strategy study as the driver runs it."""

    visit: Visit
    study: optuna.Study
    study_id: int
    mirror: optuna.Study
    objective: StrategyObjective
    packed: PackedObjective
    remote: Any
    recorder: StrategyRecorder
    keeper: ModelKeeper | None
    run: TrialsRun = field(default_factory=TrialsRun)
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = field(default_factory=list)
    flying: int = 0  # claimed by this driver and not yet stored or failed: ready, in flight or writing
    closed: bool = False
    waiting: bool = False


class Driver:
    """Claims, submits and stores trials until every lane is done, failing or out of time."""

    def __init__(
        self,
        plan: Plan,
        db: Database,
        storage: optuna.storages.RDBStorage,
        client: Any,
        lanes: list[Lane],
        progress: ProgressSink,
        capacity: int,
    ) -> None:
        self.spec, self.db, self.storage, self.client = plan.spec, db, storage, client
        self.lanes, self.progress, self.capacity = lanes, progress, capacity
        self.flights: dict[Any, Flight] = {}
        self.ready: collections.deque[Flight] = collections.deque()  # claimed, waiting for a free slot
        self.lead = capacity // 8  # trials claimed ahead, so a freed slot starts one at once
        self.finished: queue.SimpleQueue[Any] = queue.SimpleQueue()  # futures done, from their callbacks
        self.writes: dict[Future[KeptModel | None], tuple[Flight, float, TrialResult]] = {}
        self.writers = ThreadPoolExecutor(WRITERS, thread_name_prefix="stratagem-writer")
        self.beats = Heartbeats(storage)
        timeout = self.spec.timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self._turn = itertools.cycle(range(len(lanes)))
        self.stop: ModelStoreError | None = None  # the model store failed: every later trial would too

    def run(self) -> None:
        for lane in self.lanes:
            self.progress.task_started(lane.visit.task.key, self.spec.n_trials)
            for _ in range(count_done(lane.visit.study)):  # a resumed study's bar starts where it stands
                self.progress.trial_finished(lane.visit.task.key)
        try:
            with self.beats:
                while True:
                    self._settle(block=False)
                    if self.stop is not None:
                        raise self.stop
                    self._fill()
                    if not self.flights and not self.ready:
                        if self.writes:
                            self._settle(block=True)
                            continue
                        if all(lane.closed for lane in self.lanes):
                            return
                        wait_a_moment()  # the missing trials run elsewhere; one may die and leave them
                        continue
                    self._collect(self._done(timeout=0.05 if self.writes else 1))
        except BaseException as exc:
            reason = (
                INTERRUPTED if isinstance(exc, KeyboardInterrupt) else f"the driver stopped: {_text(exc)}"
            )
            self._settle_all()  # finished trials being written are kept, and counted
            for future, flight in list(self.flights.items()):
                future.cancel()
                self._fail(flight, reason, count=False)
            for flight in self.ready:
                self._fail(flight, reason, count=False)
            self.flights.clear()
            self.ready.clear()
            raise
        finally:
            self.writers.shutdown(wait=True)
            for lane in self.lanes:
                lane.recorder.finish(lane.visit.study)  # the best row's counts, also after Ctrl-C
                self.progress.task_finished(lane.visit.task.key)

    def _settle_all(self) -> None:
        """When the driver stops: wait for every write, and count those that were stored."""
        while self.writes:
            try:
                self._settle(block=True)
            except Exception as exc:  # the database failed too: the first error is the one to report
                log.warning("finished trials could not be counted after the driver stopped: %s", exc)
                wait_threads(list(self.writes))
                return

    def _settle(self, *, block: bool) -> None:
        """Count the trials whose writes are over: tell the mirror, update the best row, report."""
        if not self.writes:
            return
        done, _ = wait_threads(list(self.writes), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            flight, value, result = self.writes.pop(future)
            lane = flight.lane
            lane.flying -= 1
            self.beats.discard(flight.trial_id)
            try:
                kept = future.result()
            except UpdateFinishedTrialError:
                log.warning(
                    "trial %d of %s was failed by another worker; its result is lost",
                    flight.number,
                    lane.study.study_name,
                )
                lane.mirror.tell(flight.twin, state=TrialState.FAIL)
                continue
            except ModelStoreError as exc:  # as in a serial run: the trial fails, the search stops
                self._fail(flight, str(exc))
                self.stop = self.stop or exc
                continue
            except Exception as exc:
                self._fail(flight, f"its result could not be stored: {_reason(exc)}")
                continue
            lane.mirror.tell(flight.twin, value)
            lane.run.finished += 1
            params = dict(flight.twin.params)
            lane.recorder.offer(Outcome(flight.number, value, params, result.record), lane.study)
            if kept is not None and lane.keeper is not None:
                lane.keeper.settle(kept)
            self._told(flight)

    def _done(self, timeout: float) -> set[Any]:
        """The futures in flight that are done (finished, failed or cancelled), waiting up to ``timeout``
        for the first: each future's done-callback queues it, so a wait costs the same however many fly."""
        try:
            done = {self.finished.get(timeout=timeout)}
        except queue.Empty:
            return {f for f in list(self.flights) if f.done()}  # a belt to the callbacks' braces
        while True:
            try:
                done.add(self.finished.get_nowait())
            except queue.Empty:
                return {f for f in done if f in self.flights}  # not one already resubmitted or failed

    def _collect(self, done: set[Any]) -> None:
        """Store the trials whose futures are done; results come in one round trip to the cluster."""
        ok = [f for f in done if f.status == "finished"]
        results = self.client.gather(ok) if ok else []
        for future, result in zip(ok, results, strict=True):
            self._finish(self.flights.pop(future), result)
        for future in done:
            flight = self.flights.get(future)
            if flight is not None and future.cancelled() and flight.resubmitted < MAX_RESUBMITS:
                del self.flights[future]  # lost with another trial's worker: not its fault, run it again
                flight.resubmitted += 1
                self._submit(flight)
            elif flight is not None:
                try:
                    error = future.exception()
                except BaseException as exc:  # cancelled, or lost with the scheduler
                    error = exc
                self._finish(self.flights.pop(future), error)

    def _fill(self) -> None:
        """Start claimed trials in the free slots, then claim trials for open lanes, in turn, until every
        slot is in flight and :attr:`lead` more wait ready.

        A lane with trials in flight claims only once a batch of slots is free (an eighth of them):
        each claim reads the study's counts under its lock, and fewer, larger claims cost less. The ready
        trials are RUNNING rows with heartbeats like those in flight, so counts stay exact; they start
        the moment a slot frees, while the driver claims the next batch.
        """
        while self.ready and len(self.flights) < self.capacity:
            self._submit(self.ready.popleft())
        out_of_time = self.deadline is not None and time.monotonic() >= self.deadline
        batch = max(1, self.capacity // 8)
        for _ in range(len(self.lanes)):
            free = self.capacity + self.lead - len(self.flights) - len(self.ready)
            if free <= 0:
                return
            lane = self.lanes[next(self._turn)]
            if lane.closed or (lane.flying and free < batch):
                continue
            if out_of_time or len(lane.run.failures) >= self.spec.n_trials:  # out of time, or all failing
                lane.closed = lane.flying == 0
                lane.run.status = "timeout" if out_of_time else lane.run.status
                continue
            open_lanes = sum(not x.closed for x in self.lanes)
            self._claim(lane, min(free, math.ceil((self.capacity + self.lead) / max(1, open_lanes))))

    def _claim(self, lane: Lane, want: int) -> None:
        """Under the study's claim lock, create up to ``want`` RUNNING trials and submit them."""
        study = lane.study
        with self.db.lock(f"stratagem.claim:{study.study_name}"):
            counts = count_trials(self.storage, lane.study_id)
            others = counts.get(TrialState.RUNNING, 0) > lane.flying  # one of them may be stale
            if others and fail_stale_trials(study, STALE):
                counts = count_trials(self.storage, lane.study_id)
            finished = sum(counts.get(state, 0) for state in DONE_STATES)
            if finished >= self.spec.n_trials:
                lane.run.status, lane.closed = "done", lane.flying == 0
                return
            free = min(want, self.spec.n_trials - finished - counts.get(TrialState.RUNNING, 0))
            lane.waiting = free <= 0
            if free <= 0:
                return
            if not lane.run.attempts and not lane.flying and not counts:
                lane.callbacks.extend(lane.visit.warm_start(self.spec.n_trials, sampled=lane.mirror))
                counts = count_trials(self.storage, lane.study_id)
            if counts.get(TrialState.WAITING):
                free -= self._start_enqueued(lane, free)
            twins = [t for t in (self._ask(lane) for _ in range(free)) if t is not None]
            planned = [(t.params, t.distributions) for t in twins]
            for twin, (trial_id, number) in zip(
                twins, create_running_trials(self.storage, lane.study_id, planned), strict=True
            ):
                self.beats.track(trial_id)  # its first heartbeat was written with it
                self._start(Flight(lane, trial_id, number, twin, None, False))

    def _ask(self, lane: Lane) -> optuna.Trial | None:
        """Ask the mirror for a trial and sample its configuration; a plugin's error fails it."""
        twin = lane.mirror.ask()
        try:
            _sample(twin, lane.objective)
        except TrialFailed as exc:
            ((trial_id, number),) = create_running_trials(self.storage, lane.study_id, [({}, {})])
            self._fail(Flight(lane, trial_id, number, twin, None, True), str(exc))
            return None
        return twin

    def _start_enqueued(self, lane: Lane, most: int) -> int:
        """Take up to ``most`` waiting (warm-start) trials of the study and submit them; return how many."""
        taken = 0
        for trial in lane.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if taken >= most:
                break
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(lane.study_id, trial.number)
            if not self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                continue
            self.beats.add(trial_id)
            lane.mirror.enqueue_trial(planned_params(trial))
            twin = lane.mirror.ask()
            try:
                _sample(twin, lane.objective)
            except TrialFailed as exc:
                self._fail(Flight(lane, trial_id, trial.number, twin, None, True), str(exc))
            else:
                self._start(Flight(lane, trial_id, trial.number, twin, None, True))
            taken += 1
        return taken

    def _start(self, flight: Flight) -> None:
        """A claimed trial: submit it if a slot is free, else keep it ready; it counts in its lane's
        ``flying`` from now until it is stored or failed."""
        flight.lane.flying += 1
        if len(self.flights) < self.capacity:
            self._submit(flight)
        else:
            self.ready.append(flight)

    def _submit(self, flight: Flight) -> None:
        spec, lane = self.spec, flight.lane
        if lane.remote.status != "finished":  # the scattered objective was lost with a worker
            lane.remote = self.client.scatter(lane.packed, broadcast=True)
        flight.future = self.client.submit(
            run_trial,
            lane.remote,
            dict(flight.twin.params),
            flight.number,
            keep_model=lane.keeper is not None,
            trial_timeout=spec.trial_timeout,
            threads=spec.threads,
            pure=False,
        )
        self.flights[flight.future] = flight
        flight.future.add_done_callback(self.finished.put)

    def _finish(self, flight: Flight, result: TrialResult | BaseException | None) -> None:
        """Fail the trial now, or hand it to a writer thread (it counts once written)."""
        value = result.value if isinstance(result, TrialResult) else None
        if not isinstance(result, TrialResult) or not _finite(value):
            flight.lane.flying -= 1
        if not isinstance(result, TrialResult):
            self._fail(
                flight, _reason(result) if result is not None else "its Dask task ended without a result"
            )
            return
        if not _finite(value):
            self._fail(flight, f"the objective's value is {value!r}, not a finite number")
            return
        number = float(value)  # type: ignore[arg-type]
        self.writes[self.writers.submit(self._write, flight, number, result)] = (flight, number, result)

    def _write(self, flight: Flight, value: float, result: TrialResult) -> KeptModel | None:
        """In a writer thread: store the finished trial whole (its model too, if kept).

        Raises:
            UpdateFinishedTrialError: Another worker failed the trial (it saw no heartbeat in time).
        """
        lane, storage, trial_id = flight.lane, self.storage, flight.trial_id
        if flight.enqueued:
            self._write_params(flight)
        kept = None
        keeper = lane.keeper
        if (
            keeper is not None
            and result.trained is not None
            and keeper.wants(lane.recorder.improves(value, tie_loss(result.record)))
        ):
            kept = keeper.upload(
                optuna.Trial(lane.study, trial_id),
                flight.number,
                dict(flight.twin.params),
                result.trained,
                value,
                result.record,
            )
        if not complete_trial(
            storage, trial_id, value, intermediate=result.intermediate, user_attrs={ATTR: result.record}
        ):
            raise UpdateFinishedTrialError(f"trial {flight.number} was finished elsewhere")
        return kept

    def _write_params(self, flight: Flight) -> None:
        params = flight.twin.params
        for name, dist in flight.twin.distributions.items():
            self.storage.set_trial_param(flight.trial_id, name, dist.to_internal_repr(params[name]), dist)

    def _fail(self, flight: Flight, reason: str, *, count: bool = True) -> None:
        lane = flight.lane
        self.beats.discard(flight.trial_id)
        try:
            if flight.enqueued:
                self._write_params(flight)
            self.storage.set_trial_user_attr(flight.trial_id, FAILURE_ATTR, reason)
            self.storage.set_trial_state_values(flight.trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            pass
        lane.mirror.tell(flight.twin, state=TrialState.FAIL)
        lane.run.failures.append(reason)
        if count:
            self._told(flight)

    def _told(self, flight: Flight) -> None:
        lane = flight.lane
        if lane.callbacks:
            frozen = self.storage.get_trial(flight.trial_id)
            for callback in lane.callbacks:
                callback(lane.study, frozen)
        self.progress.trial_finished(lane.visit.task.key)


def _sample(trial: optuna.Trial, objective: StrategyObjective) -> None:
    """Sample a configuration in ``trial`` exactly as the objective will replay it on a worker."""
    info = objective.dataset.info()
    for kind, classes in (("strategy", objective.strategies), ("updater", objective.updaters)):
        by_name = {c.name: c for c in classes}
        name = trial.suggest_categorical(kind, list(by_name))
        try:
            by_name[name].suggest(cast(optuna.Trial, PrefixedTrial(trial, name)), info)
        except Exception as exc:
            plugin = objective.plugin_of(kind, name) if objective.plugin_of else "unknown"
            raise TrialFailed(
                f"{kind} {name!r} (plugin {plugin!r}) raised {type(exc).__name__}: {exc}"
            ) from exc


def _finite(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _text(exc: BaseException) -> str:
    """An error as a trial's failure reason: ours as they read, others with their type."""
    return str(exc) if isinstance(exc, StratagemError) else repr(exc)


def _reason(exc: BaseException) -> str:
    if type(exc).__name__ == "KilledWorker":
        return f"{WORKER_DIED}: {exc}"
    return failure_reason(exc)
