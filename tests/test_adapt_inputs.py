"""`adapt` feeds θ what meta-training fed it: raw rows standardised as the family did, columns matched
by name (to the family's and to the support's), and bad paths or columns refused in one line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import engine
from engine.cli import cli
from engine.errors import StratagemError, TaskDataError
from engine.meta import FamilyError, load_weights, save_weights
from engine.search import load_meta_search
from engine.spec import SearchSpec
from plugins.meta import CsvFamily

OFFSET = 100.0
"""Column ``b`` lies around 100 (spread 10): raw, it is far outside what θ saw in meta-training."""


def _rows(rng: np.random.Generator, n: int, task: str | None = None) -> list[dict[str, float | str]]:
    rows: list[dict[str, float | str]] = []
    for _ in range(n):
        a, b = float(rng.normal()), float(OFFSET + 10 * rng.normal())
        row: dict[str, float | str] = {"a": a, "b": b, "y": 3 * a + 0.05 * float(rng.normal())}
        rows.append({"task": task, **row} if task is not None else row)
    return rows


def _write(path: Path, rows: list[dict[str, float | str]], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    path.write_text(
        ",".join(columns) + "\n" + "".join(",".join(str(r[c]) for c in columns) + "\n" for r in rows)
    )
    return path


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A meta-trained csv-family search (Reptile, 300 iterations) and the folder of its data."""
    folder = tmp_path_factory.mktemp("adapt_inputs")
    rng = np.random.default_rng(0)
    table = [r for t in range(6) for r in _rows(rng, 20, task=f"t{t}")]
    _write(folder / "fam.csv", table)
    spec = {
        "search": {"name": "fam", "mode": "meta", "n_trials": 1, "seed": 0},
        "family": {"name": "csv", "path": str(folder / "fam.csv"), "task_column": "task", "target": "y"}
        | {"k_shot": 3, "k_query": 3},
        "meta": {
            "strategies": ["reptile"],
            "iterations": 300,
            "checkpoints": 1,
            "meta_batch": [2],
            "val_tasks": 5,
            "test_tasks": 5,
            "steps": [0, 5],
        },
    }
    url = f"sqlite:///{folder / 'meta.db'}"
    engine.run(SearchSpec.from_dict(spec), storage=url)
    return url, folder


@pytest.fixture(scope="module")
def new_task() -> tuple[list[dict[str, float | str]], list[dict[str, float | str]]]:
    """Support and query rows of a task meta-training never saw, with ``b`` around 100."""
    rng = np.random.default_rng(1)
    return _rows(rng, 5), _rows(rng, 12)


def test_theta_keeps_the_family_columns_and_standardisation(searched: tuple[str, Path]) -> None:
    url, folder = searched
    info = load_meta_search("fam", storage=url)[2]
    family = CsvFamily(str(folder / "fam.csv"), task_column="task", target="y", k_shot=3, k_query=3)
    assert info == family.info()
    assert info.input_columns == ("a", "b")
    assert abs(info.input_mean[1] - OFFSET) < 10 and info.input_std[1] > 5


def test_adapt_standardises_raw_rows_as_meta_training_did(
    searched: tuple[str, Path], new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]]
) -> None:
    url, _ = searched
    support, query = new_task
    got = engine.adapt(search="fam", support=support, target="y", query=query, steps=5, storage=url)
    strategy, model, info, _ = load_meta_search("fam", storage=url)
    mean, std = np.array(info.input_mean), np.array(info.input_std)

    def standardised(rows: list[dict[str, float | str]]) -> torch.Tensor:
        raw = np.array([[float(r["a"]), float(r["b"])] for r in rows])
        return torch.as_tensor(((raw - mean) / std).astype(np.float32))

    y = torch.tensor([[(float(r["y"]) - info.target_mean) / info.target_std] for r in support])
    expected = strategy.adapt(model, standardised(support), y, 5)(standardised(query)).reshape(-1)
    expected = expected.numpy() * info.target_std + info.target_mean  # back in the target's units
    assert np.allclose(got.predictions, expected, atol=1e-5)
    truth = np.array([float(r["y"]) for r in query])
    mse = float(np.mean((np.array(got.predictions) - truth) ** 2))
    constant = float(np.mean((float(np.mean([float(r["y"]) for r in support])) - truth) ** 2))
    assert mse < 0.2 * constant, (mse, constant)
    arrays = engine.adapt(
        search="fam",
        support=(np.array([[r["a"], r["b"]] for r in support]), np.array([r["y"] for r in support])),
        query=np.array([[r["a"], r["b"]] for r in query]),
        steps=5,
        storage=url,
    )
    assert np.allclose(arrays.predictions, got.predictions, atol=1e-6)


