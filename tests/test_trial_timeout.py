"""``search.trial_timeout``: a hanging trial is stopped, failed with the reason, and the search moves on."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from engine.errors import SearchFailed, SpecError
from engine.search import run
from engine.search.deadline import trial_deadline
from engine.spec import SearchSpec
from engine.vocabulary import FAILURE_ATTR

# "hanging" sleeps forever in build() on even trial numbers and is the linear model on odd ones.
PLUGIN = """
import time
import engine
from plugins.strategies import LinearModel

class Hanging(LinearModel):
    name = "hanging"

    def __init__(self, hang=False, **params):
        super().__init__(**params)
        self.hang = hang

    @classmethod
    def suggest(cls, trial, info):
        params = super().suggest(trial, info)
        params["hang"] = trial.number % 2 == 0
        return params

    def build(self, info):
        if self.hang:
            while True:
                time.sleep(0.05)
        return super().build(info)

@engine.hookimpl
def stratagem_register_strategies(registry):
    registry.add(Hanging)
"""


def _spec(tmp_path: Path, make_spec: Any) -> SearchSpec:
    plugin = tmp_path / "hanging_plugin.py"
    plugin.write_text(PLUGIN)
    spec: SearchSpec = make_spec("hang", ("iris",), n_trials=2, strategies=("hanging",), trial_timeout=4.0)
    return spec.replace(plugins=(str(plugin),))


def _check(url: str) -> None:
    trials = optuna.load_study(study_name="hang/iris", storage=url).get_trials(deepcopy=False)
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 2 and states.count(TrialState.FAIL) == 2
    for t in trials:
        if t.state == TrialState.FAIL:
            assert "trial_timeout = 4 s" in t.user_attrs[FAILURE_ATTR]


def test_a_hanging_trial_is_failed_and_the_search_goes_on(
    tmp_path: Path, sqlite_url: str, make_spec: Any
) -> None:
    result = run(_spec(tmp_path, make_spec), storage=sqlite_url)
    assert result.best[0].n_trials == 2
    _check(sqlite_url)


def test_the_limit_also_holds_when_the_search_runs_in_a_thread(
    tmp_path: Path, sqlite_url: str, make_spec: Any
) -> None:
    spec = _spec(tmp_path, make_spec)
    errors: list[BaseException] = []

    def search() -> None:
        try:
            run(spec, storage=sqlite_url)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    worker = threading.Thread(target=search)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive() and errors == []
    _check(sqlite_url)


def test_every_trial_hanging_fails_the_search_and_says_why(
    tmp_path: Path, sqlite_url: str, make_spec: Any
) -> None:
    with pytest.raises(SearchFailed, match="trial_timeout"):  # one trial wanted, the first one hangs
        run(_spec(tmp_path, make_spec), storage=sqlite_url, n_trials=1)


@pytest.mark.parametrize("seconds", [math.inf, 1e308, float(2**63 - 1)])
def test_a_trial_timeout_beyond_any_timer_is_no_limit(
    seconds: float, sqlite_url: str, make_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: every trial failed with "OverflowError: timestamp out of range for platform time_t" (the
    # main thread's timer), or the timer's thread died with it (any other thread)
    crashed: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashed.append(args.exc_value))

    def in_a_thread() -> None:
        with trial_deadline(seconds):
            time.sleep(0.2)

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join(timeout=10)
    assert not crashed
    spec = make_spec("no_limit", ("iris",), n_trials=1, strategies=("linear",), trial_timeout=seconds)
    run(spec, storage=sqlite_url)
    trials = optuna.load_study(study_name="no_limit/iris", storage=sqlite_url).get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE]


def test_a_bad_trial_timeout_names_the_key() -> None:
    with pytest.raises(SpecError, match=r"search\.trial_timeout"):
        SearchSpec.from_dict({"search": {"name": "x", "trial_timeout": 0}, "tasks": [{"source": "sklearn"}]})


# "swallowing" catches everything while it sleeps, the engine's stop included, on even trial numbers.
SWALLOWING = PLUGIN.replace('name = "hanging"', 'name = "swallowing"').replace(
    """            while True:
                time.sleep(0.05)""",
    """            end = time.monotonic() + 6
            while time.monotonic() < end:
                try:
                    time.sleep(0.05)
                except BaseException:
                    pass""",
)


def test_a_trial_whose_code_catches_the_stop_still_fails_as_timed_out(
    tmp_path: Path, sqlite_url: str, make_spec: Any
) -> None:
    plugin = tmp_path / "swallowing_plugin.py"
    plugin.write_text(SWALLOWING)
    spec = make_spec("swallow", ("iris",), n_trials=2, strategies=("swallowing",), trial_timeout=2.0)
    run(spec.replace(plugins=(str(plugin),)), storage=sqlite_url)
    trials = optuna.load_study(study_name="swallow/iris", storage=sqlite_url).get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed and all("its code caught the stop and ran on" in t.user_attrs[FAILURE_ATTR] for t in failed)
    assert [t.state for t in trials].count(
        TrialState.COMPLETE
    ) == 2  # before: the swallowing trials completed
