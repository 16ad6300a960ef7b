"""Specification of the cross-task search mode (engine.search.cross_task) and its best default (engine.results)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from engine.errors import SpecError, UnknownNameError
from engine.results import best_report, defaults
from engine.search import SearchResult, run
from engine.search.task_scale import LOSS_RANGE, TaskScale, racing_order, representative_info, task_scale
from engine.spec import SearchSpec, TaskSpec
from engine.task import Dataset
from engine.vocabulary import cross_task_study_name
from plugins.evaluators import R2, Accuracy, LogLoss, MeanSquaredError, RocAuc

SMALL_TASKS = (
    TaskSpec("synthetic", {"generator": "classification", "n_samples": 80, "n_features": 4, "seed": 1}),
    TaskSpec("synthetic", {"generator": "blobs", "n_samples": 80, "n_features": 3, "seed": 2}),
    TaskSpec("synthetic", {"generator": "classification", "n_samples": 90, "n_features": 5, "seed": 3}),
    TaskSpec("sklearn", {"dataset": "iris"}),
)
N_TASKS = len(SMALL_TASKS)
ALWAYS_RACE = {"name": "percentile", "percentile": 0.0, "n_startup_trials": 1, "n_min_trials": 1}
"""Prunes a trial after the first stage unless it is the best so far at that step."""


def cross_spec(name: str, tasks: tuple[TaskSpec, ...] = SMALL_TASKS, **kw: Any) -> SearchSpec:
    settings: dict[str, Any] = {
        "mode": "cross_task",
        "n_trials": 6,
        "strategies": ("linear",),
        "updaters": ("gradient_descent",),
        "warm_start": False,
        "sampler": {"name": "random"},
        "pruner": ALWAYS_RACE,
        "first_stage": 0.25,
    }
    settings.update(kw)
    return SearchSpec(name=name, tasks=tasks, **settings)


@pytest.fixture(scope="module")
def raced(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, SearchResult]:
    """One racing cross-task search of 6 trials over 4 small tasks, shared by several tests."""
    url = f"sqlite:///{tmp_path_factory.mktemp('crosstask') / 'study.db'}"
    return url, run(cross_spec("family"), storage=url)


def _study(url: str, search: str) -> optuna.Study:
    return optuna.load_study(study_name=cross_task_study_name(search), storage=url)


def _evaluations(study: optuna.Study) -> list[int]:
    return [t.user_attrs["stratagem"]["task_evaluations"] for t in study.get_trials()]


# ----------------------------------------------------------------------------------------- normalisation


def _toy(kind: str) -> tuple[Dataset, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.array([0] * 25 + [1] * 10 + [2] * 5) if kind == "classification" else X[:, 0] * 2.0 + 1.0
    idx = rng.permutation(40)
    return Dataset("toy", X, y, kind), np.sort(idx[:25]), np.sort(idx[25:])  # type: ignore[arg-type]


@pytest.mark.parametrize("evaluator", [Accuracy(), LogLoss(), RocAuc()], ids=lambda e: e.name)
def test_perfect_predictions_lose_0_and_the_class_priors_lose_1(evaluator: Any) -> None:
    data, train, judged = _toy("classification")
    scale = task_scale(data, evaluator, train, judged)
    priors = np.bincount(data.y[train], minlength=3) / len(train)
    y = data.y[judged]

    assert scale.loss(evaluator(y, np.eye(3)[y])) == 0.0
    assert scale.loss(evaluator(y, np.tile(priors, (len(y), 1)))) == pytest.approx(1.0)


@pytest.mark.parametrize("evaluator", [R2(), MeanSquaredError()], ids=lambda e: e.name)
def test_regression_loss_is_0_for_exact_values_and_1_for_the_training_mean(evaluator: Any) -> None:
    data, train, judged = _toy("regression")
    scale = task_scale(data, evaluator, train, judged)
    y = data.y[judged]

    assert scale.loss(evaluator(y, y)) == 0.0
    assert scale.loss(evaluator(y, np.full(len(y), data.y[train].mean()))) == pytest.approx(1.0)
    halfway = evaluator(y, (y + data.y[train].mean()) / 2)  # halves the error: 1/4 of the MSE
    assert scale.loss(halfway) == pytest.approx(0.25)


def test_a_score_and_an_error_give_the_same_loss_for_the_same_relative_improvement() -> None:
    score = TaskScale(trivial=0.5, perfect=1.0)  # accuracy-like
    error = TaskScale(trivial=4.0, perfect=0.0)  # MSE-like

    assert score.loss(0.75) == pytest.approx(0.5)
    assert error.loss(2.0) == pytest.approx(0.5)


def test_losses_are_clipped_and_non_finite_values_cost_the_most() -> None:
    scale = TaskScale(trivial=4.0, perfect=0.0)

    assert scale.loss(1000.0) == LOSS_RANGE[1]
    assert scale.loss(math.inf) == LOSS_RANGE[1]
    assert scale.loss(math.nan) == LOSS_RANGE[1]
    assert scale.loss(-1.0) == LOSS_RANGE[0]


def test_a_degenerate_scale_still_tells_perfect_from_anything_else() -> None:
    scale = TaskScale(trivial=1.0, perfect=1.0)

    assert scale.loss(1.0) == 0.0
    assert scale.loss(0.9) == 1.0


def test_the_representative_task_is_the_median_shape_of_the_majority_kind() -> None:
    clf, _, _ = _toy("classification")
    reg, _, _ = _toy("regression")

    info = representative_info([clf, clf, reg], [10, 30, 50])

    assert (info.kind, info.n_samples, info.n_features, info.n_classes) == ("classification", 30, 3, 3)


def test_the_racing_order_is_a_seeded_permutation() -> None:
    keys = [f"t{i}" for i in range(8)]

    assert racing_order(keys, 0) == racing_order(keys, 0)
    assert sorted(racing_order(keys, 0)) == keys
    assert racing_order(keys, 0) != racing_order(keys, 1)


# ------------------------------------------------------------------------------------------- the study


def test_the_study_is_stored_under_its_documented_name_and_loads_with_optuna(
    raced: tuple[str, SearchResult],
) -> None:
    url, result = raced
    study = _study(url, "family")

    assert result.trials_run == 6
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    attrs = study.user_attrs["stratagem"]
    assert attrs["kind"] == "cross_task" and attrs["search"] == "family"
    assert sorted(attrs["tasks"]) == sorted(attrs["fingerprints"]) and len(attrs["tasks"]) == N_TASKS
    assert sorted(attrs["order"]) == sorted(attrs["tasks"])
    for trial in study.get_trials():
        assert trial.params["strategy"] == "linear" and "gradient_descent.lr" in trial.params


def test_a_complete_trials_value_is_the_mean_loss_over_every_task(raced: tuple[str, SearchResult]) -> None:
    url, _ = raced
    complete = _study(url, "family").get_trials(states=(TrialState.COMPLETE,))

    assert complete
    for trial in complete:
        record = trial.user_attrs["stratagem"]
        assert len(record["tasks"]) == N_TASKS and record["task_evaluations"] == N_TASKS
        losses = [t["loss"] for t in record["tasks"].values()]
        assert all(LOSS_RANGE[0] <= x <= LOSS_RANGE[1] for x in losses)
        assert trial.value == pytest.approx(np.mean(losses))
        assert all(0.0 <= t["test_value"] <= 1.0 for t in record["tasks"].values())


def test_racing_stops_unpromising_configurations_after_the_first_stage(
    raced: tuple[str, SearchResult],
) -> None:
    url, _ = raced
    study = _study(url, "family")
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    order = study.user_attrs["stratagem"]["order"]

    assert pruned, "the always-racing pruner should have stopped some trial"
    for trial in pruned:
        record = trial.user_attrs["stratagem"]
        assert 1 <= record["task_evaluations"] < N_TASKS
        assert list(record["tasks"]) == order[: record["task_evaluations"]]  # the fixed order, a prefix
    assert sum(_evaluations(study)) < len(study.trials) * N_TASKS


def test_the_stored_default_is_the_best_complete_trial(raced: tuple[str, SearchResult]) -> None:
    url, _ = raced
    study = _study(url, "family")
    [default] = defaults(storage=url, search="family")

    assert default.study == study.study_name and default.kind == "classification"
    assert default.trial == study.best_trial.number
    assert default.loss == pytest.approx(study.best_value)
    assert default.strategy == "linear" and default.updater == "gradient_descent"
    assert default.updater_params["lr"] == study.best_trial.params["gradient_descent.lr"]
    assert set(default.per_task) == set(study.user_attrs["stratagem"]["tasks"])
    best_record = study.best_trial.user_attrs["stratagem"]["tasks"]
    for key, entry in default.per_task.items():
        assert entry["loss"] == pytest.approx(best_record[key]["loss"])
        assert entry["value"] == pytest.approx(best_record[key]["value"])
    assert default.n_trials == 6
    assert default.task_evaluations == sum(_evaluations(study))
    assert default.to_dict()["per_task"] == default.per_task


def test_defaults_of_an_unknown_search_is_an_error(raced: tuple[str, SearchResult]) -> None:
    url, _ = raced

    with pytest.raises(UnknownNameError, match="no search 'nope'"):
        defaults(storage=url, search="nope")
    assert [d.search for d in defaults(storage=url)] == ["family"]


def test_without_racing_every_trial_sees_every_task_and_resume_stops_at_n_trials(sqlite_url: str) -> None:
    tasks = SMALL_TASKS[:3]
    spec = cross_spec("plain", tasks, first_stage=1.0, n_trials=2)

    first = run(spec, storage=sqlite_url)
    more = run(spec, storage=sqlite_url, n_trials=3)
    again = run(spec, storage=sqlite_url, n_trials=3)

    assert (first.trials_run, more.trials_run, again.trials_run) == (2, 1, 0)
    study = _study(sqlite_url, "plain")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert _evaluations(study) == [3, 3, 3]
    [default] = defaults(storage=sqlite_url, search="plain")
    assert default.n_trials == 3 and default.task_evaluations == 9


def test_tasks_of_both_kinds_share_one_default_when_the_strategy_fits_both(sqlite_url: str) -> None:
    tasks = (
        TaskSpec("sklearn", {"dataset": "iris"}),
        TaskSpec("synthetic", {"generator": "regression", "n_samples": 60, "n_features": 3, "seed": 4}),
    )
    run(cross_spec("mixed", tasks, n_trials=1), storage=sqlite_url)

    [default] = defaults(storage=sqlite_url, search="mixed")
    assert default.kind == "mixed"
    evaluators = _study(sqlite_url, "mixed").user_attrs["stratagem"]["evaluators"]
    assert sorted(evaluators.values()) == ["accuracy", "r2"]
    assert all(LOSS_RANGE[0] <= t["loss"] <= LOSS_RANGE[1] for t in default.per_task.values())


PLUGIN = """
import engine
from plugins.strategies import LinearModel


