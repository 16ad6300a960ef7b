"""Many workers on one search: real processes on a fresh SQLite file and a fresh PostgreSQL database.

Each worker is ``python -m engine.cli run`` in its own process, as a user would start it. The figures
asserted are the issue's: exactly ``n_trials`` finished trials per task however many workers run, no
trial run twice, no traceback, and a killed worker's trial failed with the reason and run again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.storages._rdb import models as optuna_models
from optuna.trial import TrialState
from sqlalchemy import create_engine, text
from sqlalchemy import inspect as sqlalchemy_inspect

from engine.errors import SearchFailed
from engine.results import best, defaults, searches
from engine.search import run
from engine.search.trials import INTERRUPTED, STALE
from engine.storage import Database
from engine.storage.optuna_adapter import open_optuna_storage
from engine.vocabulary import FAILURE_ATTR, cross_task_study_name, strategy_study_name
from tests.conftest import fresh_postgres_database

ROOT = Path(__file__).resolve().parents[1]

SPEC = """\
[search]
name = "many"
n_trials = {n}
strategies = ["{strategy}"]
updaters = ["gradient_descent"]
warm_start = false
plugins = {plugins}

[[tasks]]
source = "sklearn"
dataset = "iris"

[[tasks]]
source = "sklearn"
dataset = "wine"
"""

# A strategy that writes a marker file when its trial starts and then hangs until killed, but only in
# the process whose environment names the marker; elsewhere it is the linear model.
HANGING_PLUGIN = """
import os, time
from pathlib import Path
import engine
from plugins.strategies import LinearModel

class Hanging(LinearModel):
    name = "hanging"

    def build(self, info):
        marker = os.environ.get("HANG_MARKER")
        if marker:
            Path(marker).write_text(str(os.getpid()))
            while True:
                time.sleep(0.05)
        return super().build(info)

@engine.hookimpl
def stratagem_register_strategies(registry):
    registry.add(Hanging)
"""


def _spec(tmp_path: Path, n: int, plugins: tuple[str, ...] = ()) -> Path:
    path = tmp_path / "many.toml"
    quoted = "[" + ", ".join(f'"{p}"' for p in plugins) + "]"
    path.write_text(SPEC.format(n=n, plugins=quoted, strategy="hanging" if plugins else "linear"))
    return path


def _worker(spec: Path, url: str, **env: str) -> subprocess.Popen[str]:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "STRATAGEM_HEARTBEAT": "1", **env}
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "run", str(spec), "--storage", url, "--no-progress", "--json"],
        cwd=spec.parent,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _states(url: str, task: str) -> list[TrialState]:
    study = optuna.load_study(study_name=strategy_study_name("many", task), storage=url)
    return [t.state for t in study.get_trials(deepcopy=False)]


def _reasons(url: str, task: str) -> list[str]:
    study = optuna.load_study(study_name=strategy_study_name("many", task), storage=url)
    return [t.user_attrs.get(FAILURE_ATTR, "") for t in study.get_trials(states=(TrialState.FAIL,))]


def _exactly_n_with_no_traceback(tmp_path: Path, url: str, workers: int, n: int) -> None:
    spec = _spec(tmp_path, n)
    procs = [_worker(spec, url, STRATAGEM_HEARTBEAT="5") for _ in range(workers)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outputs, strict=True):
        assert "Traceback" not in err, err
        assert p.returncode == 0, err
    for task in ("iris", "wine"):
        states = _states(url, task)
        assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == n
        assert TrialState.RUNNING not in states and TrialState.WAITING not in states
        assert _reasons(url, task) == []  # nothing died, so nothing was failed or run twice
        study = optuna.load_study(study_name=strategy_study_name("many", task), storage=url)
        configs = [tuple(sorted(t.params.items())) for t in study.get_trials(deepcopy=False)]
        assert len(set(configs)) == len(configs), configs  # workers seeded alike must not repeat trials
    visits = optuna.load_study(study_name="many", storage=url).get_trials(deepcopy=False)
    assert all(v.state != TrialState.RUNNING for v in visits)
    assert sum(v.user_attrs["stratagem"]["trials"] for v in visits) == 2 * n  # no trial run twice
    assert {b.task: b.n_trials for b in best(storage=url, search="many")} == {"iris": n, "wine": n}


@pytest.mark.slow
def test_eight_workers_on_a_fresh_sqlite_file_run_exactly_n_trials(tmp_path: Path) -> None:
    _exactly_n_with_no_traceback(tmp_path, f"sqlite:///{tmp_path / 'fresh.db'}", workers=8, n=6)


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of its own, empty: workers race to create both schemas in it."""
    with fresh_postgres_database("stratagem_workers") as url:
        yield url


