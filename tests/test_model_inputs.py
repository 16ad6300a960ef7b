"""What `stratagem predict`, `export` and `adapt` do with bad input: rows that would give a silent wrong
answer, damaged model files (kept artifacts and exported directories), model cards that are not cards,
and searches that keep no model per task. Each is a one-line error naming the problem and the fix, exit
status 2, and nothing stored is lost."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import engine
from engine.cli import cli
from engine.errors import TaskDataError
from engine.spec import SearchSpec
from engine.storage import ArtifactRow, Database
from engine.trained import (
    CARD_FILE,
    WEIGHTS_FILE,
    LoadedModel,
    ModelError,
    load_best_model,
    load_model,
    read_csv_rows,
)
from tests.conftest import tiny_spec

COLUMNS = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")
ROW = ("5.1", "3.5", "1.4", "0.2")

META_SPEC = {
    "search": {"name": "sin", "mode": "meta", "n_trials": 1, "seed": 0},
    "family": {"name": "sinusoid", "k_shot": 5, "k_query": 5},
    "meta": {
        "strategies": ["scratch"],
        "iterations": 10,
        "checkpoints": 1,
        "meta_batch": [2],
        "val_tasks": 5,
        "test_tasks": 5,
        "steps": [0, 1],
    },
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def refused(result: Result, *fragments: str) -> str:
    """The one error line of a command that must exit with status 2, checked for ``fragments``."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""
    return lines[0]


def write_rows(path: Path, header: tuple[str, ...], *rows: tuple[str, ...]) -> Path:
    path.write_text("\n".join(",".join(r) for r in (header, *rows)) + "\n", encoding="utf-8")
    return path


def kept_files(url: str) -> list[Path]:
    with Database(url).session() as s:
        return [Path(a.store) / a.artifact_id for a in s.query(ArtifactRow)]


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A per-task search of iris (storage URL) and its best model, exported (read-only: copy to change)."""
    tmp = tmp_path_factory.mktemp("iris")
    url = f"sqlite:///{tmp / 'iris.db'}"
    engine.run(tiny_spec("flowers", n_trials=1), storage=url)
    return url, engine.export(search="flowers", out=tmp / "model", storage=url)


@pytest.fixture
def model_dir(iris: tuple[str, Path], tmp_path: Path) -> Path:
    """A copy of the exported iris model, this test's to damage."""
    return Path(shutil.copytree(iris[1], tmp_path / "model"))


