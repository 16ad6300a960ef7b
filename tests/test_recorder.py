"""The best-so-far row under concurrent workers: two workers that both find no row insert it once."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from engine.search import run
from engine.search.recorder import Outcome, StrategyRecorder
from engine.storage import BestRow, Database
from engine.vocabulary import strategy_study_name
from tests.conftest import tiny_spec


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        return str(request.getfixturevalue("postgres_url"))
    return str(request.getfixturevalue("sqlite_url"))


def _empty_best(url: str, name: str) -> tuple[Database, int, optuna.Study]:
    """A finished one-trial search whose best row was removed, as when its first trial is still running."""
    run(tiny_spec(name, n_trials=1), storage=url)
    db = Database(url)
    with db.session() as s:
        row = (
            s.query(BestRow)
            .join(BestRow.search_task)
            .filter_by(study_name=strategy_study_name(name, "iris"))
            .one()
        )
        search_task_id = row.search_task_id
        s.delete(row)
    return db, search_task_id, optuna.load_study(study_name=strategy_study_name(name, "iris"), storage=url)


def _racing(db: Database, search_task_id: int) -> StrategyRecorder:
    """A recorder whose first read finds no row, as when another worker inserts it right after."""
    recorder = StrategyRecorder(db, search_task_id, maximize=True)
    recorder.best_value = None  # it started before the other worker's first trial finished
    reads: list[int] = []
    find = recorder._find

    def first_read_misses(s: Any) -> BestRow | None:
        reads.append(1)
        return None if len(reads) == 1 else find(s)

    recorder._find = first_read_misses  # type: ignore[method-assign]
    return recorder


def _outcome(study: optuna.Study, value: float) -> Outcome:
    """The study's one trial, as if it had scored ``value``."""
    return Outcome(number=0, value=value, params=dict(study.trials[0].params), record={})


def _stored(db: Database, search_task_id: int) -> list[float]:
    with db.session() as s:
        return [r.value for r in s.query(BestRow).filter_by(search_task_id=search_task_id)]


def test_a_worker_that_loses_the_insert_race_keeps_the_better_stored_value(url: str) -> None:
    db, task, study = _empty_best(url, "race_worse")
    StrategyRecorder(db, task, maximize=True).offer(_outcome(study, 0.8), study)
    late = _racing(db, task)
    late.offer(_outcome(study, 0.5), study)
    assert _stored(db, task) == [0.8] and late.best_value == 0.8


def test_a_worker_that_loses_the_insert_race_stores_its_better_value(url: str) -> None:
    db, task, study = _empty_best(url, "race_better")
    StrategyRecorder(db, task, maximize=True).offer(_outcome(study, 0.5), study)
    _racing(db, task).offer(_outcome(study, 0.9), study)
    assert _stored(db, task) == [0.9]


def test_a_forced_choice_that_loses_the_insert_race_replaces_the_stored_row(url: str) -> None:
    db, task, study = _empty_best(url, "race_choice")
    StrategyRecorder(db, task, maximize=True).offer(_outcome(study, 0.9), study)
    _racing(db, task).choose(_outcome(study, 0.7), study, notes='{"among": 3}')
    with db.session() as s:
        (row,) = s.query(BestRow).filter_by(search_task_id=task)
        assert (row.value, row.notes) == (0.7, '{"among": 3}')