@pytest.mark.slow
@pytest.mark.postgres
def test_eight_workers_on_a_fresh_postgres_database_run_exactly_n_trials(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    _exactly_n_with_no_traceback(tmp_path, fresh_postgres_url, workers=8, n=6)


def _wait_for(marker: Path, proc: subprocess.Popen[str]) -> None:
    """Wait until the hanging trial has started (the marker exists), or fail if the worker died."""
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the worker never started its trial"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_with_the_reason_and_run_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    plugin = tmp_path / "hanging.py"
    plugin.write_text(HANGING_PLUGIN)
    spec = _spec(tmp_path, 2, (str(plugin),))
    marker = tmp_path / "started"
    doomed = _worker(spec, url, HANG_MARKER=str(marker))
    _wait_for(marker, doomed)
    doomed.kill()  # kill -9: no handler runs, the trial stays RUNNING until its heartbeat is stale
    doomed.communicate()

    live = _worker(spec, url)
    _out, err = live.communicate(timeout=600)
    assert live.returncode == 0 and "Traceback" not in err, err

    study = optuna.load_study(study_name=strategy_study_name("many", "iris"), storage=url)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].number == 0
    assert failed[0].user_attrs[FAILURE_ATTR] == STALE
    assert _states(url, "wine").count(TrialState.COMPLETE) == 2


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_replaced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orphan.db'}"
    spec = _spec(tmp_path, 1)
    first = _worker(spec, url)
    _out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    # A worker that asked for a trial and died before its first heartbeat: a RUNNING trial with none.
    study = optuna.load_study(
        study_name=strategy_study_name("many", "iris"), storage=open_optuna_storage(url)
    )
    orphan = study.ask()
    time.sleep(3.5)  # longer than the grace period (three 1 s heartbeats)

    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "run",
            str(spec),
            "--storage",
            url,
            "--no-progress",
            "--n-trials",
            "2",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "STRATAGEM_HEARTBEAT": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    trials = study.get_trials(deepcopy=False)
    assert trials[orphan.number].state == TrialState.FAIL
    assert trials[orphan.number].user_attrs[FAILURE_ATTR] == STALE
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2
    assert TrialState.RUNNING not in [t.state for t in trials]


@pytest.mark.slow
def test_sigterm_fails_the_running_trial_and_marks_the_search_interrupted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'term.db'}"
    plugin = tmp_path / "hanging.py"
    plugin.write_text(HANGING_PLUGIN)
    spec = _spec(tmp_path, 2, (str(plugin),))
    marker = tmp_path / "started"
    worker = _worker(spec, url, HANG_MARKER=str(marker))
    _wait_for(marker, worker)
    worker.send_signal(signal.SIGTERM)
    _out, err = worker.communicate(timeout=120)
    assert worker.returncode == 130 and "Traceback" not in err, err
    assert "Interrupted" in err
    study = optuna.load_study(study_name=strategy_study_name("many", "iris"), storage=url)
    (trial,) = study.get_trials(deepcopy=False)
    assert trial.state == TrialState.FAIL and trial.user_attrs[FAILURE_ATTR] == INTERRUPTED
    assert [s.status for s in searches(storage=url)] == ["interrupted"]


def test_a_rerun_repairs_a_best_row_that_names_a_worse_trial(sqlite_url: str, make_spec: object) -> None:
    spec = make_spec("demo", ("iris",), n_trials=4)  # type: ignore[operator]
    first = run(spec, storage=sqlite_url).best[0]
    study = optuna.load_study(study_name="demo/iris", storage=sqlite_url)
    worst = min(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.value or 0.0)
    assert worst.number != first.trial or worst.value == first.value
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:  # what a worker killed between a trial and the row's update leaves
        conn.execute(
            text("UPDATE stratagem_best SET trial_number = :n, value = :v"),
            {"n": worst.number, "v": worst.value},
        )
    engine.dispose()
    again = run(spec, storage=sqlite_url)
    assert again.trials_run == 0
    assert (again.best[0].trial, again.best[0].value) == (first.trial, first.value)