@pytest.fixture
def fresh(tmp_path: Path) -> str:
    """A per-task search of this test's own, whose kept model it may damage."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    engine.run(tiny_spec("fresh", n_trials=1), storage=url)
    return url


# 1. Rows that gave an answer without complaint


def test_a_header_that_repeats_a_column_is_refused_naming_it(iris: tuple[str, Path], tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "dup.csv", (*COLUMNS, COLUMNS[0]), (*ROW, "999"))
    with pytest.raises(TaskDataError, match=r"repeats column names \['sepal length \(cm\)'\]"):
        read_csv_rows(rows)
    result = invoke("predict", "--search", "flowers", "--storage", iris[0], "--csv", str(rows))
    refused(result, "dup.csv", "'sepal length (cm)'", "rename")
    result = invoke("predict", "--model", str(iris[1]), "--csv", str(rows))
    refused(result, "repeats column names ['sepal length (cm)']")


@pytest.mark.parametrize("value", ["1e308", "-1e31", "1.7976931348623157e308"])
def test_values_beyond_1e30_are_refused_naming_row_and_column(
    iris: tuple[str, Path], tmp_path: Path, value: str
) -> None:
    rows = write_rows(tmp_path / "big.csv", COLUMNS, ROW, (*ROW[:3], value))
    for source in (["--search", "flowers", "--storage", iris[0]], ["--model", str(iris[1])]):
        result = invoke("predict", *source, "--csv", str(rows), "--proba")
        refused(result, "big.csv", "row 2, column 'petal width (cm)'", "1e+30")
    model = load_model(iris[1])
    row = dict(zip(COLUMNS, ROW, strict=True))
    with pytest.raises(TaskDataError, match=r"row 2, column 'petal width \(cm\)'"):
        model.predict_proba([row, {**row, COLUMNS[3]: float(value)}])


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (10**400, "the number is beyond the range of a float"),
        (True, "expected a number, got True"),
        (np.bool_(True), "expected a number, got "),
        ("0_1", "expected a number, got '0_1'"),
    ],
    ids=["huge-int", "bool", "numpy-bool", "underscore"],
)
def test_cells_that_are_no_plain_number_are_one_line_errors(
    iris: tuple[str, Path], value: object, says: str
) -> None:
    model = load_model(iris[1])
    row = dict(zip(COLUMNS, ROW, strict=True))
    with pytest.raises(TaskDataError) as caught:
        model.predict([row, {**row, COLUMNS[3]: value}])
    assert str(caught.value).startswith(f"row 2, column 'petal width (cm)': {says}"), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_misspelt_column_is_pointed_at(iris: tuple[str, Path], tmp_path: Path) -> None:
    header = ("sepal length (cm)", "sepal width (cm)", "petal lenght (cm)", "petal width (cm)")
    rows = write_rows(tmp_path / "typo.csv", header, ROW)
    result = invoke("predict", "--model", str(iris[1]), "--csv", str(rows))
    refused(
        result, "lack column(s) ['petal length (cm)']", "the rows have 'petal lenght (cm)': a misspelling?"
    )
    row = dict(zip(header, ROW, strict=True))
    with pytest.raises(TaskDataError, match=r"it has 'petal lenght \(cm\)': a misspelling\?"):
        load_model(iris[1]).predict([row])


def test_encoded_features_that_are_not_finite_are_refused(iris: tuple[str, Path]) -> None:
    model = load_model(iris[1])
    X = np.array([[5.1, 3.5, 1.4, 0.2], [5.1, np.nan, 1.4, 0.2]])
    with pytest.raises(TaskDataError, match=r"row 2, column 'sepal width \(cm\)': nan is not a finite"):
        model.output(X)
    assert np.isfinite(model.output(X[:1])).all()


def test_an_output_that_is_not_finite_is_an_error_not_nan_probabilities(
    model_dir: Path, tmp_path: Path
) -> None:
    weights = model_dir / WEIGHTS_FILE
    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(weights))
    tensors = {k: torch.full_like(v, float("nan")) if ".state." in k else v for k, v in tensors.items()}
    save_file(tensors, str(weights), metadata=meta)
    rows = write_rows(tmp_path / "rows.csv", COLUMNS, ROW)
    with pytest.raises(ModelError, match="row 1: the model's output is not a finite number"):
        load_model(model_dir).predict_proba([dict(zip(COLUMNS, ROW, strict=True))])
    refused(invoke("predict", "--model", str(model_dir), "--csv", str(rows), "--proba"), "not a finite")


def test_an_out_file_that_cannot_be_written_is_one_line(iris: tuple[str, Path], tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "rows.csv", COLUMNS, ROW)
    out = tmp_path / "no-such-folder" / "predictions.csv"
    result = invoke("predict", "--model", str(iris[1]), "--csv", str(rows), "--out", str(out))
    refused(result, str(out), "does not exist")


# 2. Damaged model files


def _garbage(path: Path) -> None:
    path.write_bytes(b"garbage\n")


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


DAMAGE: list[Callable[[Path], None]] = [_garbage, _truncated, _empty]


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_corrupted_kept_model_is_one_line_naming_the_file(
    fresh: str, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    (kept,) = kept_files(fresh)
    damage(kept)
    rows = write_rows(tmp_path / "rows.csv", COLUMNS, ROW)
    line = refused(invoke("predict", "--search", "fresh", "--storage", fresh, "--csv", str(rows)), str(kept))
    assert "corrupted" in line and "run the search again" in line
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / "model.json").write_text("mine")  # an earlier export's card, which --overwrite replaces
    result = invoke("export", "--search", "fresh", "--storage", fresh, "--out", str(previous), "--overwrite")
    refused(result, str(kept), "corrupted", "run the search again")
    assert [p.name for p in previous.iterdir()] == ["model.json"]  # nothing already there is lost
    assert (previous / "model.json").read_text() == "mine"
    with pytest.raises(ModelError, match="corrupted"):
        load_best_model(search="fresh", storage=fresh)


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_exported_weights_file_is_one_line_naming_it(
    model_dir: Path, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    damage(model_dir / WEIGHTS_FILE)
    rows = write_rows(tmp_path / "rows.csv", COLUMNS, ROW)
    result = invoke("predict", "--model", str(model_dir), "--csv", str(rows))
    refused(result, str(model_dir / WEIGHTS_FILE), "corrupted", "export the model again")


@pytest.fixture
def meta(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    engine.run(SearchSpec.from_dict(META_SPEC), storage=url)
    return url


@pytest.mark.parametrize(
    ("damage", "says"), [(_garbage, "corrupted"), (_truncated, "corrupted"), (Path.unlink, "gone")]
)
def test_adapt_reports_a_damaged_or_missing_meta_learner_in_one_line(
    meta: str, tmp_path: Path, damage: Callable[[Path], None], says: str
) -> None:
    (kept,) = (Path(meta[len("sqlite:///") :] + ".artifacts")).iterdir()
    damage(kept)
    support = tmp_path / "support.csv"
    support.write_text("x,y\n-1,-0.8\n0,0.0\n1,0.8\n")
    result = invoke("adapt", "--search", "sin", "--storage", meta, "--support", str(support), "--target", "y")
    refused(result, str(kept), says, "run the search again")


# 3. Model cards that are not cards


def _edit(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    """Change the card's fields in place (what ``change`` returns is ignored)."""

    def edit(card: Path) -> None:
        data = json.loads(card.read_text())
        change(data)
        card.write_text(json.dumps(data))

    return edit


