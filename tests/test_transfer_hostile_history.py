"""Cross-task learning on histories nobody planned for: other searches' strategy lists, plugins whose
search space changed between runs, stored meta-features that are not finite numbers."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.recommendation import recommend, recommend_for_task
from engine.results import best
from engine.search import run
from engine.spec import SearchSpec, TaskSpec
from engine.vocabulary import WARM_START_ATTR
from plugins.tasks import SklearnSource


def _data(name: str) -> Any:
    return SklearnSource().load({"dataset": name}, Path.cwd())


def _sk(*names: str) -> tuple[TaskSpec, ...]:
    return tuple(TaskSpec("sklearn", {"dataset": n}) for n in names)


def _spec(name: str, tasks: tuple[TaskSpec, ...], **kw: Any) -> SearchSpec:
    options: dict[str, Any] = {
        "n_trials": 3,
        "warm_start": False,
        "strategies": ("linear",),
        "updaters": ("gradient_descent",),
    }
    options.update(kw)
    return SearchSpec(name=name, tasks=tasks, **options)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris searched with linear and MLP configurations, wine by a search that allowed linear only."""
    path = tmp_path_factory.mktemp("hostile") / "history.db"
    url = f"sqlite:///{path}"
    run(_spec("both", _sk("iris"), strategies=("linear", "mlp")), storage=url)
    run(_spec("narrow", _sk("wine")), storage=url)
    return path


@pytest.fixture
def storage(history: Path, tmp_path: Path) -> str:
    return _copy(history, tmp_path)


def test_a_search_with_fewer_strategies_does_not_hide_the_others_configurations(storage: str) -> None:
    # The "narrow" search's study offered only `linear`: its choice of strategies is its own, not a
    # limit on what the other tasks' configurations may be.
    rec = recommend(_data("breast_cancer"), storage=storage, top=2, strategies=["mlp"])

    assert rec.configs and all(c.config.strategy == "mlp" for c in rec.configs)


def _set_meta_feature(url: str, task: str, key: str, raw: str) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        (stored,) = conn.execute(
            "SELECT meta_features FROM stratagem_tasks WHERE name = ?", (task,)
        ).fetchone()
        features = json.loads(stored)
        assert key in features
        features[key] = "@@"
        text = json.dumps(features).replace('"@@"', raw)
        conn.execute("UPDATE stratagem_tasks SET meta_features = ? WHERE name = ?", (text, task))


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "null", '"high"'])
def test_a_source_with_a_damaged_meta_feature_is_left_out_not_made_nan(storage: str, raw: str) -> None:
    _set_meta_feature(storage, "wine", "class_entropy", raw)

    rec = recommend(_data("breast_cancer"), storage=storage, top=2)

    assert [n["task"] for n in rec.neighbours] == ["iris"]
    assert all(math.isfinite(n["weight"]) and math.isfinite(n["distance"]) for n in rec.neighbours)
    assert all(math.isfinite(e.weight) for c in rec.configs for e in c.evidence)


def test_a_stored_task_with_a_damaged_meta_feature_is_refused_in_one_line(storage: str) -> None:
    _set_meta_feature(storage, "wine", "class_entropy", "NaN")

    with pytest.raises(Exception, match=r"task 'wine' cannot be compared .*class_entropy=nan"):
        recommend_for_task("wine", storage=storage)
    result = CliRunner().invoke(cli, ["recommend", "--task", "wine", "--storage", storage])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "class_entropy=nan" in result.output


_PLUGIN = """
import engine

class Custom(engine.Strategy):
    name = "custom"

    def __init__(self, width=32, act="relu", extra=0.0):
        self.width, self.act, self.extra = width, act, extra

    @classmethod
    def suggest(cls, trial, info):
        return {{"width": trial.suggest_int("width", {low}, {high}, log={log}),
                 "act": trial.suggest_categorical("act", {acts}){extra}}}

    def build(self, info):
        from torch import nn
        act = {{"relu": nn.ReLU(), "tanh": nn.Tanh(), "gelu": nn.GELU()}}[self.act]
        out = nn.Linear(self.width, info.n_outputs)
        return nn.Sequential(nn.Linear(info.n_features, self.width), act, out)

@engine.hookimpl
def stratagem_register_strategies(registry):
    registry.add(Custom)
"""


def _copy(path: Path, tmp_path: Path) -> str:
    copy = tmp_path / "copy.db"
    with sqlite3.connect(path) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)  # the database may be in WAL mode: copying the file alone would lose data
    return f"sqlite:///{copy}"


@pytest.fixture(scope="module")
def custom_history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A search of iris with version 1 of a plugin's strategy, and version 2's file: other width range
    and scale, another activation choice, one parameter fewer."""
    folder = tmp_path_factory.mktemp("custom")
    old, new = folder / "old" / "custom_plugin.py", folder / "new" / "custom_plugin.py"
    old.parent.mkdir()
    new.parent.mkdir()
    extra = ',\n                 "extra": trial.suggest_float("extra", 0.0, 1.0)'
    old.write_text(_PLUGIN.format(low=8, high=40, log=False, acts='["relu", "tanh"]', extra=extra))
    new.write_text(_PLUGIN.format(low=100, high=400, log=True, acts='["relu", "gelu"]', extra=""))
    path = folder / "history.db"
    run(_spec("old", _sk("iris"), strategies=("custom",), plugins=(str(old),)), storage=f"sqlite:///{path}")
    return path, new


@pytest.mark.parametrize("method", ["transfer", "guided", "knn"])
def test_warm_trials_fit_a_plugin_space_that_changed_since_the_sources_ran(
    custom_history: tuple[Path, Path], tmp_path: Path, method: str
) -> None:
    path, new = custom_history
    url = _copy(path, tmp_path)
    spec = _spec(
        "new",
        _sk("wine"),
        strategies=("custom",),
        plugins=(str(new),),
        warm_start=True,
        warm_start_method=method,
    )
    run(spec, storage=url)

    study = optuna.load_study(study_name="new/wine", storage=url)
    assert study.user_attrs[WARM_START_ATTR]["used"] is True
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3  # none failed out of range
    warm = [t for t in trials if "fixed_params" in t.system_attrs]
    assert warm
    for t in warm:
        assert 100 <= t.params["custom.width"] <= 400 and t.params["custom.act"] == "relu"
        assert "custom.extra" not in t.system_attrs["fixed_params"]


@pytest.mark.parametrize(
    "stored",
    [
        {"method": "guided", "sources": 5},
        {"used": "yes", "enqueued": "3", "sources": [{"task": "iris"}, None]},
    ],
)
def test_a_damaged_warm_start_record_reads_as_unused_not_as_a_traceback(
    storage: str, stored: dict[str, Any]
) -> None:
    with sqlite3.connect(storage.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE stratagem_search_tasks SET warm_start = ?", (json.dumps(stored),))

    rows = best(storage=storage)

    assert rows and all(r.warm_start is not None and r.warm_start.used is False for r in rows)
    assert all(r.warm_start is not None and r.warm_start.sources == () for r in rows)
    result = CliRunner().invoke(cli, ["best", "--storage", storage])
    assert result.exit_code == 0, result.output