BROKEN_PLUGIN = """
import math
import torch
import engine
from plugins.strategies import LinearModel

class NoModel(LinearModel):
    name = "no_model"

    def build(self, info):
        return None

class NotANumber(LinearModel):
    name = "not_a_number"

    def build(self, info):
        class Nan(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros(1))

            def forward(self, x):
                return torch.full((x.shape[0], info.n_outputs), math.nan) + self.w
        return Nan()

@engine.hookimpl
def stratagem_register_strategies(registry):
    registry.add(NoModel)
    registry.add(NotANumber)
"""


@pytest.mark.parametrize(
    ("strategy", "reason"),
    [("no_model", "build() returned NoneType, not a torch.nn.Module"), ("not_a_number", "")],
)
def test_a_search_without_a_successful_trial_fails_and_says_why(
    tmp_path: Path, sqlite_url: str, make_spec: object, strategy: str, reason: str
) -> None:
    plugin = tmp_path / "broken.py"
    plugin.write_text(textwrap.dedent(BROKEN_PLUGIN))
    spec = make_spec("broken", ("iris",), n_trials=2, strategies=(strategy,), plugins=(str(plugin),))  # type: ignore[operator]
    with pytest.raises(SearchFailed, match="broken/iris: no successful trial, 2 failed") as info:
        run(spec, storage=sqlite_url)
    assert reason in str(info.value)
    study = optuna.load_study(study_name="broken/iris", storage=sqlite_url)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert all(reason in t.user_attrs[FAILURE_ATTR] for t in trials)
    assert best(storage=sqlite_url) == []
    assert [s.status for s in searches(storage=sqlite_url)] == ["failed"]


def test_reading_a_missing_sqlite_file_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    assert best(storage=url) == []
    assert not (tmp_path / "typo.db").exists()


