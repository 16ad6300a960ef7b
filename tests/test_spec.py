"""Study specs: every key is checked before any work, one clear message per problem."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.plugin.host import PluginHost
from engine.spec import EvaluationSpec, MetaSpec, SearchSpec, TaskSpec, load_spec, resolve

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost.load(entry_points=False)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


def _problems(exc: SpecError) -> dict[str | None, str]:
    return dict(exc.problems)


@pytest.mark.parametrize("name", ["quickstart.toml", "regression.toml"])
def test_shipped_specs_are_valid(name: str, host: PluginHost) -> None:
    plan = resolve(load_spec(ROOT / "studies" / name), host)
    assert plan.tasks


def test_quickstart_has_several_bundled_datasets(host: PluginHost) -> None:
    plan = resolve(load_spec(ROOT / "studies" / "quickstart.toml"), host)
    assert {t.key for t in plan.tasks} >= {"iris", "wine", "diabetes"}


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.toml")


def test_a_spec_path_that_is_no_regular_file_says_so(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.toml")
    for path in (tmp_path, tmp_path / "pipe.toml"):
        with pytest.raises(SpecError, match="not a regular file; give the path of a TOML spec file"):
            load_spec(path)


def test_invalid_toml_says_so(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(_write(tmp_path, "[search\nname="))


def test_unknown_keys_and_bad_values_are_all_reported_with_file_and_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[search]
name = "ok"
n_trial = 5
seed = -1
device = "tpu"

[evaluation]
validation = "bootstrap"
folds = 1

[sampler]
name = "grid"

[[tasks]]
source = "sklearn"
dataset = "iris"
""",
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    problems = _problems(info.value)
    assert "did you mean 'n_trials'" in problems["search.n_trial"]
    assert "from 0 to 2147483647" in problems["search.seed"]
    assert "cpu, cuda or auto" in problems["search.device"]
    assert "holdout" in problems["evaluation.validation"]
    assert "2 to 20" in problems["evaluation.folds"]
    assert "tpe" in problems["sampler.name"]
    assert all(line.startswith(str(path)) for line in str(info.value).splitlines())


