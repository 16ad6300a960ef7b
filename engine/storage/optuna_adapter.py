"""The one place that reaches into Optuna beyond its everyday API.

Everything here uses public Optuna interfaces (``optuna.storages.RDBStorage``, ``BaseStorage`` methods);
it is kept in one module so that an Optuna upgrade that changes them is mended in one place:

* :func:`open_optuna_storage`: Optuna's relational storage on the engine's own database, with the same
  SQLite settings as the engine's connections.
* :func:`trial_counts`: a study's trials by state in one ``GROUP BY`` (:mod:`.optuna_batch`), where
  ``get_trials`` would read every trial with its parameters and attributes.
* :func:`study_id`: the storage-level id of a study by name (``BaseStorage.get_study_id_from_name``),
  for reading trials through the storage without loading a :class:`optuna.Study` per source.
* :func:`planned_params`: a trial's parameters, including those of a waiting trial, which Optuna keeps
  in the ``fixed_params`` system attribute that ``enqueue_trial`` writes (there is no public accessor).
* :func:`fail_stale_trials`: Optuna's own ``fail_stale_trials``, but storing why on each trial it
  fails and returning them (it needs the storage's private list of stale trials), and also failing a
  running trial that never recorded a heartbeat (its worker died between asking for it and its first
  beat), which Optuna leaves running forever; that one reads Optuna's ``trial_heartbeats`` table.
* :class:`Heartbeat`: a running trial's heartbeat thread (Optuna starts one only inside ``optimize``);
  :class:`Heartbeats`: one thread beating for every trial a parallel driver has in flight.
"""

from __future__ import annotations

import logging
import threading
import warnings
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import bindparam, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from engine.errors import StorageError
from engine.settings import heartbeat_interval
from engine.storage.database import Database, refuse_in_memory, refuse_uri_filename, sqlite_path, tune_sqlite
from engine.storage.optuna_batch import count_trials
from engine.vocabulary import FAILURE_ATTR

__all__ = [
    "Heartbeat",
    "Heartbeats",
    "fail_stale_trials",
    "live_trials",
    "open_optuna_storage",
    "planned_params",
    "skip_waiting_trials",
    "study_id",
    "trial_counts",
    "was_enqueued",
    "working_trials",
]

log = logging.getLogger("stratagem")

GRACE_INTERVALS = 3
"""A trial is stale when its worker has sent no heartbeat for this many intervals."""


def open_optuna_storage(url: str, *, create: bool = True) -> optuna.storages.RDBStorage:
    """Optuna's storage on the same database as the engine's tables, SQLite tuned alike.

    Writers get heartbeats (every :func:`~engine.settings.heartbeat_interval` seconds, stale after
    :data:`GRACE_INTERVALS` of them) and create the tables under the database's schema lock, so that
    workers started together do not race to create them.

    Args:
        url: The SQLAlchemy URL.
        create: Whether to create Optuna's tables if missing (readers pass ``False``).

    Raises:
        StorageError: The database cannot be opened (a reader: also when the SQLite file is missing).
    """
    kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    refuse_in_memory(url)
    refuse_uri_filename(url)
    path = sqlite_path(url)
    if not create and path is not None and not path.is_file():
        raise StorageError(f"no study database at {path}: check the path in --storage")
    if not create:  # a reader: Optuna's own errors (no tables yet) reach the caller as they are
        if not _optuna_tables_ready(url):
            raise StorageError(f"{_safe(url)} holds no Optuna studies (yet): Optuna's tables are not there")
        storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_table_creation=True)
        tune_sqlite(storage.engine, write=False)
        return storage
    interval = heartbeat_interval()
    try:
        with Database(url).lock("stratagem.schema"), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=kwargs,
                heartbeat_interval=interval,
                grace_period=GRACE_INTERVALS * interval,
            )
    except SQLAlchemyError as exc:
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise StorageError(
            f"cannot open Optuna's tables in {_safe(url)}: {text[0] if text else type(exc).__name__}"
        ) from None
    tune_sqlite(storage.engine, write=True)
    return storage