def test_a_regression_target_in_large_units_is_learned_standardised_and_predicted_in_its_units(
    tmp_path: Path,
) -> None:
    # before: raw targets of a few hundred made every MAML trial's loss overflow ("the objective's value
    # is inf"), so a csv family of sales or prices could not be meta-trained at all
    rng = np.random.default_rng(2)
    rows = [
        {"task": f"t{t}", "a": a, "b": b, "y": 1000 + 300 * (t + 1) * a + 50 * b}
        for t in range(6)
        for a, b in rng.normal(size=(12, 2))
    ]
    _write(tmp_path / "sales.csv", rows)
    spec = {
        "search": {"name": "sales", "mode": "meta", "n_trials": 2, "seed": 0},
        "family": {"name": "csv", "path": str(tmp_path / "sales.csv"), "task_column": "task", "target": "y"}
        | {"k_shot": 2, "k_query": 2},
        "meta": {"strategies": ["maml"], "iterations": 4, "checkpoints": 1, "meta_batch": [2]}
        | {"val_tasks": 4, "test_tasks": 4, "steps": [0, 1]},
    }
    url = f"sqlite:///{tmp_path / 'sales.db'}"
    assert engine.run(SearchSpec.from_dict(spec), storage=url).trials_run == 2
    info = load_meta_search("sales", storage=url)[2]
    assert 500 < info.target_mean < 1500 and info.target_std > 100
    support, query = (
        [{k: v for k, v in r.items() if k != "task"} for r in part] for part in (rows[:4], rows[4:8])
    )
    got = engine.adapt(search="sales", support=support, target="y", query=query, steps=1, storage=url)
    assert abs(float(np.mean(got.predictions)) - info.target_mean) < 5 * info.target_std


def test_columns_are_matched_by_name_in_any_order(
    searched: tuple[str, Path], new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]]
) -> None:
    url, _ = searched
    support, query = new_task
    got = engine.adapt(search="fam", support=support, target="y", query=query, steps=5, storage=url)
    flipped = engine.adapt(
        search="fam",
        support=[{"y": r["y"], "b": r["b"], "a": r["a"]} for r in support],
        target="y",
        query=[{"b": r["b"], "a": r["a"]} for r in query],
        steps=5,
        storage=url,
    )
    assert np.allclose(flipped.predictions, got.predictions, atol=1e-6)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ([{"foo": 1.0, "bar": 100.0}], ["missing column(s) ['a', 'b']", "extra column(s) ['foo', 'bar']"]),
        ([{"a": 1.0}], ["missing column(s) ['b']"]),
        ([{"a": 1.0, "b": 100.0, "c": 2.0}], ["extra column(s) ['c']"]),
    ],
)
def test_a_query_with_other_columns_is_refused_naming_them(
    searched: tuple[str, Path],
    new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]],
    query: list[dict[str, float]],
    words: list[str],
) -> None:
    with pytest.raises(TaskDataError) as caught:
        engine.adapt(search="fam", support=new_task[0], target="y", query=query, storage=searched[0])
    assert str(caught.value).startswith("query: ") and all(w in str(caught.value) for w in words)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"a": "x"}, ["missing column(s) ['a']", "extra column(s) ['x']", "['a', 'b']"]),
        ({"task": "task"}, ["extra column(s) ['task']"]),
    ],
)
def test_a_support_with_columns_other_than_the_familys_is_refused_naming_them(
    searched: tuple[str, Path],
    new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]],
    change: dict[str, str],
    words: list[str],
) -> None:
    support = [
        {change.get(k, k): v for k, v in r.items()} | ({"task": "new"} if "task" in change else {})
        for r in new_task[0]
    ]
    with pytest.raises(TaskDataError) as caught:
        engine.adapt(search="fam", support=support, target="y", storage=searched[0])
    assert str(caught.value).startswith("support: ") and all(w in str(caught.value) for w in words)


def test_a_step_count_beyond_what_a_spec_may_ask_is_refused_before_adapting(
    searched: tuple[str, Path],
    new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]],
    tmp_path: Path,
) -> None:
    # before: --steps 100000000 ran for hours without a word (a spec's [meta] steps stops at 10000)
    url, _ = searched
    for steps in (100_000_000, -1):
        with pytest.raises(TaskDataError, match=r"steps must be an integer from 0 to 10000"):
            engine.adapt(search="fam", support=new_task[0], target="y", steps=steps, storage=url)
    sup = _write(tmp_path / "sup.csv", new_task[0])
    args = ["adapt", "--search", "fam", "--storage", url, "--support", str(sup), "--target", "y"]
    result = CliRunner().invoke(cli, [*args, "--steps", "100000000"])
    assert result.exit_code == 2 and "0<=x<=10000" in result.output, result.output