def test_missing_name_and_tasks(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(_write(tmp_path, "[search]\nseed = 1\n"))
    problems = _problems(info.value)
    assert "missing" in problems["search.name"] and "[[tasks]]" in problems["tasks"]


def test_unknown_plugin_names_list_the_registered_ones(tmp_path: Path, host: PluginHost) -> None:
    spec = load_spec(
        _write(
            tmp_path,
            """
[search]
name = "x"
strategies = ["linear", "xgboost"]
updaters = ["adam"]

[evaluation]
classification = "precision"
regression = "accuracy"

[[tasks]]
source = "kaggle"
""",
        )
    )
    with pytest.raises(SpecError) as info:
        resolve(spec, host)
    problems = _problems(info.value)
    assert (
        "unknown strategy 'xgboost'" in problems["search.strategies"]
        and "mlp" in problems["search.strategies"]
    )
    assert "gradient_descent" in problems["search.updaters"]
    assert "unknown evaluator 'precision'" in problems["evaluation.classification"]
    assert "does not apply to regression" in problems["evaluation.regression"]
    assert "unknown task source 'kaggle'" in problems["tasks[0].source"]


def test_task_options_are_checked_against_the_source(tmp_path: Path, host: PluginHost) -> None:
    spec = load_spec(
        _write(
            tmp_path,
            """
[search]
name = "x"

[[tasks]]
source = "sklearn"
dataset = "mnist"

[[tasks]]
source = "csv"
path = 3
colour = "red"

[[tasks]]
source = "csv"
path = "data/missing.csv"
target = "y"
""",
        )
    )
    with pytest.raises(SpecError) as info:
        resolve(spec, host)
    problems = _problems(info.value)
    assert "iris" in problems["tasks[0].dataset"]  # lists the valid datasets
    assert "a string" in problems["tasks[1].path"]
    assert "unknown option" in problems["tasks[1].colour"]
    assert "missing" in problems["tasks[1].target"]
    assert "missing.csv" in problems["tasks[2]"] and str(tmp_path) in problems["tasks[2]"]


def test_duplicate_task_names_are_refused(host: PluginHost) -> None:
    spec = SearchSpec.from_dict(
        {"search": {"name": "x"}, "tasks": [{"source": "sklearn", "dataset": "iris"}] * 2}
    )
    with pytest.raises(SpecError, match="also used by tasks\\[0\\]"):
        resolve(spec, host)


def test_bad_sampler_options_are_reported(host: PluginHost) -> None:
    spec = SearchSpec.from_dict(
        {
            "search": {"name": "x"},
            "sampler": {"name": "tpe", "n_startup": 3},
            "tasks": [{"source": "sklearn", "dataset": "iris"}],
        }
    )
    with pytest.raises(SpecError) as info:
        resolve(spec, host)
    assert "n_startup" in _problems(info.value)["sampler"]


def test_spec_round_trips_through_its_dict(host: PluginHost) -> None:
    spec = load_spec(ROOT / "studies" / "regression.toml")
    again = SearchSpec.from_dict(spec.to_dict(), base_dir=spec.base_dir)
    assert again.to_dict() == spec.to_dict()


ROUND_TRIPS = {
    "per_task": {"search": {"name": "p"}, "tasks": [{"source": "sklearn", "dataset": "iris"}]},
    "cross_task": {
        "search": {"name": "c", "mode": "cross_task"},
        "cross_task": {"first_stage": 0.5},
        "tasks": [{"source": "sklearn", "dataset": "iris"}, {"source": "sklearn", "dataset": "wine"}],
    },
    "meta": {
        "search": {"name": "m", "mode": "meta"},
        "family": {"name": "sinusoid", "k_shot": 5},
        "meta": {"strategies": ["maml"], "iterations": 20},
        "competence": {"n_trials": 2, "parameters": {"amplitude": [0.1, 5.0]}},
    },
}


@pytest.mark.parametrize("mode", sorted(ROUND_TRIPS))
def test_the_spec_stored_with_a_search_loads_back_the_same(mode: str) -> None:
    spec = SearchSpec.from_dict(ROUND_TRIPS[mode])
    again = SearchSpec.from_stored(json.loads(json.dumps(spec.to_dict())))
    assert again.to_dict() == spec.to_dict()


def test_a_spec_stored_by_an_earlier_version_still_loads() -> None:
    old = SearchSpec.from_dict(ROUND_TRIPS["meta"]).to_dict()
    old |= {"cross_task": {"first_stage": 0.34}, "tasks": []}
    old["meta"] = {**old["meta"], "train_family": None, "options": None}
    old["competence"] = {**old["competence"], "query_size": None}
    assert SearchSpec.from_stored(old).to_dict() == SearchSpec.from_dict(ROUND_TRIPS["meta"]).to_dict()


def test_a_cross_task_table_outside_cross_task_mode_is_refused() -> None:
    with pytest.raises(SpecError, match=r'cross_task: \[cross_task\] is only for search.mode = "cross_task"'):
        SearchSpec.from_dict({**ROUND_TRIPS["per_task"], "cross_task": {"first_stage": 0.5}})


IRIS = TaskSpec("sklearn", {"dataset": "iris"})


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"strategies": "linear"}, "search.strategies", "not the string 'linear'"),
        ({"updaters": "random_search"}, "search.updaters", "write ['random_search']"),
        ({"tasks": IRIS}, "tasks", "a list of TaskSpec"),
        ({"tasks": [{"source": "sklearn"}]}, "tasks[0]", "must be a TaskSpec"),
        ({"tasks": []}, "tasks", ""),
        ({"sampler": "tpe"}, "sampler", "a mapping"),
        ({"evaluation": {"validation": "kfold"}}, "evaluation", "an EvaluationSpec"),
        ({"evaluation": EvaluationSpec(validation="bogus")}, "evaluation.validation", ""),
        ({"evaluation": EvaluationSpec(folds=1)}, "evaluation.folds", ""),
        ({"evaluation": EvaluationSpec(recheck=-3)}, "evaluation.recheck", ""),
    ],
)
def test_a_spec_built_in_code_is_checked_as_a_toml_file_is(
    changes: dict[str, object], key: str, words: str, host: PluginHost
) -> None:
    spec = SearchSpec(name="code", tasks=(IRIS,), n_trials=1).replace(**changes)
    with pytest.raises(SpecError) as caught:
        resolve(spec, host)
    problems = _problems(caught.value)
    assert key in problems and words in problems[key], problems


