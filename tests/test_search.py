"""The engine's product loop through the Python API: run, store, resume, read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from sqlalchemy import create_engine, func, select, text

import engine
from engine.errors import SearchFailed, SpecError, UnknownNameError
from engine.results import best, searches, tasks
from engine.search import run
from engine.storage import BestRow, Database, SearchRow, TaskRow
from engine.storage.models import SearchTaskRow


def _count(url: str, model: Any) -> int:
    eng = create_engine(url)
    with eng.connect() as conn:
        n = conn.execute(select(func.count()).select_from(model)).scalar_one()
    eng.dispose()
    return int(n)


def test_run_stores_studies_readable_by_optuna(sqlite_url: str, make_spec: Any) -> None:
    result = run(make_spec("demo", ("iris", "diabetes")), storage=sqlite_url)

    assert result.trials_run == 6
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(sqlite_url)}
    assert set(summaries) == {"demo", "demo/iris", "demo/diabetes"}
    study = optuna.load_study(study_name="demo/iris", storage=sqlite_url)
    assert study.user_attrs["stratagem"]["kind"] == "strategy_exploration"
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    trial = study.best_trial
    assert trial.params["strategy"] == "linear"
    assert trial.params["updater"] == "gradient_descent"
    assert "gradient_descent.lr" in trial.params
    record = trial.user_attrs["stratagem"]
    assert record["evaluator"] == "accuracy" and 0.0 <= record["test_value"] <= 1.0
    tasks_study = optuna.load_study(study_name="demo", storage=sqlite_url)
    visits = tasks_study.get_trials()
    assert sorted(t.params["task"] for t in visits) == ["diabetes", "iris"]
    # competence of a visit is the best strategy value reached on the task
    iris_visit = next(t for t in visits if t.params["task"] == "iris")
    assert iris_visit.value == pytest.approx(study.best_value)


def test_best_matches_the_studies_best_trial(sqlite_url: str, make_spec: Any) -> None:
    run(make_spec("demo", ("iris", "diabetes")), storage=sqlite_url)

    rows = {b.task: b for b in best(storage=sqlite_url, search="demo")}
    for key in ("iris", "diabetes"):
        study = optuna.load_study(study_name=f"demo/{key}", storage=sqlite_url)
        b = rows[key]
        assert b.trial == study.best_trial.number
        assert b.value == pytest.approx(study.best_value)
        assert b.test_value == pytest.approx(study.best_trial.user_attrs["stratagem"]["test_value"])
        assert b.strategy_params == {
            k.split(".", 1)[1]: v for k, v in study.best_trial.params.items() if k.startswith("linear.")
        }
        assert b.n_trials == 3
    assert rows["diabetes"].evaluator == "r2"
    # the stored configuration rebuilds the strategy, scikit-learn style
    from plugins.strategies import LinearModel

    assert LinearModel(**rows["iris"].strategy_params).get_params() == rows["iris"].strategy_params


def test_rerun_resumes_up_to_n_trials_and_reuses_tasks(sqlite_url: str, make_spec: Any) -> None:
    run(make_spec("demo", ("iris",), n_trials=2), storage=sqlite_url)
    again = run(make_spec("demo", ("iris",), n_trials=2), storage=sqlite_url)
    assert again.trials_run == 0
    more = run(make_spec("demo", ("iris",), n_trials=4), storage=sqlite_url)
    assert more.trials_run == 2
    assert len(optuna.load_study(study_name="demo/iris", storage=sqlite_url).trials) == 4
    # a second search on the same data reuses the stored task (same fingerprint)
    run(make_spec("other", ("iris",), n_trials=1), storage=sqlite_url)
    assert _count(sqlite_url, TaskRow) == 1
    stored = tasks(storage=sqlite_url)
    assert stored[0].searches == ["demo", "other"]
    assert stored[0].meta_features["n_classes"] == 3
    assert {s.name for s in searches(storage=sqlite_url)} == {"demo", "other"}


def test_the_split_is_stored_once_and_shared(sqlite_url: str, make_spec: Any) -> None:
    run(make_spec("a", ("wine",), n_trials=1), storage=sqlite_url)
    eng = create_engine(sqlite_url)
    with eng.connect() as conn:
        split = conn.execute(select(TaskRow.split)).scalar_one()
    eng.dispose()
    parts = [set(split[k]) for k in ("train", "validation", "test")]
    assert sum(len(p) for p in parts) == 178 and not (parts[0] & parts[2]) and not (parts[1] & parts[2])


def test_seeded_runs_are_reproducible(tmp_path: Path, make_spec: Any) -> None:
    values = []
    for i in range(2):
        url = f"sqlite:///{tmp_path / f'r{i}.db'}"
        run(make_spec("demo", ("iris",), n_trials=3, seed=7), storage=url)
        study = optuna.load_study(study_name="demo/iris", storage=url)
        values.append([(t.params, t.value) for t in study.trials])
    assert values[0] == values[1]


def test_kfold_validation_reports_the_fold_mean(sqlite_url: str, make_spec: Any) -> None:
    from engine.spec import EvaluationSpec

    spec = make_spec(
        "cv",
        ("diabetes",),
        n_trials=2,
        evaluation=EvaluationSpec(regression="mse", validation="kfold", folds=3),
    )
    run(spec, storage=sqlite_url)
    study = optuna.load_study(study_name="cv/diabetes", storage=sqlite_url)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    for t in study.trials:
        assert t.user_attrs["stratagem"]["validation"] == "kfold"
        assert sorted(t.intermediate_values) == [1, 2, 3]
        assert t.value == pytest.approx(t.intermediate_values[3])


def test_mixed_evaluator_on_resume_is_refused(sqlite_url: str, make_spec: Any) -> None:
    from engine.spec import EvaluationSpec

    run(make_spec("demo", ("iris",), n_trials=1), storage=sqlite_url)
    with pytest.raises(SpecError, match="evaluator 'accuracy'"):
        run(
            make_spec("demo", ("iris",), n_trials=2, evaluation=EvaluationSpec(classification="f1_macro")),
            storage=sqlite_url,
        )


INTERRUPTING_PLUGIN = '''
from pathlib import Path

import engine
from plugins.updaters import GradientDescent

MARKER = Path(__file__).with_name("interrupt-at")


class Interrupting(GradientDescent):
    """Gradient descent that acts like Ctrl-C on the trial number written in the marker file."""

    name = "interrupting"
    calls = 0

    def fit(self, model, problem, report):
        Interrupting.calls += 1
        if MARKER.exists() and Interrupting.calls == int(MARKER.read_text()):
            raise KeyboardInterrupt
        return super().fit(model, problem, report)

@engine.hookimpl
def stratagem_register_updaters(registry):
    registry.add(Interrupting)
'''


def test_ctrl_c_keeps_finished_trials_and_the_database_consistent(
    tmp_path: Path, sqlite_url: str, make_spec: Any
) -> None:
    plugin = tmp_path / "interrupting.py"
    plugin.write_text(INTERRUPTING_PLUGIN)
    (tmp_path / "interrupt-at").write_text("3")
    spec = make_spec("demo", ("iris",), n_trials=5, updaters=("interrupting",), plugins=(str(plugin),))
    with pytest.raises(KeyboardInterrupt):
        run(spec, storage=sqlite_url)

    study = optuna.load_study(study_name="demo/iris", storage=sqlite_url)
    states = [t.state for t in study.trials]
    assert states[:2] == [optuna.trial.TrialState.COMPLETE] * 2
    assert states[2] == optuna.trial.TrialState.FAIL
    assert [s.status for s in searches(storage=sqlite_url)] == ["interrupted"]
    assert best(storage=sqlite_url)[0].trial in (0, 1)
    assert best(storage=sqlite_url)[0].n_trials == 2  # counted when interrupted too

    (tmp_path / "interrupt-at").unlink()
    result = run(spec, storage=sqlite_url)
    assert result.trials_run == 3  # the failed trial does not count towards the budget
    assert [s.status for s in searches(storage=sqlite_url)] == ["finished"]
    with Database(sqlite_url).session() as s:  # a count left stale by a kill at the wrong moment
        s.query(BestRow).one().n_trials = 1
    assert run(spec, storage=sqlite_url).trials_run == 0
    assert best(storage=sqlite_url)[0].n_trials == 5  # a run with no work to do mends it


def test_bad_spec_writes_nothing_and_keeps_what_is_stored(
    tmp_path: Path, sqlite_url: str, make_spec: Any
) -> None:
    run(make_spec("demo", ("iris",), n_trials=1), storage=sqlite_url)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[search]\nname = "bad"\n\n[[tasks]]\nsource = "csv"\npath = "missing.csv"\ntarget = "y"\n'
    )
    with pytest.raises(SpecError) as info:
        run(bad, storage=sqlite_url)
    assert "bad.toml: tasks[0]" in str(info.value) and "missing.csv" in str(info.value)
    assert [s.name for s in searches(storage=sqlite_url)] == ["demo"]
    assert len(best(storage=sqlite_url)) == 1


def test_changed_task_list_under_the_same_search_name_is_refused(sqlite_url: str, make_spec: Any) -> None:
    run(make_spec("demo", ("iris",), n_trials=1), storage=sqlite_url)
    with pytest.raises(SpecError, match="rename the search"):
        run(make_spec("demo", ("iris", "wine"), n_trials=1), storage=sqlite_url)


def test_changed_strategy_choices_on_resume_are_refused_before_any_write(
    sqlite_url: str, make_spec: Any
) -> None:
    run(make_spec("demo", ("iris",), n_trials=1), storage=sqlite_url)
    with pytest.raises(SpecError, match=r"search\.updaters.*keep the list, or rename"):
        run(make_spec("demo", ("iris",), n_trials=2, updaters=("random_search",)), storage=sqlite_url)
    assert len(optuna.load_study(study_name="demo/iris", storage=sqlite_url).trials) == 1


def test_queries_on_an_empty_or_unknown_storage(tmp_path: Path, sqlite_url: str) -> None:
    assert best(storage=sqlite_url) == [] and tasks(storage=sqlite_url) == []
    with pytest.raises(UnknownNameError, match="no search 'nope'"):
        best(storage=sqlite_url, search="nope")


def test_public_api_runs_a_spec_file(tmp_path: Path, sqlite_url: str) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(
        '[search]\nname = "file"\nn_trials = 2\nstrategies = ["linear"]\nupdaters = ["gradient_descent"]\n'
        '[[tasks]]\nsource = "sklearn"\ndataset = "iris"\nname = "flowers"\n'
    )
    result = engine.run(spec, storage=sqlite_url)
    assert [b.task for b in result.best] == ["flowers"]
    assert engine.best(storage=sqlite_url, task="flowers")[0].search == "file"
    assert json.loads(json.dumps(result.best[0].to_dict()))["strategy"] == "linear"


def test_engine_tables_live_beside_optunas(sqlite_url: str, make_spec: Any) -> None:
    run(make_spec("demo", ("iris",), n_trials=1), storage=sqlite_url)
    eng = create_engine(sqlite_url)
    with eng.connect() as conn:
        names = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    eng.dispose()
    assert {"studies", "trials", "stratagem_tasks", "stratagem_searches", "stratagem_best"} <= names
    assert _count(sqlite_url, SearchRow) == 1 and _count(sqlite_url, SearchTaskRow) == 1
    assert _count(sqlite_url, BestRow) == 1


def test_a_timeout_that_runs_out_before_any_trial_says_so(sqlite_url: str, make_spec: Any) -> None:
    with pytest.raises(SearchFailed, match=r"demo/iris: no trial finished before search\.timeout"):
        run(make_spec("demo", ("iris",), n_trials=2, timeout=1e-9), storage=sqlite_url)


def test_best_for_a_task_the_search_does_not_have_names_its_tasks(sqlite_url: str, make_spec: Any) -> None:
    run(make_spec("demo", ("iris",), n_trials=1), storage=sqlite_url)
    with pytest.raises(UnknownNameError, match="search 'demo' has no task 'nope'; its tasks: iris"):
        best(storage=sqlite_url, search="demo", task="nope")
    assert [b.task for b in best(storage=sqlite_url, search="demo", task="iris")] == ["iris"]