def test_a_cell_that_python_reads_as_a_number_but_the_csv_source_does_not_is_refused(
    searched: tuple[str, Path],
    new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]],
) -> None:
    # before: '1_00' was read as 100 and '１' (a full-width digit) as 1, silently
    url, _ = searched
    support = new_task[0]
    for cell in ("1_00", "\uff11"):
        for column, where in (("b", "column 'b' of row 1"), ("y", "target 'y' must be numeric")):
            rows = [{**support[0], column: cell}, *support[1:]]
            with pytest.raises(TaskDataError, match=where):
                engine.adapt(search="fam", support=rows, target="y", storage=url)


def test_the_command_line_predicts_from_raw_csv_rows_with_reordered_query_columns(
    searched: tuple[str, Path],
    new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]],
    tmp_path: Path,
) -> None:
    url, _ = searched
    support, query = new_task
    sup = _write(tmp_path / "sup.csv", support)
    q = _write(tmp_path / "q.csv", query, ["b", "a"])
    out = tmp_path / "out.csv"
    args = ["adapt", "--search", "fam", "--storage", url, "--support", str(sup), "--target", "y"]
    done = CliRunner().invoke(cli, [*args, "--query", str(q), "--steps", "5", "--out", str(out)])
    assert done.exit_code == 0, done.output
    lines = out.read_text().splitlines()
    assert lines[0] == "prediction" and len(lines) == 1 + len(query)
    api = engine.adapt(search="fam", support=support, target="y", query=query, steps=5, storage=url)
    assert np.allclose([float(v) for v in lines[1:]], api.predictions, atol=1e-5)
    as_json = CliRunner().invoke(cli, [*args, "--query", str(q), "--steps", "5", "--json"])
    assert json.loads(as_json.stdout)["predictions"] == pytest.approx(api.predictions, abs=1e-5)


def test_the_command_line_refuses_duplicate_column_names_naming_file_and_column(
    searched: tuple[str, Path], tmp_path: Path
) -> None:
    dup, ok = tmp_path / "dup.csv", tmp_path / "ok.csv"
    dup.write_text("a,a,y\n1,100,3\n0,90,0\n")
    ok.write_text("a,b,y\n1,100,3\n0,90,0\n")
    args = ["adapt", "--search", "fam", "--storage", searched[0], "--target", "y"]
    for extra in (["--support", str(dup)], ["--support", str(ok), "--query", str(dup)]):
        done = CliRunner().invoke(cli, [*args, *extra])
        assert done.exit_code == 2 and "Traceback" not in done.output
        assert "dup.csv" in done.stderr and "'a'" in done.stderr and len(done.stderr.splitlines()) == 1


def test_an_out_path_in_a_missing_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    sup = tmp_path / "sup.csv"
    sup.write_text("a,b,y\n1,100,3\n")
    missing = tmp_path / "nowhere" / "o.csv"
    args = ["adapt", "--search", "no-such-search", "--storage", f"sqlite:///{tmp_path / 'x.db'}"]
    done = CliRunner().invoke(cli, [*args, "--support", str(sup), "--target", "y", "--out", str(missing)])
    assert done.exit_code == 2
    assert done.stderr.startswith("Error: --out") and "does not exist" in done.stderr
    assert len(done.stderr.splitlines()) == 1 and not (tmp_path / "x.db").exists()


def test_theta_kept_without_its_standardisation_is_refused(searched: tuple[str, Path]) -> None:
    url, _ = searched
    best = engine.meta_best(storage=url, search="fam")[0]
    path = Path(str(best.artifacts), str(best.artifact_id))
    original = path.read_bytes()
    tensors, metadata = load_weights(path)
    record = json.loads(metadata["stratagem.meta"])
    for key in ("input_columns", "input_mean", "input_std"):
        del record["family"][key]  # as kept before the family's standardisation was saved with θ
    try:
        save_weights(path, tensors, {"stratagem.meta": json.dumps(record)})
        with pytest.raises(StratagemError, match="without the standardisation family 'csv' applies"):
            engine.adapt(search="fam", support=[{"a": 1.0, "b": 100.0, "y": 3.0}], target="y", storage=url)
    finally:
        path.write_bytes(original)