def _replace(value: object) -> Callable[[Path], None]:
    """Replace the whole card with the JSON ``value``."""
    return lambda card: card.write_text(json.dumps(value))


CARDS: list[tuple[Callable[[Path], None], str]] = [
    (_replace([]), "a JSON array, not an object"),
    (_replace("model"), "a JSON string, not an object"),
    (_edit(lambda d: d.update(kind="weird")), "field 'kind' is 'weird'; expected one of"),
    (_edit(lambda d: d.update(kind=3)), "field 'kind' is number 3; expected a string"),
    (_edit(lambda d: d.update(n_features="4")), "field 'n_features' is string '4'"),
    (_edit(lambda d: d.update(n_classes=True)), "field 'n_classes' is boolean true"),
    (_edit(lambda d: d.update(class_names="setosa")), "field 'class_names' is string"),
    (
        _edit(lambda d: d.update(class_names=["a", "b"])),
        "field 'class_names' has 2 labels but 'n_classes' is 3",
    ),
    (_edit(lambda d: d.update(feature_names=[1, 2, 3, 4])), "field 'feature_names' is a JSON array"),
    (_edit(lambda d: d.update(strategy_params=[])), "field 'strategy_params' is a JSON array"),
    (_edit(lambda d: d.pop("strategy")), "field 'strategy' is missing"),
    (_edit(lambda d: d.update(members=[])), "field 'members' is a JSON array; expected a non-empty"),
    (_edit(lambda d: d["members"][0].update(n_samples=-1)), "field 'members[0].n_samples' is number -1"),
    (_edit(lambda d: d["members"][0].update(y_std="x")), "field 'members[0].y_std'"),
    (_edit(lambda d: d["encoding"].update(columns=[3])), "field 'encoding.columns[0]' is number 3"),
    (_edit(lambda d: d["encoding"]["columns"].pop()), "'encoding' makes 3 features from its columns"),
    (lambda card: card.write_text("{"), "is not valid JSON"),
]


@pytest.mark.parametrize(("damage", "says"), CARDS)
def test_a_card_that_is_not_a_card_names_the_file_and_the_field(
    model_dir: Path, tmp_path: Path, damage: Callable[[Path], None], says: str
) -> None:
    card = model_dir / CARD_FILE
    damage(card)
    with pytest.raises(ModelError) as err:
        load_model(model_dir)
    message = str(err.value)
    assert says in message and str(card) in message and "export the model again" in message
    assert "\n" not in message
    rows = write_rows(tmp_path / "rows.csv", COLUMNS, ROW)
    refused(invoke("predict", "--model", str(model_dir), "--csv", str(rows)), says)


def test_weights_that_do_not_fit_the_card_are_one_line(model_dir: Path) -> None:
    _edit(lambda d: d.update(kind="regression", n_classes=0, class_names=[]))(model_dir / CARD_FILE)
    with pytest.raises(ModelError, match="do not fit the model") as err:
        load_model(model_dir)
    assert "\n" not in str(err.value) and "size mismatch" in str(err.value)


def test_an_intact_model_still_loads_and_predicts(iris: tuple[str, Path]) -> None:
    model = load_model(iris[1])
    assert isinstance(model, LoadedModel) and model.card.kind == "classification"
    proba = model.predict_proba([dict(zip(COLUMNS, ROW, strict=True))])
    assert proba.shape == (1, 3) and np.isfinite(proba).all()


# 4. Searches that keep no model per task


