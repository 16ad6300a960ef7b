"""The driver's batched writes into Optuna's tables read back through Optuna's own API, on SQLite and on
PostgreSQL, and never touch a trial that is already finished."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna import create_study
from optuna.distributions import FloatDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from engine.storage.optuna_batch import complete_trial, count_trials, create_running_trials


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> RDBStorage:
    url = (
        f"sqlite:///{tmp_path / 'b.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    return RDBStorage(url)


def test_claimed_trials_complete_in_one_write_and_read_back_as_optuna_wrote_them(storage: RDBStorage) -> None:
    study = create_study(storage=storage, study_name=f"batch-{id(storage)}")
    dist = FloatDistribution(0.0, 1.0)
    (a, _), (b, _) = create_running_trials(storage, study._study_id, [({"x": 0.25}, {"x": dist})] * 2)
    assert count_trials(storage, study._study_id) == {TrialState.RUNNING: 2}

    assert complete_trial(
        storage, a, 0.5, intermediate={0: 0.9, 3: 0.7}, user_attrs={"stratagem": {"k": [1]}}
    )
    trial = storage.get_trial(a)
    assert trial.state == TrialState.COMPLETE and trial.value == 0.5 and trial.datetime_complete is not None
    assert trial.intermediate_values == {0: 0.9, 3: 0.7} and trial.user_attrs == {"stratagem": {"k": [1]}}
    assert trial.params == {"x": 0.25}

    storage.set_trial_state_values(b, TrialState.FAIL)  # another worker failed it meanwhile
    assert not complete_trial(storage, b, 0.1, intermediate={1: 0.2}, user_attrs={"stratagem": {}})
    failed = storage.get_trial(b)
    assert failed.state == TrialState.FAIL and failed.values is None and failed.intermediate_values == {}
    assert not complete_trial(storage, a, 0.0, intermediate={}, user_attrs={})  # finished once only
    assert storage.get_trial(a).value == 0.5
    assert count_trials(storage, study._study_id) == {TrialState.COMPLETE: 1, TrialState.FAIL: 1}
