"""The Python API refuses what it cannot mean, naming it, instead of answering something else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_wine

import engine
from engine.errors import SpecError, TaskDataError, UnknownNameError
from engine.spec import SearchSpec, TaskSpec
from engine.storage import Database, reads
from engine.study import training
from engine.trained import ModelError

IRIS = TaskSpec("sklearn", {"dataset": "iris"})


def _spec(name: str, *tasks: TaskSpec) -> SearchSpec:
    return SearchSpec(
        name=name,
        tasks=tasks,
        n_trials=1,
        strategies=("linear",),
        updaters=("gradient_descent",),
        warm_start=False,
    )


def test_class_labels_that_are_not_whole_numbers_are_refused_not_truncated() -> None:
    wine = load_wine()
    with pytest.raises(TaskDataError, match=r"class codes must be whole numbers, got 0.5; encode the labels"):
        engine.Dataset("half", wine.data, wine.target * 0.5, "classification")
    with pytest.raises(TaskDataError, match="class codes must be integers, got object labels"):
        engine.Dataset("text", wine.data, np.array(["a", "b"] * 89, dtype=object), "classification")
    assert (
        engine.Dataset("floats", wine.data, wine.target.astype(float), "classification").y.dtype == np.int64
    )


def test_features_in_tiny_units_are_standardised_and_constant_ones_are_not_divided() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    X = np.column_stack([x * 1e-13, np.full(60, 0.1)])  # a quantity in tiny units; a constant
    data = engine.Dataset("tiny", X, 3 * x[:, 0] + x[:, 1], "regression")
    prepared = training.prepare(data, np.arange(60))
    scaled = prepared.X_train.numpy()

    assert scaled[:, :2].std(axis=0) == pytest.approx([1.0, 1.0], rel=1e-5)
    assert prepared.std[2] == 1.0 and np.abs(scaled[:, 2]).max() < 1e-12


def test_a_task_name_wins_over_a_fingerprint_prefix_and_short_prefixes_match_nothing(sqlite_url: str) -> None:
    engine.run(_spec("one", IRIS), storage=sqlite_url)
    (iris,) = engine.best(search="one", storage=sqlite_url)
    prefix = iris.fingerprint[:1]
    wine = TaskSpec("sklearn", {"dataset": "wine"}, name=prefix)  # named like iris's fingerprint starts
    engine.run(_spec("two", IRIS, wine), storage=sqlite_url)
    assert [b.task for b in engine.best(search="two", task=prefix, storage=sqlite_url)] == [prefix]
    assert [b.task for b in engine.best(search="two", task=iris.fingerprint[:8], storage=sqlite_url)] == [
        "iris"
    ]
    with pytest.raises(UnknownNameError, match="has no task ''"):
        engine.best(search="two", task="", storage=sqlite_url)
    with pytest.raises(UnknownNameError, match="no stored task 'nope'; stored tasks: "):
        engine.best(task="nope", storage=sqlite_url)


def test_predict_refuses_rows_it_would_misread(sqlite_url: str, tmp_path: Path) -> None:
    engine.run(_spec("p", IRIS), storage=sqlite_url)
    model = engine.load_model(engine.export(search="p", out=tmp_path / "m", storage=sqlite_url))
    row = [5.1, 3.5, 1.4, 0.2]
    assert len(model.predict([row])) == 1
    for bad, words in (
        (["5134"], "row 1 is '5134', not a row"),
        (row, "row 1 is 5.1, not a row"),
        ([row, dict(zip(model.columns, row, strict=True))], "row 2 is {"),
        (dict(zip(model.columns, row, strict=True)), "got one dict; wrap a single row in a list"),
    ):
        with pytest.raises(TaskDataError, match=words.replace("{", r"\{")):
            model.predict(bad)


@pytest.mark.parametrize("reserved", ["cross_task", "meta", "competence"])
def test_task_names_of_the_searchs_own_studies_are_reserved(reserved: str, sqlite_url: str) -> None:
    with pytest.raises(SpecError) as caught:
        engine.run(_spec("r", TaskSpec("sklearn", {"dataset": "iris"}, name=reserved)), storage=sqlite_url)
    assert "is reserved" in dict(caught.value.problems)["tasks[0].name"]
    assert engine.searches(storage=sqlite_url) == []


def test_a_spec_without_a_name_or_with_one_plugin_string_is_refused_before_any_work(sqlite_url: str) -> None:
    with pytest.raises(SpecError, match="search.name: missing"):
        engine.run(SearchSpec(name=None, tasks=(IRIS,), n_trials=1), storage=sqlite_url)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="search.plugins: must be a list"):
        engine.run(_spec("s", IRIS), plugins="my_plugins", storage=sqlite_url)  # type: ignore[arg-type]
    assert engine.searches(storage=sqlite_url) == []


def test_recommend_refuses_one_string_where_names_are_expected(sqlite_url: str) -> None:
    wine = load_wine()
    dataset = engine.Dataset("wine", wine.data, wine.target, "classification")
    with pytest.raises(ValueError, match=r"strategies must be a list of names, not the string 'resmlp'"):
        engine.recommend(dataset, storage=sqlite_url, strategies="resmlp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top must be an integer of at least 1, got 2.5"):
        engine.recommend(dataset, storage=sqlite_url, top=2.5)  # type: ignore[arg-type]


def test_run_arguments_of_the_wrong_kind_are_refused_before_the_search_is_registered(sqlite_url: str) -> None:
    with pytest.raises(
        engine.StratagemError, match=r"progress must be an engine ProgressSink .* task_started"
    ):
        engine.run(_spec("p", IRIS), storage=sqlite_url, progress=5)  # type: ignore[arg-type]
    with pytest.raises(engine.StratagemError, match=r"n_jobs must be a whole number of trials .* got 1\.5"):
        engine.run(_spec("j", IRIS), storage=sqlite_url, n_jobs=1.5)  # type: ignore[arg-type]
    assert engine.searches(storage=sqlite_url) == []  # nothing registered, so nothing left marked failed


def test_load_model_names_a_path_that_is_not_one() -> None:
    with pytest.raises(ModelError, match=r"path must be a model directory .* got None"):
        engine.load_model(None)  # type: ignore[arg-type]


def test_a_search_that_appears_between_lookup_and_listing_is_not_listed_as_another(sqlite_url: str) -> None:
    engine.run(_spec("s", IRIS), storage=sqlite_url)
    with Database(sqlite_url).session() as s:  # as if the lookup ran before "s" was registered
        assert str(reads.unknown_search(s, "s")).strip("'\"") == (
            "search 's' was being registered while this read; run it again"
        )
        assert "no search 'x' in this storage; stored searches: s" in str(reads.unknown_search(s, "x"))
    with pytest.raises(engine.UnknownNameError, match="stored searches: s"):
        engine.best(search="x", storage=sqlite_url)