@pytest.mark.parametrize(
    ("meta", "key"),
    [
        ({"iterations": 0}, "meta.iterations"),
        ({"checkpoints": 0}, "meta.checkpoints"),
        ({"steps": ()}, "meta.steps"),
        ({"meta_batch": (0,)}, "meta.meta_batch"),
        ({"test_tasks": 0}, "meta.test_tasks"),
        ({"strategies": "maml"}, "meta.strategies"),
    ],
)
def test_a_meta_spec_built_in_code_is_checked_before_any_work(
    meta: dict[str, object], key: str, host: PluginHost
) -> None:
    spec = SearchSpec(name="m", tasks=(), mode="meta", family={"name": "sinusoid"}, meta=MetaSpec(**meta))  # type: ignore[arg-type]
    with pytest.raises(SpecError) as caught:
        resolve(spec, host)
    assert key in _problems(caught.value), caught.value.problems


def test_the_same_data_under_two_names_is_refused(tmp_path: Path) -> None:
    rows = "a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(12))
    for name in ("one.csv", "two.csv"):
        (tmp_path / name).write_text(rows)
    tasks = "".join(
        f'[[tasks]]\nsource = "csv"\npath = "{n}"\ntarget = "y"\n' for n in ("one.csv", "two.csv")
    )
    (tmp_path / "s.toml").write_text(f'[search]\nname = "dup"\nn_trials = 1\n\n{tasks}')
    with pytest.raises(SpecError, match=r"tasks\[1\]: holds the same data as tasks\[0\] \('one'\)"):
        resolve(load_spec(tmp_path / "s.toml"), PluginHost.load())


def test_numpy_scalars_given_in_code_are_the_python_numbers_they_hold(sqlite_url: str) -> None:
    import numpy as np

    import engine

    spec = SearchSpec.from_dict(
        {
            "search": {"name": "m", "mode": "meta", "n_trials": np.int64(2), "seed": np.int32(3)},
            "family": {"name": "sinusoid", "k_shot": np.int64(5)},
            "meta": {"strategies": ["maml"], "iterations": np.int64(20), "steps": [np.int64(0), 1]},
            "competence": {"n_trials": 2, "parameters": {"amplitude": [np.float32(0.5), np.float64(4.0)]}},
        }
    )  # before: "search.n_trials: must be a positive integer; got np.int64(2)"
    stored = spec.to_dict()
    assert json.loads(json.dumps(stored)) == stored
    assert stored["search"]["n_trials"] == 2 and type(spec.n_trials) is int and type(spec.seed) is int
    assert type(spec.family["k_shot"]) is int and spec.meta.steps == (0, 1)  # type: ignore[index]
    assert spec.competence is not None
    assert [type(v) for v in spec.competence.parameters["amplitude"]] == [float, float]
    in_code = SearchSpec(
        name="np",
        tasks=(TaskSpec("synthetic", {"generator": "classification", "n_samples": np.int64(120)}),),
        n_trials=np.int64(2),  # type: ignore[arg-type]
        timeout=np.float32(60.0),  # type: ignore[arg-type]
        warm_start=np.bool_(False),  # type: ignore[arg-type]
        strategies=("linear",),
        updaters=("gradient_descent",),
    )
    assert (type(in_code.n_trials), type(in_code.timeout), in_code.warm_start) == (int, float, False)
    result = engine.run(in_code, storage=sqlite_url, seed=np.int64(1))  # before: SpecError for both
    assert result.trials_run == 2
    (search,) = engine.searches(storage=sqlite_url)
    assert search.status == "finished"
    with pytest.raises(SpecError, match=r"search.n_trials: must be a positive integer; got 0"):
        SearchSpec.from_dict({"search": {"name": "z", "n_trials": np.int64(0)}, "tasks": [{"source": "x"}]})