def test_reading_an_optuna_only_file_keeps_its_journal_mode(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    optuna.create_study(storage=f"sqlite:///{path}", study_name="plain")
    assert best(storage=f"sqlite:///{path}") == []
    open_optuna_storage(f"sqlite:///{path}", create=False).get_all_studies()
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
    engine.dispose()


def _stratagem(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.cli", *args, "--no-progress", "--json"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "STRATAGEM_HEARTBEAT": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _worker_joins_a_running_search(tmp_path: Path, url: str) -> None:
    spec = _spec(tmp_path, 8)
    starter = _stratagem("run", str(spec), "--storage", url, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not [s for s in searches(storage=url) if s.name == "many"]:
        assert starter.poll() is None, starter.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    elsewhere = tmp_path / "elsewhere"  # another machine: no spec file, only the database URL
    elsewhere.mkdir()
    joiner = _stratagem("worker", "--search", "many", "--storage", url, cwd=elsewhere)
    for proc in (starter, joiner):
        _out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and "Traceback" not in err, err
    for task in ("iris", "wine"):
        states = _states(url, task)
        assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 8
        assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    visits = optuna.load_study(study_name="many", storage=url).get_trials(deepcopy=False)
    assert sum(v.user_attrs["stratagem"]["trials"] for v in visits) == 16  # no trial run twice
    assert {b.task: b.n_trials for b in best(storage=url, search="many")} == {"iris": 8, "wine": 8}


def test_stratagem_worker_joins_a_running_search_on_sqlite(tmp_path: Path) -> None:
    _worker_joins_a_running_search(tmp_path, f"sqlite:///{tmp_path / 'join.db'}")


@pytest.mark.postgres
def test_stratagem_worker_joins_a_running_search_on_postgres(tmp_path: Path, fresh_postgres_url: str) -> None:
    _worker_joins_a_running_search(tmp_path, fresh_postgres_url)


def test_stratagem_worker_on_an_unknown_search_lists_the_stored_ones(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'known.db'}"
    spec = _spec(tmp_path, 1)
    first = _stratagem("run", str(spec), "--storage", url, cwd=tmp_path)
    assert first.wait(timeout=600) == 0
    before = _states(url, "iris")
    lost = _stratagem("worker", "--search", "mnay", "--storage", url, cwd=tmp_path)
    _out, err = lost.communicate(timeout=120)
    assert lost.returncode != 0 and "Traceback" not in err
    assert "no search named 'mnay'" in err and "'many'" in err
    assert _states(url, "iris") == before
    missing = _stratagem(
        "worker", "--search", "many", "--storage", f"sqlite:///{tmp_path / 'nope.db'}", cwd=tmp_path
    )
    _out, err = missing.communicate(timeout=120)
    assert missing.returncode != 0 and "no search named 'many'" in err and "Traceback" not in err
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.slow
def test_four_workers_on_a_cross_task_search_run_exactly_n_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cross.db'}"
    spec = tmp_path / "cross.toml"
    spec.write_text(
        SPEC.format(n=6, plugins="[]", strategy="linear").replace(
            "[search]\n", '[search]\nmode = "cross_task"\n'
        )
    )
    procs = [_worker(spec, url, STRATAGEM_HEARTBEAT="5") for _ in range(4)]
    for proc in procs:
        _out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0 and "Traceback" not in err, err
    study = optuna.load_study(study_name=cross_task_study_name("many"), storage=url)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == 6
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}  # none failed, none run twice
    (default,) = defaults(storage=url, search="many")
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    lowest = min(t.value for t in complete if t.value is not None)  # the study minimises the mean loss
    assert default.loss == pytest.approx(lowest)
    assert default.trial in [t.number for t in complete if t.value == lowest]  # of equal ones, any
    assert default.n_trials == 6


@pytest.mark.postgres
def test_a_reader_during_schema_creation_writes_nothing(fresh_postgres_url: str) -> None:
    # The first worker has created the engine's tables and Optuna's, but Optuna has not stamped its
    # schema version yet: a reader (stratagem searches, best) must neither fail nor stamp it, which
    # would race the worker (a duplicate-key error in PostgreSQL's catalogue) and write on a read.
    Database(fresh_postgres_url)
    engine_ = create_engine(fresh_postgres_url)
    try:
        optuna_models.BaseModel.metadata.create_all(engine_)  # Optuna's tables, not yet stamped
        assert searches(storage=fresh_postgres_url) == []
        assert best(storage=fresh_postgres_url) == []
        tables = set(sqlalchemy_inspect(engine_).get_table_names())
        assert "alembic_version" not in tables
        with engine_.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM version_info")).scalar() == 0
    finally:
        engine_.dispose()


def _two_hanging_workers(tmp_path: Path, url: str) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
    """Two workers on one search, each hanging in a trial of its own (both started when this returns)."""
    plugin = tmp_path / "hanging.py"
    plugin.write_text(HANGING_PLUGIN)
    spec = _spec(tmp_path, 2, (str(plugin),))
    first, second = tmp_path / "first", tmp_path / "second"
    a = _worker(spec, url, HANG_MARKER=str(first))
    _wait_for(first, a)
    b = _worker(spec, url, HANG_MARKER=str(second))
    _wait_for(second, b)
    return a, b


@pytest.mark.slow
def test_the_search_stays_running_while_another_worker_is_at_work(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'status.db'}"
    a, b = _two_hanging_workers(tmp_path, url)
    a.send_signal(signal.SIGTERM)
    _out, err = a.communicate(timeout=120)
    assert a.returncode == 130 and "Traceback" not in err, err
    assert [s.status for s in searches(storage=url)] == ["running"]  # b is still at work
    b.send_signal(signal.SIGTERM)
    _out, err = b.communicate(timeout=120)
    assert b.returncode == 130 and "Traceback" not in err, err
    assert [s.status for s in searches(storage=url)] == ["interrupted"]  # the last one to stop says so


def test_the_last_worker_to_stop_is_not_kept_waiting_by_a_dead_ones_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dead.db'}"
    a, b = _two_hanging_workers(tmp_path, url)
    a.kill()  # kill -9: its trial stays RUNNING, and its heartbeats stop
    a.communicate()
    time.sleep(4.5)  # more than 3 heartbeat intervals of 1 s: a's trial is stale
    b.send_signal(signal.SIGTERM)
    _out, err = b.communicate(timeout=120)
    assert b.returncode == 130 and "Traceback" not in err, err
    assert [s.status for s in searches(storage=url)] == ["interrupted"]  # before: "running" for ever