@pytest.mark.parametrize(
    ("header", "row", "words"),
    [
        ("task,a,a,y", "t{t},1,2,3", ["['a'] more than once"]),
        ("task,a,b,y", "t{t},nan,2,3", ["column 'a' is 'nan'"]),
        ("task,a,b,y", "t{t},1,2", ["has 3 fields but the header has 4"]),
    ],
)
def test_the_csv_family_refuses_duplicate_columns_and_non_finite_or_missing_values(
    tmp_path: Path, header: str, row: str, words: list[str]
) -> None:
    lines = [header] + [f"t{t},{i},{i},{i}" for t in range(4) for i in range(3)]
    lines.append(row.format(t=0))
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FamilyError) as caught:
        CsvFamily(str(path), task_column="task", target="y").info()
    assert caught.value.key == "path" and all(w in str(caught.value) for w in words)


@pytest.mark.parametrize("value", [1e300, -1e31, float("inf")])
def test_values_beyond_1e30_are_refused_naming_row_and_column(
    searched: tuple[str, Path],
    new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]],
    tmp_path: Path,
    value: float,
) -> None:
    url, _ = searched
    support = new_task[0]
    bad = [dict(r) for r in support]
    bad[2]["b"] = value
    with pytest.raises(TaskDataError, match=r"^support: row 3, column 'b': .* fix the value"):
        engine.adapt(search="fam", support=bad, target="y", storage=url)
    with pytest.raises(TaskDataError, match=r"^query: row 3, column 'b'"):
        engine.adapt(search="fam", support=support, target="y", query=bad, storage=url)
    args = ["adapt", "--search", "fam", "--storage", url, "--target", "y"]
    done = CliRunner().invoke(cli, [*args, "--support", str(_write(tmp_path / "sup.csv", bad))])
    assert done.exit_code == 2 and done.stderr.startswith("Error: support: row 3, column 'b'"), done.output
    assert len(done.stderr.splitlines()) == 1


def test_a_support_row_without_a_target_value_is_refused_naming_it(
    searched: tuple[str, Path],
    new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]],
    tmp_path: Path,
) -> None:
    url, _ = searched
    support = [dict(r) for r in new_task[0]]
    support[1]["y"] = ""
    with pytest.raises(TaskDataError, match=r"^support: row 2 has no value in target column 'y'"):
        engine.adapt(search="fam", support=support, target="y", storage=url)
    args = ["adapt", "--search", "fam", "--storage", url, "--target", "y"]
    done = CliRunner().invoke(cli, [*args, "--support", str(_write(tmp_path / "sup.csv", support))])
    assert done.exit_code == 2 and "row 2 has no value in target column 'y'" in done.stderr, done.output


def test_support_rows_given_as_a_tuple_are_rows_not_an_x_y_pair(
    searched: tuple[str, Path],
    new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]],
) -> None:
    url, _ = searched
    support, query = new_task
    as_list = engine.adapt(search="fam", support=support, target="y", query=query, storage=url)
    as_tuple = engine.adapt(search="fam", support=tuple(support), target="y", query=query, storage=url)
    assert as_tuple.predictions == as_list.predictions
    with pytest.raises(TaskDataError, match=r"an \(X, y\) pair, got a tuple of 3"):
        engine.adapt(search="fam", support=([[0.0]], [1.0], [2.0]), target="y", storage=url)  # type: ignore[arg-type]


def test_rows_from_a_generator_are_read_and_one_row_or_a_string_is_refused(
    searched: tuple[str, Path],
    new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]],
) -> None:
    url, _ = searched
    support, query = new_task
    listed = engine.adapt(search="fam", support=support, target="y", query=query, steps=2, storage=url)
    generated = engine.adapt(
        search="fam", support=(r for r in support), target="y", query=iter(query), steps=2, storage=url
    )
    assert generated.predictions == listed.predictions
    with pytest.raises(TaskDataError, match=r"^support: one row \(a mapping\) given; give a list of rows"):
        engine.adapt(search="fam", support=support[0], target="y", storage=url)
    with pytest.raises(
        TaskDataError, match=r"^query: give a list of rows \(mappings\) or an array, got 'a,b'"
    ):
        engine.adapt(search="fam", support=support, target="y", query="a,b", storage=url)


