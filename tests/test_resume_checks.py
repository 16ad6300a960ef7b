"""A run refuses, before writing anything, what it cannot continue: an Optuna study it did not make,
another mode, another validation, other meta-batch choices. What is stored stays as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

import engine
from engine.errors import SpecError
from engine.results import failures
from engine.search import run
from engine.spec import EvaluationSpec, SearchSpec
from engine.storage import Database, SearchRow
from engine.vocabulary import FAILURE_ATTR, SKIPPED_REASON
from tests.conftest import tiny_spec


def _searches(url: str) -> list[str]:
    with Database(url).session() as s:
        return [row.name for row in s.query(SearchRow)]


@pytest.mark.parametrize("study_name", ["plain", "plain/iris"])
def test_an_optuna_study_made_outside_stratagem_is_never_taken_over(sqlite_url: str, study_name: str) -> None:
    mine = optuna.create_study(study_name=study_name, storage=sqlite_url)
    mine.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with pytest.raises(SpecError, match=r"search\.name.*made outside Stratagem.*another name") as caught:
        run(tiny_spec("plain"), storage=sqlite_url)
    assert caught.value.key == "search.name"
    assert _searches(sqlite_url) == []  # refused before anything was written
    again = optuna.load_study(study_name=study_name, storage=sqlite_url)
    assert [t.params for t in again.trials] == [t.params for t in mine.trials]
    assert [s.study_name for s in optuna.get_all_study_summaries(sqlite_url)] == [study_name]


def test_an_empty_study_left_by_a_killed_run_is_taken_over(sqlite_url: str) -> None:
    optuna.create_study(study_name="left/iris", storage=sqlite_url)  # killed before describing it
    result = run(tiny_spec("left", n_trials=2), storage=sqlite_url)
    assert result.trials_run == 2


def test_another_mode_under_the_same_name_is_refused(sqlite_url: str) -> None:
    run(tiny_spec("modes", n_trials=1), storage=sqlite_url)
    with pytest.raises(SpecError, match=r"search\.mode.*mode = 'per_task'.*mode = 'cross_task'"):
        run(tiny_spec("modes", n_trials=2, mode="cross_task"), storage=sqlite_url)
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(sqlite_url))
    assert names == ["modes", "modes/iris"]


@pytest.mark.parametrize(
    "evaluation",
    [EvaluationSpec(validation="kfold", folds=3), EvaluationSpec(validation="holdout", folds=3)],
)
def test_another_validation_is_refused_and_the_same_one_resumes(sqlite_url: str, evaluation: Any) -> None:
    run(tiny_spec("val", n_trials=1, evaluation=EvaluationSpec(validation="kfold")), storage=sqlite_url)
    if evaluation.validation == "holdout":
        with pytest.raises(SpecError, match=r"evaluation\.validation.*'kfold'.*would be mixed"):
            run(tiny_spec("val", n_trials=2, evaluation=evaluation), storage=sqlite_url)
    with pytest.raises(SpecError, match=r"'folds': 5.*'folds': 3"):
        run(
            tiny_spec("val", n_trials=2, evaluation=EvaluationSpec(validation="kfold", folds=3)),
            storage=sqlite_url,
        )
    assert len(optuna.load_study(study_name="val/iris", storage=sqlite_url).trials) == 1
    resumed = run(
        tiny_spec("val", n_trials=2, evaluation=EvaluationSpec(validation="kfold")), storage=sqlite_url
    )
    assert resumed.trials_run == 1


def test_other_meta_batch_choices_are_refused(sqlite_url: str) -> None:
    spec = {
        "search": {"name": "mb", "mode": "meta", "n_trials": 1, "seed": 0},
        "family": {"name": "sinusoid", "k_shot": 5, "k_query": 5},
        "meta": {
            "strategies": ["scratch"],
            "iterations": 4,
            "checkpoints": 1,
            "meta_batch": [2],
            "val_tasks": 4,
            "test_tasks": 8,
            "steps": [0, 1],
        },
    }
    engine.run(SearchSpec.from_dict(spec), storage=sqlite_url)
    changed = {**spec, "meta": {**spec["meta"], "meta_batch": [3, 4]}}
    with pytest.raises(SpecError, match=r"meta\.meta_batch.*explored meta_batch \[2\]"):
        engine.run(
            SearchSpec.from_dict({**changed, "search": {**spec["search"], "n_trials": 2}}), storage=sqlite_url
        )
    assert len(optuna.load_study(study_name="mb/meta", storage=sqlite_url).trials) == 1


def test_an_enqueued_trial_left_when_the_budget_was_met_is_failed_and_not_listed(sqlite_url: str) -> None:
    run(tiny_spec("late", n_trials=2), storage=sqlite_url)
    study = optuna.load_study(study_name="late/iris", storage=sqlite_url)
    study.enqueue_trial(dict(study.trials[0].params))  # a warm start's late suggestion, never run
    assert run(tiny_spec("late", n_trials=2), storage=sqlite_url).trials_run == 0
    (left,) = optuna.load_study(study_name="late/iris", storage=sqlite_url).trials[2:]
    assert left.state == optuna.trial.TrialState.FAIL and left.user_attrs[FAILURE_ATTR] == SKIPPED_REASON
    assert failures(storage=sqlite_url) == []


def test_a_resumed_search_does_not_repeat_its_earlier_trials(sqlite_url: str) -> None:
    spec = tiny_spec("again", n_trials=3, sampler={"name": "random"})
    run(spec, storage=sqlite_url)
    run(spec.replace(n_trials=6), storage=sqlite_url)  # a new process would seed its sampler alike
    trials = optuna.load_study(study_name="again/iris", storage=sqlite_url).trials
    configs = [tuple(sorted(t.params.items())) for t in trials]
    assert len(configs) == 6 and len(set(configs)) == 6, configs


def test_a_fresh_search_is_reproducible(tmp_path: Any) -> None:
    runs = []
    for name in ("one", "two"):
        url = f"sqlite:///{tmp_path / name}.db"
        run(tiny_spec("same", n_trials=4), storage=url)
        runs.append([t.params for t in optuna.load_study(study_name="same/iris", storage=url).trials])
    assert runs[0] == runs[1]


def test_a_csv_family_whose_file_changed_is_not_resumed(sqlite_url: str, tmp_path: Path) -> None:
    rows = ["store,x1,y"] + [f"s{t},{r / 10},{t + r / 10}" for t in range(6) for r in range(12)]
    data = tmp_path / "fam.csv"
    data.write_text("\n".join(rows) + "\n")
    spec = {
        "search": {"name": "fam", "mode": "meta", "n_trials": 1, "seed": 0},
        "family": {"name": "csv", "path": str(data), "task_column": "store", "target": "y", "k_shot": 3},
        "meta": {"strategies": ["scratch"], "iterations": 4, "checkpoints": 1, "meta_batch": [2]}
        | {"val_tasks": 4, "test_tasks": 4, "steps": [0, 1]},
    }
    engine.run(SearchSpec.from_dict(spec), storage=sqlite_url)
    more = {**spec, "search": {**spec["search"], "n_trials": 2}}
    data.write_text("\n".join([rows[0], *(r + "0" for r in rows[1:])]) + "\n")  # other values, same shape
    with pytest.raises(SpecError, match=r"family\.path: the data of family 'csv' changed since search 'fam'"):
        engine.run(SearchSpec.from_dict(more), storage=sqlite_url)
    assert len(optuna.load_study(study_name="fam/meta", storage=sqlite_url).trials) == 1
    data.write_text("\n".join(rows) + "\n")  # restored: it resumes (a resumed sampler is reseeded, so
    engine.run(SearchSpec.from_dict(more), storage=sqlite_url)  # its trials may fail and be run again)
    finished = optuna.load_study(study_name="fam/meta", storage=sqlite_url).get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    )
    assert len(finished) == 2


def test_a_csv_family_path_is_relative_to_its_spec_and_a_moved_file_resumes(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = ["store,x1,y"] + [f"s{t},{r / 10},{t + r / 10}" for t in range(6) for r in range(12)]
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "fam.csv").write_text("\n".join(rows) + "\n")
    spec_file = tmp_path / "specs" / "meta.toml"
    spec_file.write_text(
        '[search]\nname = "fam"\nmode = "meta"\nn_trials = 1\nseed = 0\n'
        '[family]\nname = "csv"\npath = "fam.csv"\ntask_column = "store"\ntarget = "y"\nk_shot = 3\n'
        '[meta]\nstrategies = ["scratch"]\niterations = 4\ncheckpoints = 1\nmeta_batch = [2]\n'
        "val_tasks = 4\ntest_tasks = 4\nsteps = [0, 1]\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "fam.csv").write_text("store,x1,y\n" + "a,1,2\n" * 3)  # a decoy where the run starts
    monkeypatch.chdir(elsewhere)
    engine.run(engine.load_spec(spec_file), storage=sqlite_url)  # reads specs/fam.csv, not the decoy
    # the file moves with its spec: the same data resumes, wherever it lies
    moved = tmp_path / "moved"
    (tmp_path / "specs").rename(moved)
    text = (moved / "meta.toml").read_text().replace("n_trials = 1", "n_trials = 2")
    (moved / "meta.toml").write_text(text)
    engine.run(engine.load_spec(moved / "meta.toml"), storage=sqlite_url)
    finished = optuna.load_study(study_name="fam/meta", storage=sqlite_url).get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    )
    assert len(finished) == 2


def test_a_rerun_asking_for_fewer_trials_than_done_says_so_and_changes_nothing(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from click.testing import CliRunner

    from engine.cli import cli
    from engine.storage import reads

    def stored() -> tuple[int, str]:
        with Database(sqlite_url).session() as s:
            spec = reads.stored_spec(s, "fewer")
            status = s.query(SearchRow).filter_by(name="fewer").one().status
        assert spec is not None
        return spec["search"]["n_trials"], status

    run(tiny_spec("fewer", n_trials=3), storage=sqlite_url)
    again = run(tiny_spec("fewer", n_trials=2), storage=sqlite_url)
    assert again.trials_run == 0 and [b.n_trials for b in again.best] == [3]
    assert stored() == (3, "finished")  # before: the stored spec said n_trials = 2
    assert "search 'fewer' already has 3 finished trials in each of its studies; this run asks for " in (
        caplog.text
    )
    toml = tmp_path / "fewer.toml"
    toml.write_text(
        '[search]\nname = "fewer"\nn_trials = 3\nstrategies = ["linear"]\nupdaters = ["gradient_descent"]\n'
        'warm_start = false\n[[tasks]]\nsource = "sklearn"\ndataset = "iris"\n'
    )
    args = ["run", "--storage", sqlite_url, "--no-progress", "--n-trials", "1", str(toml)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "0 trials in" in result.output
    assert "asks for n_trials = 1, so nothing ran and the search is stored as it was" in caplog.text
    assert stored() == (3, "finished")
    more = run(tiny_spec("fewer", n_trials=4), storage=sqlite_url)  # more than it has: it goes on
    assert more.trials_run == 1 and stored() == (4, "finished")
