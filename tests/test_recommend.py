"""Zero-shot recommendation: configurations for a task from other tasks' history, before any trial."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.configuration import Configuration
from engine.errors import UnknownNameError
from engine.recommendation import (
    NoHistoryError,
    TaskChoiceError,
    recommend,
    recommend_for_entry,
    recommend_for_source,
    recommend_for_task,
)
from engine.results import tasks
from engine.search import run
from engine.spec import SearchSpec, TaskSpec
from engine.storage import Database
from engine.task import fingerprint
from plugins.tasks import SklearnSource, SyntheticSource


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Finished cold searches of iris, wine and a synthetic task (linear model, gradient descent)."""
    path = tmp_path_factory.mktemp("rec") / "history.db"
    spec = SearchSpec(
        name="hist",
        tasks=(
            TaskSpec("sklearn", {"dataset": "iris"}),
            TaskSpec("sklearn", {"dataset": "wine"}),
            TaskSpec("synthetic", {"n_samples": 120, "n_features": 5, "seed": 3}, name="synth"),
        ),
        n_trials=4,
        strategies=("linear",),
        updaters=("gradient_descent",),
        warm_start=False,
    )
    run(spec, storage=f"sqlite:///{path}")
    return f"sqlite:///{path}"


def test_an_empty_storage_says_there_is_no_history(sqlite_url: str) -> None:
    iris = SklearnSource().load({"dataset": "iris"}, Path.cwd())

    with pytest.raises(
        NoHistoryError, match="holds no finished searches of classification tasks; run a search"
    ):
        recommend(iris, storage=sqlite_url)


def test_the_cli_on_an_empty_storage_exits_2_with_the_reason(sqlite_url: str) -> None:
    result = CliRunner().invoke(cli, ["recommend", "--dataset", "iris", "--storage", sqlite_url])

    assert result.exit_code == 2
    assert (
        "the storage holds no finished searches of classification tasks; run a search first" in result.output
    )


def test_a_kind_without_history_is_reported_like_an_empty_storage(history: str) -> None:
    diabetes = SklearnSource().load({"dataset": "diabetes"}, Path.cwd())

    with pytest.raises(NoHistoryError, match="no finished searches of regression tasks"):
        recommend(diabetes, storage=history)


def test_searches_without_two_completed_trials_are_named_not_called_no_searches(sqlite_url: str) -> None:
    one = SearchSpec(
        name="one",
        tasks=(TaskSpec("sklearn", {"dataset": "wine"}),),
        n_trials=1,
        strategies=("linear",),
        updaters=("gradient_descent",),
    )
    run(one, storage=sqlite_url)  # one completed trial: too few to learn from
    iris = SklearnSource().load({"dataset": "iris"}, Path.cwd())

    with pytest.raises(NoHistoryError) as caught:
        recommend(iris, storage=sqlite_url)
    message = str(caught.value)
    assert "holds searches of classification tasks, but none of their studies has the two" in message
    assert "stratagem best" in message and "no finished searches" not in message
    result = CliRunner().invoke(cli, ["recommend", "--dataset", "iris", "--storage", sqlite_url])
    assert result.exit_code == 2 and "none of their studies has the two completed trials" in result.output


def test_recommend_returns_top_k_configs_with_evidence_from_other_tasks_only(history: str) -> None:
    iris_fp = next(t.fingerprint for t in tasks(storage=history) if t.name == "iris")

    rec = recommend_for_task("iris", storage=history, top=3)

    assert rec.excluded_fingerprint == iris_fp and rec.kind == "classification"
    assert [c.rank for c in rec.configs] == [1, 2, 3]
    assert [c.score for c in rec.configs] == sorted((c.score for c in rec.configs), reverse=True)
    assert {n["task"] for n in rec.neighbours} == {"wine", "synth"}
    for c in rec.configs:
        assert c.strategy == "linear" and c.updater == "gradient_descent"
        assert c.params["strategy"] == "linear" and c.params["gradient_descent.lr"] == c.updater_params["lr"]
        assert not c.origin.startswith("hist/iris")
        assert {e.task for e in c.evidence} == {"wine", "synth"}
        assert all(e.fingerprint != iris_fp for e in c.evidence)
        assert any(e.value is not None for e in c.evidence)  # each config was tried on a neighbour
        assert 0.0 <= c.score <= 1.0


def test_a_dataset_can_be_recommended_for_and_its_own_history_left_out(history: str) -> None:
    synth = SyntheticSource().load({"n_samples": 120, "n_features": 5, "seed": 3}, Path.cwd())
    with_own = recommend(synth, storage=history, top=2)
    without = recommend(synth, storage=history, top=2, exclude_fingerprint=fingerprint(synth))

    assert "synth" in {n["task"] for n in with_own.neighbours}
    assert "synth" not in {n["task"] for n in without.neighbours}
    assert with_own.neighbours[0]["task"] == "synth" and with_own.neighbours[0]["distance"] == 0.0


def test_an_unknown_stored_task_names_the_stored_ones(history: str) -> None:
    with pytest.raises(UnknownNameError, match="no stored task 'nope'; stored tasks: iris, synth"):
        recommend_for_task("nope", storage=history)


def _write_csv(path: Path) -> None:
    data = SyntheticSource().load({"n_samples": 80, "n_features": 4, "seed": 9}, Path.cwd())
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*data.feature_names, "label"])
        for row, label in zip(data.X, data.y, strict=True):
            writer.writerow([*row, f"class{label}"])


