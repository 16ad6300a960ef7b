"""Running a study's trials with any number of workers: claim a slot, beat, tell, say why a trial failed.

Optuna's ``optimize(n_trials=...)`` counts the trials of one process, and ``MaxTrialsCallback`` stops
only after a trial finished, so workers started together overshoot. Here every trial is *claimed*
under the study's lock (:meth:`engine.storage.Database.lock`: an advisory lock on PostgreSQL, a file
lock on SQLite): the worker fails stale trials, counts finished and running trials, and asks for a new
one only while that count is below ``n_trials``. A running trial records a heartbeat
(:class:`~engine.storage.optuna_adapter.Heartbeat`); when its worker dies (``kill -9``), the next
worker to claim after the grace period fails it with the reason and runs one in its place. So a study
ends with exactly ``n_trials`` finished trials, however many workers ran it and whatever killed them.

A failed trial keeps why in its user attribute :data:`~engine.vocabulary.FAILURE_ATTR`; a non-finite
value is a failure, never a result, and so is a trial that runs past ``trial_timeout``
(:mod:`engine.search.deadline`).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from engine.errors import ModelStoreError, StratagemError
from engine.search.deadline import TrialTimedOut, trial_deadline
from engine.search.progress import ProgressSink
from engine.settings import heartbeat_interval
from engine.storage import Database
from engine.storage.optuna_adapter import Heartbeat, fail_stale_trials, skip_waiting_trials, trial_counts
from engine.study import TrialFailed
from engine.vocabulary import ATTR, DONE_STATES, FAILURE_ATTR, SKIPPED_REASON

__all__ = [
    "INTERRUPTED",
    "STALE",
    "RunStatus",
    "TrialsRun",
    "failure_reason",
    "run_study",
    "run_trials",
    "set_study_attrs",
    "wait_a_moment",
]

log = logging.getLogger("stratagem")

STALE = "its worker stopped sending heartbeats (killed, or its machine stopped); a new trial replaced it"
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"
MAX_REASON = 2_000

Callback = Callable[[optuna.Study, FrozenTrial], None]
RunStatus = Literal["done", "wait", "limit", "timeout"]


@dataclass
class TrialsRun:
    """What one call of :func:`run_trials` did.

    Attributes:
        status: ``done`` (the study has its trials), ``wait`` (the rest are running in other workers),
            ``limit`` (this call's ``limit`` reached) or ``timeout``.
        finished: Trials this worker finished (complete or pruned).
        failures: Why each trial this worker failed, in order.
    """

    status: RunStatus = "limit"
    finished: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return self.finished + len(self.failures)


def run_trials(
    db: Database,
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int,
    limit: int,
    timeout: float | None = None,
    trial_timeout: float | None = None,
    prepare: Callable[[], Sequence[Callback]] | None = None,
    on_told: Callable[[FrozenTrial], None] | None = None,
) -> TrialsRun:
    """Run trials of ``study`` until it has ``n_trials`` finished ones or this call ran ``limit``.

    Args:
        db: The engine's database (its lock guards the claims).
        study: The study, on an RDB storage with heartbeats.
        objective: Returns the trial's value; raises :class:`optuna.TrialPruned` or any error to fail it.
        n_trials: Finished (complete or pruned) trials the study wants in all, over every worker.
        limit: Most trials this call runs (finished or failed).
        timeout: Seconds after which this call starts no new trial.
        trial_timeout: Seconds after which a running trial is stopped and failed.
        prepare: Called under the claim lock when the study has no trial yet (warm start); returns
            callbacks to call after each trial this call tells.
        on_told: Called with each trial this call told, after Optuna stored it.

    Raises:
        KeyboardInterrupt: After failing the running trial with the reason :data:`INTERRUPTED`.
    """
    out = TrialsRun()
    deadline = None if timeout is None else time.monotonic() + timeout
    callbacks: list[Callback] = []
    while out.attempts < limit:
        if deadline is not None and time.monotonic() >= deadline:
            out.status = "timeout"
            return out
        with db.lock(f"stratagem.claim:{study.study_name}"):
            counts = trial_counts(study)
            if counts.get(TrialState.RUNNING) and fail_stale_trials(study, STALE):
                counts = trial_counts(study)
            finished = sum(counts.get(state, 0) for state in DONE_STATES)
            if finished >= n_trials:
                if counts.get(TrialState.WAITING):
                    skip_waiting_trials(study, SKIPPED_REASON)
                out.status = "done"
                return out
            if finished + counts.get(TrialState.RUNNING, 0) >= n_trials:
                out.status = "wait"
                return out
            _reseed_if_shared(study, counts)
            if prepare is not None and not counts:
                callbacks.extend(prepare())
            with warnings.catch_warnings():  # "Heartbeat ... supposed to be used with optimize": we beat
                warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
                trial = study.ask()
            beat = Heartbeat(study, trial)
            beat.start()
        try:
            frozen, reason = _run_one(study, trial, objective, trial_timeout)
        finally:
            beat.stop()
        if reason is not None:
            out.failures.append(reason)
        else:
            out.finished += 1
        if frozen is not None:
            for callback in callbacks:
                callback(study, frozen)
            if on_told is not None:
                on_told(frozen)
    out.status = "limit"
    return out


_started: weakref.WeakSet[optuna.Study] = weakref.WeakSet()
_reseeded: weakref.WeakSet[optuna.Study] = weakref.WeakSet()


def _reseed_if_shared(study: optuna.Study, counts: dict[TrialState, int]) -> None:
    """Reseed the study's sampler (once per study object, that is per run) when trials other than this
    run's are there: another worker's trial running, or, at the run's first trial, trials stored before.
    A sampler seeded like another process's would propose that process's trials again. A sole process
    that starts the study keeps the seeded, reproducible sequence (also when a warm start wraps the
    sampler after the first claim)."""
    if study in _reseeded:
        return
    if counts.get(TrialState.RUNNING) or (study not in _started and counts):
        study.sampler.reseed_rng()
        _reseeded.add(study)
    _started.add(study)


def _run_one(
    study: optuna.Study,
    trial: optuna.Trial,
    objective: Callable[[optuna.Trial], float],
    trial_timeout: float | None = None,
) -> tuple[FrozenTrial | None, str | None]:
    """Run and tell one trial: return it as stored (``None``: another worker failed it), and why it failed."""
    try:
        with trial_deadline(trial_timeout):
            value = objective(trial)
    except TrialTimedOut as exc:
        return _fail(study, trial, str(exc) or f"the trial ran longer than {trial_timeout:g} s")
    except optuna.TrialPruned:
        return _tell(study, trial, TrialState.PRUNED), None
    except KeyboardInterrupt:
        _fail(study, trial, INTERRUPTED)
        raise
    except SystemExit as exc:  # plugin code called exit(): its trial fails, the search goes on
        return _fail(study, trial, f"the trial's code called exit({exc.code!r}) ({_where(exc)})")
    except ModelStoreError as exc:  # every later trial would fail the same way: stop, say why
        _fail(study, trial, str(exc))
        raise
    except Exception as exc:
        return _fail(study, trial, failure_reason(exc))
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return _fail(study, trial, f"the objective's value is {value!r}, not a finite number")
    return _tell(study, trial, TrialState.COMPLETE, float(value)), None


def _where(exc: BaseException) -> str:
    """The file and line that raised ``exc`` (the innermost frame of its traceback)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}, line {tb.tb_lineno}" if tb is not None else "unknown place"