def test_adapt_never_writes_over_its_own_input_or_the_database(
    searched: tuple[str, Path],
    new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]],
    tmp_path: Path,
) -> None:
    url, folder = searched
    sup, query = _write(tmp_path / "sup.csv", new_task[0]), _write(tmp_path / "q.csv", new_task[1])
    before = sup.read_text(), query.read_text()
    args = ["adapt", "--search", "fam", "--storage", url, "--target", "y", "--support", str(sup)]
    for extra, out, words in (
        ([], sup, "--out '{}' is the --support file"),
        (["--query", str(query)], query, "--out '{}' is the --query file"),
        ([], folder / "meta.db", "--out '{}' is the database of --storage"),
    ):
        done = CliRunner().invoke(cli, [*args, *extra, "--out", str(out)])
        assert done.exit_code == 2 and words.format(out) in done.stderr, done.output
    assert (sup.read_text(), query.read_text()) == before
    assert engine.meta_best(search="fam", storage=url)


@pytest.fixture(scope="module")
def three_way(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A MAML search on a 3-way csv family: θ has a 3-way head."""
    folder = tmp_path_factory.mktemp("adapt_three_way")
    rng = np.random.default_rng(0)
    lines = ["patient,x1,x2,label"]
    for t in range(8):
        for i in range(30):
            c = i % 3
            x1, x2 = rng.normal(size=2) + 2 * c
            lines.append(f"p{t},{x1:.3f},{x2:.3f},{'ABC'[c]}")
    (folder / "fam.csv").write_text("\n".join(lines) + "\n")
    spec = {
        "search": {"name": "cm", "mode": "meta", "n_trials": 1, "seed": 0},
        "family": {
            "name": "csv",
            "path": str(folder / "fam.csv"),
            "task_column": "patient",
            "target": "label",
        }
        | {"kind": "classification", "n_way": 3, "k_shot": 2, "k_query": 3},
        "meta": {"strategies": ["maml"], "iterations": 20, "checkpoints": 1, "val_tasks": 5, "test_tasks": 5}
        | {"steps": [0, 1]},
    }
    url = f"sqlite:///{folder / 'meta.db'}"
    engine.run(SearchSpec.from_dict(spec), storage=url)
    return url


def test_a_support_with_fewer_labels_than_the_head_predicts_only_its_own_labels(three_way: str) -> None:
    rng = np.random.default_rng(3)
    query = [{"x1": float(a), "x2": float(b)} for a, b in rng.normal(size=(40, 2)) * 3 + 2]
    for labels in (["7", "7"], ["7", "9"]):
        support = [{"x1": 0.8, "x2": 0.7, "label": labels[0]}, {"x1": 3.1, "x2": 2.2, "label": labels[1]}]
        for steps in (0, 1):
            got = engine.adapt(
                search="cm", support=support, target="label", query=query, steps=steps, storage=three_way
            )
            # θ's third output belongs to no support label: it is never a prediction
            assert set(got.predictions) <= set(labels), got.predictions


def test_an_x_y_support_pair_needs_one_label_per_row(three_way: str) -> None:
    X = [[0.8, 0.7], [3.1, 2.2], [0.5, 0.1]]
    with pytest.raises(
        TaskDataError, match=r"^support: y must hold one target per row \(1-D\), got shape \(3, 2\)"
    ):
        engine.adapt(search="cm", support=(X, [[1, 2], [3, 4], [5, 6]]), storage=three_way)
    for missing in (float("nan"), None, " "):
        with pytest.raises(TaskDataError, match=r"^support: row 2 has no label"):
            engine.adapt(search="cm", support=(X, ["a", missing, "b"]), storage=three_way)
    with pytest.raises(TaskDataError, match=r"^support: row 2 has no label"):
        rows = [
            {"x1": x1, "x2": x2, "label": y} for (x1, x2), y in zip(X, ["a", float("nan"), "b"], strict=True)
        ]
        engine.adapt(search="cm", support=rows, target="label", storage=three_way)
    column = engine.adapt(search="cm", support=(X, [["a"], ["b"], ["a"]]), storage=three_way)
    assert set(column.predictions) <= {"a", "b"}  # a column vector of labels is one label per row


def test_a_regression_target_beyond_1e30_is_refused_without_an_overflow_warning(
    searched: tuple[str, Path],
    new_task: tuple[list[dict[str, float | str]], list[dict[str, float | str]]],
) -> None:
    url, _ = searched
    support = [dict(r) for r in new_task[0]]
    support[0]["y"] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TaskDataError, match=r"^support: target 'y' must lie within ±1e\+30"):
            engine.adapt(search="fam", support=support, target="y", storage=url)