def _optuna_tables_ready(url: str) -> bool:
    """Whether Optuna's tables exist and are stamped, so that opening them writes nothing.

    Optuna's ``RDBStorage`` stamps its schema version (``version_info``, ``alembic_version``) when it
    finds it missing, even with ``skip_table_creation``: a reader that opened a database whose first
    worker is still creating the tables would race it (on PostgreSQL: a duplicate-key error in the
    catalogue) or write to a database it only meant to read.
    """
    engine = Database(url, create=False).engine
    try:
        if not inspect(engine).has_table("alembic_version") or not inspect(engine).has_table("version_info"):
            return False
        with engine.connect() as conn:
            stamped = conn.execute(text("SELECT count(*) FROM alembic_version")).scalar()
            versioned = conn.execute(text("SELECT count(*) FROM version_info")).scalar()
        return bool(stamped) and bool(versioned)
    except SQLAlchemyError:
        return False


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<storage URL>"


def skip_waiting_trials(study: optuna.Study, reason: str) -> list[int]:
    """Fail the study's enqueued trials that no worker will run (it has its trials); return their numbers.

    A warm start may enqueue a trial while other workers finish the budget; left WAITING, Optuna and
    optuna-dashboard would show it pending for ever. Each gets ``reason`` in its
    :data:`~engine.vocabulary.FAILURE_ATTR` user attribute. Callers hold the study's claim lock.
    """
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return _fail_trials(study._storage, [t._trial_id for t in waiting], reason)


def fail_stale_trials(
    study: optuna.Study, reason: str, running: list[FrozenTrial] | None = None
) -> list[int]:
    """Fail the study's running trials whose worker stopped sending heartbeats; return their numbers.

    Each failed trial gets ``reason`` in its :data:`~engine.vocabulary.FAILURE_ATTR` user attribute.
    A trial that another worker failed or finished first is skipped. Callers hold the study's claim
    lock, so two workers never fail the same trial. A running trial without any heartbeat that started
    more than a grace period ago is stale too: workers ask for a trial and record its first heartbeat
    under the claim lock, so such a trial's worker died in between.

    ``running``, if given, is the study's running trials as the caller just read them (saves a read).
    """
    storage = study._storage  # an RDBStorage wrapped in Optuna's cache, a BaseHeartbeat too
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return []
    if running is None:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    return _fail_trials(storage, sorted(_stale_ids(storage, study._study_id, running)), reason)


def _fail_trials(storage: optuna.storages.BaseStorage, trial_ids: list[int], reason: str) -> list[int]:
    """Fail each trial with ``reason`` in its :data:`~engine.vocabulary.FAILURE_ATTR`; return the numbers
    of those failed here (one that another worker finished or failed first is skipped)."""
    failed: list[int] = []
    for trial_id in trial_ids:
        try:
            number = storage.get_trial_number_from_id(trial_id)
            storage.set_trial_user_attr(trial_id, FAILURE_ATTR, reason)
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(number)
        except UpdateFinishedTrialError:
            continue
    return failed