def test_the_cli_recommends_for_a_csv_as_json(history: str, tmp_path: Path) -> None:
    path = tmp_path / "new.csv"
    _write_csv(path)

    result = CliRunner().invoke(
        cli,
        ["recommend", "--csv", str(path), "--target", "label", "--top", "2", "--json", "--storage", history],
    )

    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["task"] == "new" and data["kind"] == "classification"
    assert len(data["configs"]) == 2
    assert data["configs"][0]["evidence"] and data["configs"][0]["strategy"] == "linear"


def test_the_cli_reads_a_csv_with_another_delimiter_as_its_hint_says(history: str, tmp_path: Path) -> None:
    path = tmp_path / "new.csv"
    _write_csv(path)
    path.write_text(path.read_text().replace(",", ";"))
    args = ["recommend", "--csv", str(path), "--target", "label", "--top", "1", "--storage", history]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 2 and "is the delimiter ',' right?" in refused.stderr, refused.output
    result = CliRunner().invoke(cli, [*args, "--delimiter", ";", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["task"] == "new"


def test_the_cli_prints_a_table_for_a_stored_task(history: str) -> None:
    result = CliRunner().invoke(cli, ["recommend", "--task", "wine", "--top", "1", "--storage", history])

    assert result.exit_code == 0, result.output
    assert "Recommended for wine" in result.output and "Nearest tasks: " in result.output
    assert "wine (distance" not in result.output
    assert re.search(r"(iris|synth): accuracy \d\.\d", result.output), result.output


def test_the_cli_wants_exactly_one_task(history: str) -> None:
    result = CliRunner().invoke(
        cli, ["recommend", "--dataset", "iris", "--task", "wine", "--storage", history]
    )
    assert result.exit_code == 2 and "exactly one of" in result.output

    result = CliRunner().invoke(cli, ["recommend", "--csv", "x.csv", "--storage", history])
    assert result.exit_code == 2 and "--csv needs --target" in result.output


def test_recommend_for_entry_loads_data_through_the_plugins(history: str) -> None:
    rec = recommend_for_entry("sklearn", {"dataset": "breast_cancer"}, storage=history, top=1)

    assert rec.task == "breast_cancer" and len(rec.configs) == 1


def test_recommend_never_writes_to_the_storage(history: str) -> None:
    path = history.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        before = conn.execute("SELECT COUNT(*) FROM trials").fetchone()

    recommend_for_task("wine", storage=history, top=2)

    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM trials").fetchone() == before


def test_engine_tables_without_any_search_are_no_history_and_stay_untouched(sqlite_url: str) -> None:
    Database(sqlite_url)  # the engine's tables only, as before a first search
    iris = SklearnSource().load({"dataset": "iris"}, Path.cwd())

    with pytest.raises(NoHistoryError, match="no finished searches of classification tasks"):
        recommend(iris, storage=sqlite_url)
    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "trials" not in tables  # Optuna's tables were not created by reading


def test_a_recommended_config_is_a_configuration_shown_with_flat_fields(history: str) -> None:
    config = recommend_for_task("wine", storage=history, top=1).configs[0]

    assert config.config == Configuration.from_params(config.params)
    data = config.to_dict()
    assert list(data) == [
        "rank", "strategy", "strategy_params", "updater", "updater_params", "params", "score", "origin",
        "evidence",
    ]  # fmt: skip
    assert data["params"] == config.config.to_params()


def test_recommend_for_source_with_a_stored_task_leaves_its_own_history_out(history: str) -> None:
    rec = recommend_for_source(task="wine", storage=history, top=1)

    assert rec.to_dict() == recommend_for_task("wine", storage=history, top=1).to_dict()
    assert "wine" not in {n["task"] for n in rec.neighbours}


def test_recommend_for_source_with_a_dataset_loads_it_through_its_task_source(history: str) -> None:
    rec = recommend_for_source(dataset="breast_cancer", storage=history, top=1)

    assert rec.task == "breast_cancer" and rec.excluded_fingerprint is None


def test_recommend_for_source_reads_a_csv_with_its_target_column(history: str, tmp_path: Path) -> None:
    path = tmp_path / "new.csv"
    _write_csv(path)

    rec = recommend_for_source(csv=path, target="label", kind="classification", storage=history, top=1)

    assert rec.task == "new" and rec.kind == "classification"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "give exactly one of --csv PATH --target COL, --dataset NAME or --task NAME"),
        ({"dataset": "iris", "task": "wine"}, "give exactly one of"),
        ({"dataset": "iris", "target": "y"}, "--target, --kind and --delimiter go with --csv"),
        ({"task": "wine", "kind": "regression"}, "--target, --kind and --delimiter go with --csv"),
        ({"task": "wine", "delimiter": ";"}, "--target, --kind and --delimiter go with --csv"),
        ({"csv": "x.csv"}, "--csv needs --target COL"),
    ],
)
def test_recommend_for_source_wants_exactly_one_task(given: dict[str, str], message: str) -> None:
    with pytest.raises(TaskChoiceError, match=re.escape(message)):
        recommend_for_source(**given)  # type: ignore[arg-type]


def test_a_csv_with_values_beyond_1e30_is_refused_as_a_search_refuses_it(
    history: str, tmp_path: Path
) -> None:
    path = tmp_path / "big.csv"
    _write_csv(path)
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[0] = "1e300"
    path.write_text("\n".join([*lines[:3], ",".join(cells), *lines[4:]]) + "\n")

    result = CliRunner().invoke(
        cli, ["recommend", "--csv", str(path), "--target", "label", "--storage", history]
    )

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.splitlines()) == 1
    assert "has a value of magnitude 1e+300; values beyond 1e+30 overflow the statistics: rescale it" in (
        result.stderr
    )