def test_predict_and_export_on_a_meta_search_point_to_adapt(meta: str, tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "rows.csv", ("x",), ("0.5",))
    for args in (["predict", "--csv", str(rows)], ["export", "--out", str(tmp_path / "m")]):
        line = refused(invoke(*args, "--search", "sin", "--storage", meta), "meta-mode search")
        assert "stratagem adapt --search sin" in line and "tasks with a best trial" not in line
    assert not (tmp_path / "m").exists()


def test_predict_and_export_on_a_cross_task_search_say_what_it_stores(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ct.db'}"
    engine.run(tiny_spec("ct", ("iris", "wine"), n_trials=1, mode="cross_task"), storage=url)
    rows = write_rows(tmp_path / "rows.csv", COLUMNS, ROW)
    for task in ([], ["--task", "iris"]):
        for args in (["predict", "--csv", str(rows)], ["export", "--out", str(tmp_path / "m")]):
            line = refused(invoke(*args, *task, "--search", "ct", "--storage", url), "cross-task search")
            assert "best default configuration" in line and "per-task search" in line
    assert not (tmp_path / "m").exists()


# 4. CSV files that are not what the model reads


def test_a_csv_with_a_header_but_no_rows_is_refused_naming_the_file(
    iris: tuple[str, Path], tmp_path: Path
) -> None:
    rows = write_rows(tmp_path / "header_only.csv", COLUMNS)
    for source in (["--search", "flowers", "--storage", iris[0]], ["--model", str(iris[1])]):
        refused(invoke("predict", *source, "--csv", str(rows)), "header_only.csv", "has no data rows")
    with pytest.raises(TaskDataError, match="no rows to predict"):
        load_model(iris[1]).predict([])


@pytest.mark.parametrize("delimiter", ["", ";;", "\\t\\t"])
def test_a_delimiter_that_is_not_one_character_is_refused(
    iris: tuple[str, Path], tmp_path: Path, delimiter: str
) -> None:
    rows = write_rows(tmp_path / "rows.csv", COLUMNS, ROW)
    result = invoke("predict", "--model", str(iris[1]), "--csv", str(rows), "--delimiter", delimiter)
    refused(result, "delimiter must be one character", repr(delimiter))


def test_a_typed_backslash_t_delimiter_is_a_tab(iris: tuple[str, Path], tmp_path: Path) -> None:
    rows = tmp_path / "rows.tsv"
    rows.write_text("\t".join(COLUMNS) + "\n" + "\t".join(ROW) + "\n", encoding="utf-8")
    result = invoke("predict", "--model", str(iris[1]), "--csv", str(rows), "--delimiter", "\\t")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["prediction", str(load_model(iris[1]).predict([ROW])[0])]


@pytest.mark.parametrize(("separator", "typed"), [(";", ";"), ("\t", "\\t")])
def test_a_delimiter_that_finds_no_column_hints_at_the_one_that_would(
    iris: tuple[str, Path], tmp_path: Path, separator: str, typed: str
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(separator.join(COLUMNS) + "\n" + separator.join(ROW) + "\n", encoding="utf-8")
    result = invoke("predict", "--model", str(iris[1]), "--csv", str(rows))
    refused(result, "rows.csv", "lack column(s)", f"give --delimiter '{typed}'")
    unrelated = write_rows(tmp_path / "other.csv", ("x", "y"), ("1", "2"))
    assert "--delimiter" not in refused(invoke("predict", "--model", str(iris[1]), "--csv", str(unrelated)))


def test_an_interrupted_out_keeps_the_earlier_file_whole(
    iris: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.trained

    def interrupted(*_: Any, **__: Any) -> tuple[list[str], Any]:
        def rows() -> Any:
            yield ["setosa"]
            raise KeyboardInterrupt  # as Ctrl-C halfway through the writing

        return ["prediction"], rows()

    rows = write_rows(tmp_path / "rows.csv", COLUMNS, ROW)
    out = tmp_path / "out" / "predictions.csv"
    out.parent.mkdir()
    out.write_text("earlier\n")
    monkeypatch.setattr(engine.trained, "predict_csv", interrupted)
    result = invoke("predict", "--model", str(iris[1]), "--csv", str(rows), "--out", str(out))
    assert result.exit_code != 0
    assert out.read_text() == "earlier\n" and [p.name for p in out.parent.iterdir()] == ["predictions.csv"]


def test_an_out_that_is_the_csv_is_refused_before_any_work(iris: tuple[str, Path], tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "rows.csv", COLUMNS, ROW)
    before = rows.read_text()
    result = invoke(
        "predict", "--model", "no-such-model", "--csv", str(rows), "--out", str(tmp_path / "." / "rows.csv")
    )
    refused(result, "is the --csv file")
    assert rows.read_text() == before