def live_trials(storage: optuna.storages.BaseStorage, study_name: str) -> list[int]:
    """Numbers of the running trials of ``study_name`` whose worker still sends heartbeats (or started
    less than a grace period ago): a process is at work on the study. ``storage`` is a writer's (it
    knows the heartbeat interval)."""
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return []
    sid = study_id(storage, study_name)
    running = storage.get_all_trials(sid, deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    stale = _stale_ids(storage, sid, running)
    return [t.number for t in running if t._trial_id not in stale]


def working_trials(storage: optuna.storages.BaseStorage, study_name: str) -> list[int]:
    """Numbers of the running trials of ``study_name`` that a process still works on: those of
    :func:`live_trials`, or every running one on a storage without heartbeats (nothing tells a dead
    worker's trial apart there)."""
    if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
        return live_trials(storage, study_name)
    sid = study_id(storage, study_name)
    return [t.number for t in storage.get_all_trials(sid, deepcopy=False, states=(TrialState.RUNNING,))]


def _stale_ids(storage: BaseHeartbeat, study_id: int, running: list[FrozenTrial]) -> set[int]:
    """Ids of the ``running`` trials whose worker died: heartbeats lapsed, or none ever sent."""
    return set(storage._get_stale_trial_ids(study_id)) | set(_never_beaten(storage, running))


def _never_beaten(storage: BaseHeartbeat, running: list[FrozenTrial]) -> list[int]:
    """Ids of the ``running`` trials older than the grace period that have no heartbeat row at all."""
    interval = storage.get_heartbeat_interval() or heartbeat_interval()
    grace = timedelta(seconds=GRACE_INTERVALS * interval)
    now = datetime.now()  # Optuna stamps ``datetime_start`` with the worker's local clock
    old = {
        t._trial_id: t
        for t in running
        if t.state == TrialState.RUNNING and t.datetime_start is not None and now - t.datetime_start > grace
    }
    if not old:
        return []
    backend: Any = getattr(storage, "_backend", storage)  # the RDBStorage behind Optuna's cache
    engine = backend.engine
    with engine.connect() as conn:
        beaten = {
            row[0]
            for row in conn.execute(
                text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": list(old)},
            )
        }
    return [trial_id for trial_id in old if trial_id not in beaten]


class Heartbeat:
    """Records a running trial's heartbeat now and then every interval, until the block ends."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        self._storage = study._storage
        self._trial_id = trial._trial_id
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Record the first heartbeat now; then a thread records one every interval."""
        storage = self._storage
        if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
            storage.record_heartbeat(self._trial_id)
            self._thread = threading.Thread(target=self._beat, name="stratagem-heartbeat", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat thread (the trial is told, or its worker is going away)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Heartbeat:
        self.start()
        return self

    def _beat(self) -> None:
        storage = self._storage
        assert isinstance(storage, BaseHeartbeat)
        interval = storage.get_heartbeat_interval() or 1
        while not self._stop.wait(interval):
            try:
                storage.record_heartbeat(self._trial_id)
            except Exception as exc:  # the database may be briefly unreachable; the next beat retries
                log.warning("heartbeat of trial %d not recorded: %s", self._trial_id, exc)

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()


class Heartbeats:
    """One thread that records a heartbeat for every trial in flight, every interval."""

    def __init__(self, storage: optuna.storages.RDBStorage) -> None:
        self.storage = storage
        self.interval = storage.get_heartbeat_interval()
        self.ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="stratagem-heartbeats", daemon=True)

    def add(self, trial_id: int) -> None:
        if self.interval:
            self.storage.record_heartbeat(trial_id)
        with self._lock:
            self.ids.add(trial_id)

    def track(self, trial_id: int) -> None:
        """Beat for a trial whose first heartbeat is already stored."""
        with self._lock:
            self.ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self.ids.discard(trial_id)

    def __enter__(self) -> Heartbeats:
        if self.interval:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval or 1):
            with self._lock:
                ids = list(self.ids)
            for trial_id in ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as exc:  # the database may be briefly unreachable; the next beat retries
                    log.warning("heartbeat of trial %d not recorded: %s", trial_id, exc)


def trial_counts(study: optuna.Study) -> dict[TrialState, int]:
    """The study's trials by state, counted by the database in one query (not read back one by one)."""
    backend: Any = getattr(study._storage, "_backend", study._storage)  # RDBStorage behind Optuna's cache
    return count_trials(backend, study._study_id)


def study_id(storage: optuna.storages.BaseStorage, name: str) -> int:
    """The storage's id of the study called ``name``."""
    return storage.get_study_id_from_name(name)


def planned_params(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's parameters; for a waiting (enqueued) trial, the ones it was enqueued with."""
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params", {}))


def was_enqueued(trial: FrozenTrial) -> bool:
    """Whether a trial ran parameters enqueued for it (a warm-start trial), from ``fixed_params``."""
    return "fixed_params" in trial.system_attrs
