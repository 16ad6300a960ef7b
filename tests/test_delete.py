"""Deleting a search removes its studies, kept models and rows, and leaves every other search intact."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner
from sqlalchemy import select

import engine
from engine.cli import cli
from engine.errors import StratagemError, UnknownNameError
from engine.storage import ArtifactRow, Database, SearchRow, SearchTaskRow, TaskRow
from engine.storage.optuna_adapter import open_optuna_storage


def _state(url: str) -> dict[str, Any]:
    storage = optuna.storages.RDBStorage(url)
    with Database(url).session() as s:
        return {
            "studies": {
                st.study_name: len(optuna.load_study(study_name=st.study_name, storage=storage).trials)
                for st in storage.get_all_studies()
            },
            "searches": sorted(s.scalars(select(SearchRow.name))),
            "links": sorted((t.search.name, t.key) for t in s.query(SearchTaskRow)),
            "artifacts": sorted(a.artifact_id for a in s.query(ArtifactRow)),
            "tasks": s.query(TaskRow).count(),
        }


def _two_searches(url: str, make_spec: Any) -> None:
    engine.run(make_spec("keep", datasets=("iris", "wine"), n_trials=2), storage=url)
    engine.run(make_spec("drop", datasets=("iris", "wine"), n_trials=2), storage=url)


def test_deleting_a_search_leaves_the_other_one_intact(
    sqlite_url: str, make_spec: Any, tmp_path: Path
) -> None:
    _two_searches(sqlite_url, make_spec)
    before = _state(sqlite_url)
    kept_before = engine.best(storage=sqlite_url, search="keep")
    done = engine.delete_search("drop", storage=sqlite_url)
    after = _state(sqlite_url)
    assert sorted(done.studies) == ["drop", "drop/iris", "drop/wine"]
    assert done.trials == 2 * 2 + 2 and done.artifacts == 2
    assert after["studies"] == {k: v for k, v in before["studies"].items() if k.split("/")[0] == "keep"}
    assert after["searches"] == ["keep"]
    assert after["links"] == [("keep", "iris"), ("keep", "wine")]
    assert len(after["artifacts"]) == 2 and set(after["artifacts"]) < set(before["artifacts"])
    assert after["tasks"] == before["tasks"]  # stored tasks are shared, and keep their split
    assert engine.best(storage=sqlite_url, search="keep") == kept_before
    store = Path(str(tmp_path / "study.db") + ".artifacts")
    assert sorted(p.name for p in store.iterdir()) == after["artifacts"]


def test_deleting_one_task_keeps_the_searchs_other_tasks(sqlite_url: str, make_spec: Any) -> None:
    _two_searches(sqlite_url, make_spec)
    done = engine.delete_search("drop", task="wine", storage=sqlite_url)
    assert done.studies == ["drop/wine"]
    after = _state(sqlite_url)
    assert ("drop", "iris") in after["links"] and ("drop", "wine") not in after["links"]
    assert "drop" in after["studies"] and "drop/iris" in after["studies"]
    with pytest.raises(UnknownNameError, match="no task 'nope'"):
        engine.delete_search("drop", task="nope", storage=sqlite_url)


def test_the_command_asks_on_a_terminal_and_refuses_elsewhere_without_yes(
    sqlite_url: str, make_spec: Any
) -> None:
    engine.run(make_spec("drop", n_trials=1), storage=sqlite_url)
    runner = CliRunner()
    refused = runner.invoke(cli, ["delete", "--search", "drop", "--storage", sqlite_url])
    assert refused.exit_code == 2 and "pass --yes" in refused.output
    assert [s.name for s in engine.searches(storage=sqlite_url)] == ["drop"]
    done = runner.invoke(cli, ["delete", "--search", "drop", "--storage", sqlite_url, "--yes", "--json"])
    assert done.exit_code == 0, done.output
    assert engine.searches(storage=sqlite_url) == []


def test_searches_shows_each_searchs_size(sqlite_url: str, make_spec: Any) -> None:
    _two_searches(sqlite_url, make_spec)
    sizes = {s.name: (s.studies, s.trials, s.artifacts) for s in engine.searches(storage=sqlite_url)}
    assert sizes == {"keep": (3, 6, 2), "drop": (3, 6, 2)}
    shown = CliRunner().invoke(cli, ["searches", "--storage", sqlite_url])
    assert shown.exit_code == 0 and "last run" in shown.output


@pytest.mark.postgres
def test_postgres_delete_leaves_the_other_search(postgres_url: str, make_spec: Any, tmp_path: Path) -> None:
    _two_searches(postgres_url, make_spec)
    engine.delete_search("drop", storage=postgres_url)
    after = _state(postgres_url)
    assert after["searches"] == ["keep"] and set(after["studies"]) >= {"keep", "keep/iris", "keep/wine"}
    assert not any(name.startswith("drop") for name in after["studies"])


def test_a_search_with_a_live_worker_is_not_deleted_until_the_worker_stops(
    sqlite_url: str, make_spec: Any
) -> None:
    engine.run(make_spec("busy", n_trials=1), storage=sqlite_url)
    storage = open_optuna_storage(sqlite_url)  # as a worker does: heartbeats on
    study = optuna.load_study(study_name="busy/iris", storage=storage)
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)  # a worker at work on trial 1
    before = _state(sqlite_url)
    with pytest.raises(
        StratagemError, match=r"'busy' is running: study 'busy/iris' has trials in flight \(\[1\]\)"
    ):
        engine.delete_search("busy", storage=sqlite_url)
    assert _state(sqlite_url) == before
    study.tell(trial, state=optuna.trial.TrialState.FAIL)  # the worker stopped
    assert engine.delete_search("busy", storage=sqlite_url).studies == ["busy", "busy/iris"]


def test_studies_left_without_their_search_rows_can_still_be_deleted(sqlite_url: str, make_spec: Any) -> None:
    engine.run(make_spec("gone", n_trials=1), storage=sqlite_url)
    with Database(sqlite_url).session() as s:  # the rows deleted while a worker recreated a study
        s.delete(s.scalars(select(SearchRow).where(SearchRow.name == "gone")).one())
    deleted = engine.delete_search("gone", storage=sqlite_url)
    assert deleted.studies == ["gone", "gone/iris"] and deleted.trials == 2
    assert _state(sqlite_url)["studies"] == {}
    with pytest.raises(UnknownNameError, match="no search 'gone'"):
        engine.delete_search("gone", storage=sqlite_url)


def test_a_copied_database_never_deletes_the_originals_models(
    sqlite_url: str, make_spec: Any, tmp_path: Path
) -> None:
    engine.run(make_spec("s", datasets=("iris",), n_trials=2), storage=sqlite_url)
    original = tmp_path / "study.db"
    store = Path(str(original) + ".artifacts")
    files = sorted(p.name for p in store.iterdir())
    assert files
    copy = tmp_path / "copy.db"
    _copy_database(original, copy)
    done = engine.delete_search("s", storage=f"sqlite:///{copy}")
    assert done.artifacts == 0 and sorted(p.name for p in store.iterdir()) == files
    assert engine.export(search="s", out=tmp_path / "m", storage=sqlite_url).is_dir()
    # A copy moved with its models reads and deletes its own, whatever happens to the original's.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    _copy_database(original, moved / "study.db")
    shutil.copytree(store, moved / "study.db.artifacts")
    for name in files:
        (store / name).write_bytes(b"damaged")
    url = f"sqlite:///{moved / 'study.db'}"
    assert engine.export(search="s", out=tmp_path / "m2", storage=url).is_dir()
    assert engine.delete_search("s", storage=url).artifacts == len(files)
    assert not any((moved / "study.db.artifacts").iterdir())
    assert sorted(p.name for p in store.iterdir()) == files


def _copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite file as a user would with the sqlite3 shell's .backup (its WAL pages included)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    dst.close()
    src.close()


def test_a_search_marked_running_is_refused_unless_forced(sqlite_url: str, make_spec: Any) -> None:
    engine.run(make_spec("between", n_trials=1), storage=sqlite_url)
    with Database(sqlite_url).session() as s:  # as a run between trials (or in its recheck) leaves it
        s.scalars(select(SearchRow).where(SearchRow.name == "between")).one().status = "running"
    before = _state(sqlite_url)
    with pytest.raises(StratagemError, match=r"'between' is marked running: .* delete with --force"):
        engine.delete_search("between", storage=sqlite_url)
    assert _state(sqlite_url) == before
    assert engine.delete_search("between", storage=sqlite_url, force=True).studies == [
        "between",
        "between/iris",
    ]


def test_one_task_of_a_cross_task_search_is_not_deleted(sqlite_url: str, make_spec: Any) -> None:
    spec = make_spec("ct", ("iris", "wine"), n_trials=1).replace(mode="cross_task")
    engine.run(spec, storage=sqlite_url)
    before = _state(sqlite_url)
    with pytest.raises(StratagemError, match=r"'ct' is a cross-task search: .* delete the whole search"):
        engine.delete_search("ct", task="iris", storage=sqlite_url)
    assert _state(sqlite_url) == before
