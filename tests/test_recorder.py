"""The best-so-far row: under concurrent workers (two that both find no row insert it once), and its
order (equal validation values: the lower validation loss first)."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest
import torch
from sklearn.metrics import log_loss, mean_squared_error

from engine.search import run
from engine.search.recorder import Outcome, StrategyRecorder, ranked, tie_loss
from engine.storage import BestRow, Database
from engine.study import training
from engine.task import Dataset
from engine.vocabulary import ATTR, TIE_LOSS, strategy_study_name
from plugins.evaluators import R2, Accuracy
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


def _study_with(url: str, template: optuna.Study, trials: list[tuple[float, float | None]]) -> optuna.Study:
    """A study holding finished trials of the given (value, validation loss), with the parameters of
    ``template``'s first trial."""
    first = template.trials[0]
    study = optuna.create_study(direction="maximize", storage=url, study_name=f"{template.study_name}/copy")
    for value, loss in trials:
        study.add_trial(
            optuna.trial.create_trial(
                value=value,
                params=first.params,
                distributions=first.distributions,
                user_attrs={ATTR: {TIE_LOSS: loss}},
            )
        )
    return study


def _offer(recorder: StrategyRecorder, study: optuna.Study, number: int) -> None:
    trial = study.trials[number]
    recorder.offer(Outcome(number, trial.value or 0.0, trial.params, dict(trial.user_attrs[ATTR])), study)


def _stored_trial(db: Database, search_task_id: int) -> int:
    with db.session() as s:
        (row,) = s.query(BestRow).filter_by(search_task_id=search_task_id)
        return int(row.trial_number)


def test_of_equal_values_the_lower_validation_loss_is_the_best(url: str) -> None:
    db, task, template = _empty_best(url, "ties")
    study = _study_with(url, template, [(0.9, 0.30), (0.9, 0.40), (0.9, 0.20), (0.8, 0.01), (0.9, None)])
    recorder = StrategyRecorder(db, task, maximize=True)
    for number in range(5):
        _offer(recorder, study, number)
        assert _stored_trial(db, task) == [0, 0, 2, 2, 2][number]
    assert (recorder.best_value, recorder.best_loss) == (0.9, 0.20)
    other = StrategyRecorder(db, task, maximize=True)  # a second worker knows the value, not the loss
    assert other.improves(0.9, 0.5) and not other.improves(0.9, None) and not other.improves(0.85, 0.0)
    _offer(other, study, 1)
    assert _stored_trial(db, task) == 2 and other.best_loss == 0.20


def test_repair_picks_the_lower_loss_among_equal_values(url: str) -> None:
    db, task, template = _empty_best(url, "ties_repair")
    study = _study_with(url, template, [(0.9, 0.30), (0.7, 0.01), (0.9, 0.10), (0.9, None)])
    StrategyRecorder(db, task, maximize=True).repair(study)
    assert _stored_trial(db, task) == 2
    assert [t.number for t in ranked(study.trials, maximize=True)] == [2, 0, 3, 1]
    assert [t.number for t in ranked(study.trials, maximize=False)] == [1, 2, 0, 3]


def test_a_trial_records_its_validation_loss(sqlite_url: str) -> None:
    run(tiny_spec("loss", n_trials=2), storage=sqlite_url)
    study = optuna.load_study(study_name=strategy_study_name("loss", "iris"), storage=sqlite_url)
    losses = [tie_loss(t.user_attrs[ATTR]) for t in study.trials]
    assert all(loss is not None and 0.0 < loss < 10.0 for loss in losses)


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_the_validation_loss_is_cross_entropy_or_squared_error(kind: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = rng.integers(0, 3, 40) if kind == "classification" else rng.normal(size=40) * 5 + 2
    data = Dataset("toy", X, y, kind)  # type: ignore[arg-type]
    train, val = np.arange(30), np.arange(30, 40)
    prepared = training.prepare(data, train)
    model = torch.nn.Linear(3, 3 if kind == "classification" else 1)
    evaluator = Accuracy() if kind == "classification" else R2()
    value, loss = training.judge(model, prepared, data, val, evaluator)
    output = training.predict(model, prepared, X[val])
    if kind == "classification":
        assert loss == pytest.approx(log_loss(y[val], output, labels=[0, 1, 2]), rel=1e-9)
    else:
        assert loss == pytest.approx(mean_squared_error(y[val], output), rel=1e-9)
    assert value == training.evaluate(model, prepared, data, val, evaluator)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    assert training.judge(model, prepared, data, val, evaluator)[1] is None