class ClassifierOnly(LinearModel):
    name = "classifier_only"
    kinds = frozenset({"classification"})


class RegressorOnly(LinearModel):
    name = "regressor_only"
    kinds = frozenset({"regression"})


@engine.hookimpl
def stratagem_register_strategies(registry):
    registry.add(ClassifierOnly)
    registry.add(RegressorOnly)
"""


def test_no_strategy_fitting_every_task_is_a_spec_error(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "narrow.py").write_text(PLUGIN, encoding="utf-8")
    tasks = (
        TaskSpec("sklearn", {"dataset": "iris"}),
        TaskSpec("synthetic", {"generator": "regression", "n_samples": 60, "n_features": 3, "seed": 4}),
    )
    spec = cross_spec(
        "narrow", tasks, strategies=("classifier_only", "regressor_only"), plugins=("narrow.py",)
    )
    spec = spec.replace(base_dir=tmp_path)

    with pytest.raises(SpecError, match="fits every task"):
        run(spec, storage=sqlite_url)


def test_best_for_one_task_of_a_cross_task_search_shows_its_default(raced: tuple[str, SearchResult]) -> None:
    url, result = raced
    task = next(iter(result.defaults[0].per_task))
    report = best_report(storage=url, search="family", task=task)
    assert [d.search for d in report.defaults] == ["family"]  # before: nothing, "No finished strategies yet"
    with pytest.raises(UnknownNameError, match="search 'family' has no task 'not-a-task'"):
        best_report(storage=url, search="family", task="not-a-task")
