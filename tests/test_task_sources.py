"""Specification of the built-in task sources (plugins.tasks) and of fingerprints and splits."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plugins.tasks
from engine.errors import TaskDataError
from engine.plugin.host import PluginHost
from engine.task import Dataset, fingerprint, make_split
from plugins.tasks import CsvSource, SklearnSource, SyntheticSource

# ------------------------------------------------------------------------------------------ registration


def test_the_plugin_module_registers_all_three_sources_under_its_own_name() -> None:
    host = PluginHost()
    host.register_module(plugins.tasks, "plugins.tasks", "0", "builtin")
    host.collect()

    assert host.problems == []
    assert sorted(host.task_sources.names()) == ["csv", "sklearn", "synthetic"]
    assert isinstance(host.task_sources.get("csv"), CsvSource)
    assert isinstance(host.task_sources.get("sklearn"), SklearnSource)
    assert isinstance(host.task_sources.get("synthetic"), SyntheticSource)
    assert host.task_sources.plugin_of("csv") == "plugins.tasks"


def test_every_declared_option_has_help_and_no_source_declares_engine_keys() -> None:
    for source in (SklearnSource(), CsvSource(), SyntheticSource()):
        assert source.description
        assert "source" not in source.options and "name" not in source.options
        for key, option in source.options.items():
            assert option.help, f"{source.name}.{key} has no help text"


# --------------------------------------------------------------------------------------------- sklearn


@pytest.mark.parametrize(
    ("dataset", "kind", "shape", "n_classes"),
    [
        ("iris", "classification", (150, 4), 3),
        ("wine", "classification", (178, 13), 3),
        ("breast_cancer", "classification", (569, 30), 2),
        ("digits", "classification", (1797, 64), 10),
        ("diabetes", "regression", (442, 10), 0),
    ],
)
def test_each_bundled_dataset_loads_with_its_kind_shape_and_classes(
    dataset: str, kind: str, shape: tuple[int, int], n_classes: int
) -> None:
    source = SklearnSource()
    data = source.load({"dataset": dataset}, Path("."))

    assert data.name == dataset == source.default_name({"dataset": dataset})
    assert data.kind == kind
    assert data.X.shape == shape
    assert data.n_classes == n_classes
    assert len(data.class_names) == n_classes
    assert len(data.feature_names) == shape[1]


def test_iris_keeps_its_class_and_feature_names() -> None:
    data = SklearnSource().load({"dataset": "iris"}, Path("."))

    assert data.class_names == ("setosa", "versicolor", "virginica")
    assert data.feature_names[0] == "sepal length (cm)"


def test_an_unknown_bundled_dataset_is_refused_with_the_valid_names() -> None:
    with pytest.raises(TaskDataError, match=r"unknown dataset 'boston'.*iris, wine, breast_cancer, digits"):
        SklearnSource().load({"dataset": "boston"}, Path("."))


# ----------------------------------------------------------------------------- fingerprints and splits


def test_a_fingerprint_is_stable_across_loads_and_ignores_the_name() -> None:
    first = SklearnSource().load({"dataset": "wine"}, Path("."))
    second = SklearnSource().load({"dataset": "wine"}, Path("."))
    renamed = Dataset("other", first.X, first.y, first.kind)

    assert fingerprint(first) == fingerprint(second) == fingerprint(renamed)


def test_a_fingerprint_changes_when_one_value_or_the_kind_changes() -> None:
    data = SklearnSource().load({"dataset": "diabetes"}, Path("."))
    X = data.X.copy()
    X[7, 3] += 1e-9
    y = data.y.copy()
    y[0] += 1.0

    assert fingerprint(Dataset("d", X, data.y, "regression")) != fingerprint(data)
    assert fingerprint(Dataset("d", data.X, y, "regression")) != fingerprint(data)
    binary = SklearnSource().load({"dataset": "breast_cancer"}, Path("."))
    as_regression = Dataset("b", binary.X, binary.y.astype(float), "regression")
    assert fingerprint(as_regression) != fingerprint(binary)


def test_a_split_is_disjoint_covers_every_row_and_repeats_with_its_seed() -> None:
    data = SklearnSource().load({"dataset": "diabetes"}, Path("."))
    split = make_split(data, seed=3)
    again = make_split(data, seed=3)
    other = make_split(data, seed=4)

    parts = [split.train, split.validation, split.test]
    assert sorted(np.concatenate(parts).tolist()) == list(range(data.n_samples))
    assert [len(p) for p in parts] == [264, 89, 89]
    assert all(
        np.array_equal(a, b) for a, b in zip(parts, [again.train, again.validation, again.test], strict=True)
    )
    assert not np.array_equal(split.test, other.test)


def test_a_classification_split_keeps_the_class_proportions_in_every_part() -> None:
    data = SklearnSource().load({"dataset": "iris"}, Path("."))
    split = make_split(data, seed=0)

    for part in (split.train, split.validation, split.test):
        counts = np.bincount(data.y[part], minlength=3)
        assert counts.max() - counts.min() <= 1


# ------------------------------------------------------------------------------------------------- csv


def write_csv(folder: Path, text: str, name: str = "table.csv") -> Path:
    path = folder / name
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


def load_csv(path: Path | str, base_dir: Path, **options: Any) -> Dataset:
    return CsvSource().load({"path": str(path), **options}, base_dir)


def rows(template: str, count: int) -> str:
    """``count`` lines made from ``template`` formatted with the row number ``i``."""
    return "".join(template.format(i=i) + "\n" for i in range(count))


def test_string_class_labels_become_sorted_codes_with_their_names_kept(tmp_path: Path) -> None:
    labels = ["dog", "cat", "emu"] * 4
    text = "size,weight,animal\n" + "".join(f"{i},{i * 2 % 7},{label}\n" for i, label in enumerate(labels))
    data = load_csv(write_csv(tmp_path, text), tmp_path, target="animal")

    assert data.kind == "classification"
    assert data.class_names == ("cat", "dog", "emu")
    assert data.y[:3].tolist() == [1, 0, 2]
    assert data.feature_names == ("size", "weight")
    assert data.X.shape == (12, 2)
    assert data.name == "table"


def test_a_numeric_target_with_many_values_is_detected_as_regression(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,price\n" + rows("{i},{i}.5,{i}0.25", 30))
    data = load_csv(path, tmp_path, target="price")

    assert data.kind == "regression"
    assert data.y[3] == pytest.approx(30.25)
    assert "detected" in data.description


def test_a_whole_number_target_with_few_values_is_detected_as_classification(tmp_path: Path) -> None:
    text = "a,grade\n" + "".join(f"{i},{[3, 10, 7][i % 3]}\n" for i in range(30))
    data = load_csv(write_csv(tmp_path, text), tmp_path, target="grade")

    assert data.kind == "classification"
    assert data.class_names == ("3", "7", "10")  # numeric order, not string order
    assert data.y[:3].tolist() == [0, 2, 1]


def test_a_target_with_two_values_is_classification_even_when_not_whole_numbers(tmp_path: Path) -> None:
    text = "a,flag\n" + "".join(f"{i},{0.5 if i % 2 else -1.5}\n" for i in range(12))
    data = load_csv(write_csv(tmp_path, text), tmp_path, target="flag")

    assert data.kind == "classification"
    assert data.class_names == ("-1.5", "0.5")


def test_a_whole_number_target_with_too_few_rows_per_value_is_regression(tmp_path: Path) -> None:
    text = "a,count\n" + "".join(f"{i},{i % 8}\n" for i in range(12))  # 8 values on 12 rows
    data = load_csv(write_csv(tmp_path, text), tmp_path, target="count")

    assert data.kind == "regression"


def test_an_explicit_kind_overrides_detection(tmp_path: Path) -> None:
    text = "a,grade\n" + "".join(f"{i},{i % 3}\n" for i in range(30))
    path = write_csv(tmp_path, text)

    assert load_csv(path, tmp_path, target="grade").kind == "classification"
    data = load_csv(path, tmp_path, target="grade", kind="regression")
    assert data.kind == "regression"
    assert "given" in data.description
    assert data.y.dtype == np.float64


def test_regression_on_a_non_numeric_target_is_refused_naming_the_value(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,label\n" + rows("{i},yes", 6) + rows("{i},no", 6))

    with pytest.raises(TaskDataError, match=r"non-numeric value 'yes'.*kind = 'classification'"):
        load_csv(path, tmp_path, target="label", kind="regression")


def test_categorical_feature_columns_are_one_hot_encoded(tmp_path: Path) -> None:
    colors = ["red", "blue", "green"]
    text = "color,size,y\n" + "".join(f"{colors[i % 3]},{i},{i * 1.5}\n" for i in range(12))
    data = load_csv(write_csv(tmp_path, text), tmp_path, target="y", kind="regression")

    assert data.feature_names == ("color=blue", "color=green", "color=red", "size")
    assert data.X[:3, :3].tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert data.X[:, 3].tolist() == list(range(12))


def test_a_categorical_column_with_too_many_levels_is_refused_suggesting_drop(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "customer,size,y\n" + rows("c{i},{i},{i}.5", 60))

    with pytest.raises(TaskDataError, match=r"column 'customer' is not numeric and has 60 distinct.*drop"):
        load_csv(path, tmp_path, target="y")


def test_drop_ignores_the_named_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "id,customer,size,y\n" + rows("{i},c{i},{i},{i}.5", 60))
    data = load_csv(path, tmp_path, target="y", drop=["id", "customer"])

    assert data.feature_names == ("size",)


def test_drop_naming_an_unknown_column_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,y\n" + rows("{i},{i}.5", 12))

    with pytest.raises(TaskDataError, match=r"drop names unknown columns \['ID'\]; its columns are 'a', 'y'"):
        load_csv(path, tmp_path, target="y", drop=["ID"])


def test_rows_with_missing_values_are_dropped_by_default(tmp_path: Path) -> None:
    text = "a,b,y\n" + rows("{i},{i},{i}.5", 12) + "1,,3.5\n" + "NA,2,4.5\n" + "5,6,?\n"
    data = load_csv(write_csv(tmp_path, text), tmp_path, target="y")

    assert data.n_samples == 12
    assert "3 rows with missing values dropped" in data.description


def test_missing_values_in_a_dropped_column_do_not_count(tmp_path: Path) -> None:
    text = "note,a,y\n" + rows(",{i},{i}.5", 12)
    data = load_csv(write_csv(tmp_path, text), tmp_path, target="y", drop=["note"], missing="error")

    assert data.n_samples == 12


def test_missing_error_refuses_naming_the_columns_with_gaps_and_the_row_count(tmp_path: Path) -> None:
    text = "a,b,y\n" + rows("{i},{i},{i}.5", 12) + "1,,3.5\n" + "2,n/a,4.5\n" + ",6,4\n"

    with pytest.raises(TaskDataError) as caught:
        load_csv(write_csv(tmp_path, text), tmp_path, target="y", missing="error")
    message = str(caught.value)
    assert "3 of 15 rows have missing values" in message
    assert "'a' (1), 'b' (2)" in message
    assert "'y'" not in message.split("per column:")[1]


def test_dropping_more_than_half_of_the_rows_is_refused(tmp_path: Path) -> None:
    text = "a,sparse,y\n" + rows("{i},,{i}.5", 8) + rows("{i},{i},{i}.5", 6)

    with pytest.raises(TaskDataError, match=r"8 of 14 rows.*'sparse' \(8\).*more than half"):
        load_csv(write_csv(tmp_path, text), tmp_path, target="y")


def test_a_missing_file_is_refused_with_its_resolved_path(tmp_path: Path) -> None:
    with pytest.raises(TaskDataError, match="does not exist") as caught:
        load_csv("data/absent.csv", tmp_path, target="y")
    assert str(tmp_path / "data" / "absent.csv") in str(caught.value)


def test_a_relative_path_resolves_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    write_csv(tmp_path / "data", "a,y\n" + rows("{i},{i}.5", 12), name="houses.csv")
    data = load_csv("data/houses.csv", tmp_path, target="y")

    assert data.name == "houses"
    assert CsvSource().default_name({"path": "data/houses.csv"}) == "houses"


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TaskDataError, match="is empty"):
        load_csv(write_csv(tmp_path, "\n\n"), tmp_path, target="y")


def test_a_header_without_rows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TaskDataError, match="header row but no data rows"):
        load_csv(write_csv(tmp_path, "a,y\n"), tmp_path, target="y")


def test_fewer_than_ten_rows_are_refused_saying_why_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TaskDataError, match=r"has 6 row\(s\); a task needs at least 10 .*: add rows"):
        load_csv(write_csv(tmp_path, "a,y\n" + rows("{i},{i}.5", 6)), tmp_path, target="y")


def test_a_missing_target_column_is_refused_listing_the_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,label\n" + rows("{i},{i},x", 12))

    with pytest.raises(TaskDataError, match=r"no target column 'class'; its columns are 'a', 'b', 'label'"):
        load_csv(path, tmp_path, target="class")


def test_a_wrong_delimiter_is_hinted_at_when_the_target_is_not_found(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a;y\n" + rows("{i};{i}.5", 12))

    with pytest.raises(TaskDataError, match="single column, so is the delimiter ',' right"):
        load_csv(path, tmp_path, target="y")
    assert load_csv(path, tmp_path, target="y", delimiter=";").n_samples == 12


def test_a_class_with_a_single_row_is_refused_naming_it(tmp_path: Path) -> None:
    text = "a,label\n" + rows("{i},cat", 6) + rows("{i},dog", 6) + "99,yak\n"

    with pytest.raises(TaskDataError, match=r"1 class\(es\) of target 'label' have a single row: 'yak'"):
        load_csv(write_csv(tmp_path, text), tmp_path, target="label")


def test_a_constant_target_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,label\n" + rows("{i},cat", 12))

    with pytest.raises(TaskDataError, match="single class 'cat'"):
        load_csv(path, tmp_path, target="label")


def test_only_constant_features_are_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,y\n" + rows("1,x,{i}.5", 12))

    with pytest.raises(TaskDataError, match="every feature column has the same value"):
        load_csv(path, tmp_path, target="y")


def test_a_target_without_feature_columns_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "id,y\n" + rows("{i},{i}.5", 12))

    with pytest.raises(TaskDataError, match="no feature columns are left"):
        load_csv(path, tmp_path, target="y", drop=["id"])


def test_a_row_with_the_wrong_number_of_fields_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,y\n" + rows("{i},{i}.5", 4) + "5,6,7\n" + rows("{i},{i}.5", 8))

    with pytest.raises(TaskDataError, match="line 6 has 3 fields but the header has 2"):
        load_csv(path, tmp_path, target="y")


def test_a_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_bytes(b"a,y\n\xff\xfe\x00\x81,1\n")

    with pytest.raises(TaskDataError, match="is not UTF-8 text"):
        load_csv(path, tmp_path, target="y")


def test_quoted_fields_and_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    body = 'city,"area, km2",y\n' + rows('"New York, NY",{i},{i}.5', 6) + rows("Oslo,{i},{i}.25", 6)
    path.write_text("\ufeff" + body, encoding="utf-8")
    data = load_csv(path, tmp_path, target="y")

    assert data.feature_names == ("city=New York, NY", "city=Oslo", "area, km2")


def test_numeric_class_labels_are_kept_as_written_in_numeric_order(tmp_path: Path) -> None:
    def classes(*labels: str) -> tuple[str, ...]:
        text = "a,label\n" + "".join(f"{i},{labels[i % len(labels)]}\n" for i in range(6 * len(labels)))
        data = load_csv(write_csv(tmp_path, text), tmp_path, target="label")
        assert data.kind == "classification"
        return data.class_names

    assert classes("1.10", "1.1") == ("1.1", "1.10")  # one number, two labels
    assert classes("010", "007", "3") == ("3", "007", "010")  # zeros kept, numeric order
    assert classes("12345678901234568", "12345678901234567") == ("12345678901234567", "12345678901234568")
    assert classes("2.0", "10.0") == ("2.0", "10.0")  # not '2' and '10'


def test_a_cell_with_an_underscore_is_text_not_a_number(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "code,size,y\n" + rows("{i}_1,{i},{i}.5", 12))
    data = load_csv(path, tmp_path, target="y", kind="regression")

    assert data.feature_names[0] == "code=0_1"  # float() would read '0_1' as 1
    assert data.X.shape == (12, 13)


def test_a_numeric_column_with_a_few_stray_cells_is_refused_naming_them_and_their_lines(
    tmp_path: Path,
) -> None:
    cells = [f"{i * 0.37:.2f}" for i in range(60)]
    cells[4], cells[17] = "x", "-"
    path = write_csv(tmp_path, "a,b,y\n" + "".join(f"{c},{i},{i}.5\n" for i, c in enumerate(cells)))

    with pytest.raises(TaskDataError) as caught:
        load_csv(path, tmp_path, target="y")
    message = str(caught.value)
    assert "column 'a' holds numbers except in 2 of its 60 cells: 'x' (line 6), '-' (line 19)" in message
    assert "empty them to mark them missing" in message and "\n" not in message


def test_numbers_with_a_decimal_comma_are_refused_saying_so(tmp_path: Path) -> None:
    text = "a;b;y\n" + "".join(f"{i},{i % 7}3;{i};{i}.5\n" for i in range(60))
    path = write_csv(tmp_path, text)

    with pytest.raises(TaskDataError, match=r"column 'a' holds numbers written with a decimal comma: '0,03'"):
        load_csv(path, tmp_path, target="y", delimiter=";")
    one = write_csv(tmp_path, "a;y\n" + rows("{i};{i}.5", 59) + "0,13;7.5\n", name="one.csv")
    with pytest.raises(TaskDataError, match=r"'0,13' \(line 61\); they look like .* decimal comma"):
        load_csv(one, tmp_path, target="y", delimiter=";")


def test_a_word_beside_a_few_whole_numbers_is_still_a_category(tmp_path: Path) -> None:
    rooms = ["1", "2", "3", "2", "1", "many"]
    text = "rooms,y\n" + "".join(f"{rooms[i % 6]},{i}.5\n" for i in range(60))
    data = load_csv(write_csv(tmp_path, text), tmp_path, target="y")

    assert data.feature_names == ("rooms=1", "rooms=2", "rooms=3", "rooms=many")


def test_a_numeric_target_with_a_stray_word_is_refused_naming_it(tmp_path: Path) -> None:
    values = [f"{i * 1.7:.1f}" for i in range(60)]
    values[12] = "twelve"
    path = write_csv(tmp_path, "a,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))

    with pytest.raises(TaskDataError) as caught:
        load_csv(path, tmp_path, target="y")
    message = str(caught.value)
    assert "target column 'y' holds numbers except in 1 of its 60 cells: 'twelve' (line 14)" in message
    assert "single row" not in message and "kind = 'classification'" in message
    with pytest.raises(TaskDataError, match=r"non-numeric value 'twelve' \(line 14\); correct"):
        load_csv(path, tmp_path, target="y", kind="regression")
    assert (
        load_csv(write_csv(tmp_path, "a,y\n" + rows("{i},{i}.5", 12)), tmp_path, target="y").n_samples == 12
    )


def test_a_minus_nan_cell_is_missing_not_infinite(tmp_path: Path) -> None:
    text = "a,y\n" + rows("{i},{i}.5", 12) + "3,-nan\n" + "+NaN,4.5\n"
    data = load_csv(write_csv(tmp_path, text), tmp_path, target="y")

    assert data.n_samples == 12
    assert "2 rows with missing values dropped" in data.description
    infinite = write_csv(tmp_path, "a,y\n" + rows("{i},{i}.5", 12) + "-inf,4.5\n", name="inf.csv")
    with pytest.raises(TaskDataError, match=r"column 'a' has the infinite value '-inf' \(line 14\)"):
        load_csv(infinite, tmp_path, target="y")


def test_dropped_rows_are_a_warning_naming_the_file_the_count_the_option_and_lost_classes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = "a,b,animal\n" + rows("{i},{i},cat", 6) + rows("{i},{i},dog", 6) + "1,,yak\n2,NA,yak\n"
    path = write_csv(tmp_path, text)
    with caplog.at_level(logging.WARNING, logger="stratagem"):
        data = load_csv(path, tmp_path, target="animal")

    assert data.class_names == ("cat", "dog")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and str(path) in record.getMessage()
    assert "dropped 2 of 14 rows for missing values (per column: 'b' (2))" in record.getMessage()
    assert "class(es) 'yak' lost every row" in record.getMessage()
    assert "missing = 'error'" in record.getMessage()
    caplog.clear()
    load_csv(write_csv(tmp_path, "a,y\n" + rows("{i},{i}.5", 12), name="full.csv"), tmp_path, target="y")
    assert caplog.records == []


def test_a_misspelt_target_or_drop_column_gets_a_suggestion(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "a,b,label\n" + rows("{i},{i},x", 12))

    with pytest.raises(
        TaskDataError, match=r"no target column 'lable'; its columns .*; did you mean 'label'\?"
    ):
        load_csv(path, tmp_path, target="lable")
    with pytest.raises(TaskDataError, match=r"unknown columns \['Lable'\].*; did you mean 'label'\?"):
        load_csv(path, tmp_path, target="a", drop=["Lable"])
    with pytest.raises(TaskDataError) as caught:
        load_csv(path, tmp_path, target="zzz")
    assert "did you mean" not in str(caught.value)


# ------------------------------------------------------------------------------------------- synthetic


def make(options: Mapping[str, Any]) -> Dataset:
    return SyntheticSource().load(options, Path("."))


def test_synthetic_data_is_determined_by_its_seed() -> None:
    first = make({"generator": "classification", "seed": 5})
    again = make({"generator": "classification", "seed": 5})
    other = make({"generator": "classification", "seed": 6})

    assert fingerprint(first) == fingerprint(again)
    assert fingerprint(first) != fingerprint(other)


@pytest.mark.parametrize(
    ("options", "kind", "shape", "n_classes"),
    [
        ({}, "classification", (500, 20), 2),
        (
            {"n_samples": 120, "n_features": 7, "n_classes": 5, "n_informative": 4},
            "classification",
            (120, 7),
            5,
        ),
        ({"generator": "regression", "n_samples": 80, "n_features": 300}, "regression", (80, 300), 0),
        ({"generator": "friedman1", "n_features": 6}, "regression", (500, 6), 0),
        ({"generator": "friedman2"}, "regression", (500, 4), 0),
        ({"generator": "friedman3", "noise": 0.1}, "regression", (500, 4), 0),
        ({"generator": "moons", "n_samples": 50}, "classification", (50, 2), 2),
        ({"generator": "circles"}, "classification", (500, 2), 2),
        ({"generator": "blobs", "n_classes": 6, "n_features": 3}, "classification", (500, 3), 6),
    ],
)
def test_each_generator_makes_tasks_of_the_requested_size_and_classes(
    options: dict[str, Any], kind: str, shape: tuple[int, int], n_classes: int
) -> None:
    data = make(options)

    assert (data.kind, data.X.shape, data.n_classes) == (kind, shape, n_classes)


def test_the_synthetic_default_name_says_generator_options_and_seed() -> None:
    source = SyntheticSource()

    assert source.default_name({"generator": "friedman1", "seed": 3}) == "synthetic-friedman1-3"
    assert source.default_name({}) == "synthetic-classification-0"
    named = source.default_name({"generator": "classification", "n_samples": 900, "n_classes": 4, "seed": 1})
    assert named == "synthetic-classification-n900-k4-1"
    assert make({"n_samples": 40, "seed": 2}).name == "synthetic-classification-n40-2"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"generator": "spirals"}, r"unknown generator 'spirals'; choose one of: classification, regression"),
        ({"generator": "regression", "n_classes": 3}, r"n_classes applies only to generators"),
        ({"generator": "moons", "n_features": 5}, r"always has 2 features"),
        ({"n_samples": 5}, r"n_samples must be a whole number from 10"),
        (
            {"n_classes": 8, "n_informative": 2, "n_features": 5},
            r"n_informative = 2 cannot separate 8 classes",
        ),
        ({"n_informative": 30}, r"n_informative must be a whole number from 1 to 20"),
        ({"noise": 1.5}, r"noise must be between 0 and 1"),
        ({"generator": "friedman1", "n_features": 3}, r"needs n_features >= 5"),
        ({"n_samples": 10, "n_classes": 6}, r"10 rows are too few for 6 classes"),
    ],
)
def test_impossible_synthetic_options_are_refused_with_the_fix(options: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskDataError, match=message):
        make(options)