def failure_reason(exc: BaseException) -> str:
    """Why a trial failed, for its stored reason: our errors as they read, others with their type."""
    if isinstance(exc, TrialFailed | StratagemError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> tuple[FrozenTrial | None, str]:
    reason = reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"
    try:
        trial.set_user_attr(FAILURE_ATTR, reason)
    except UpdateFinishedTrialError:
        return None, reason
    return _tell(study, trial, TrialState.FAIL), reason


def _tell(
    study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None = None
) -> FrozenTrial | None:
    try:
        frozen: FrozenTrial | None = study.tell(trial, value, state=state, skip_if_finished=True)
    except UpdateFinishedTrialError:
        frozen = None
    if frozen is None or frozen.state != state:
        log.warning(
            "trial %d of %s was failed by another worker (no heartbeat seen in time); its result is lost",
            trial.number,
            study.study_name,
        )
        return None
    return frozen


def run_study(
    db: Database,
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int,
    timeout: float | None = None,
    trial_timeout: float | None = None,
    progress: ProgressSink,
) -> int:
    """Run trials of one study until it has ``n_trials`` finished ones, time is up, or ``n_trials`` of
    this call's trials failed (so a study whose every trial fails stops and says why); return the trials
    run. Waits while the missing trials run in other workers (one may die and leave them to us).
    ``progress`` shows the study as one task, named by the study.
    """
    name = study.study_name

    def on_told(_trial: FrozenTrial) -> None:
        progress.trial_finished(name)

    progress.task_started(name, n_trials)
    trials_run = failures = 0
    while True:
        run = run_trials(
            db,
            study,
            objective,
            n_trials=n_trials,
            limit=n_trials,
            timeout=timeout,
            trial_timeout=trial_timeout,
            on_told=on_told,
        )
        trials_run += run.attempts
        failures += len(run.failures)
        if run.status in ("done", "timeout") or failures >= n_trials:
            progress.task_finished(name)
            return trials_run
        if run.status == "wait" and run.attempts == 0:
            wait_a_moment()


def set_study_attrs(study: optuna.Study, attrs: dict[str, Any]) -> None:
    """Store the engine's description of ``study`` (user attribute :data:`ATTR`) unless it is there."""
    if study.user_attrs.get(ATTR) != attrs:
        study.set_user_attr(ATTR, attrs)


def wait_a_moment() -> None:
    """Sleep a heartbeat interval: the trials still to run are running elsewhere."""
    time.sleep(min(heartbeat_interval(), 5))
