"""Task families are seeded, keep their pools apart, and name the key of every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.meta import POOLS, EpisodeBatch, FamilyError
from plugins.meta import CsvFamily, Digits, Sinusoid
from plugins.meta.families import DIGIT_CLASSES, _digit_images


def _draw(
    family: Sinusoid | Digits | CsvFamily, pool: str = "meta_train", seed: int = 0, n: int = 4
) -> EpisodeBatch:
    return family.sample(pool, n, torch.Generator().manual_seed(seed))  # type: ignore[arg-type]


def _same(a: EpisodeBatch, b: EpisodeBatch) -> bool:
    return all(
        torch.equal(getattr(a, f), getattr(b, f)) for f in ("support_x", "support_y", "query_x", "query_y")
    )


@pytest.mark.parametrize("family", [Sinusoid(), Digits()], ids=["sinusoid", "digits"])
def test_draws_are_reproducible_from_the_generator_and_differ_by_seed_and_pool(
    family: Sinusoid | Digits,
) -> None:
    assert _same(_draw(family, seed=1), _draw(family, seed=1))
    assert not _same(_draw(family, seed=1), _draw(family, seed=2))
    assert not _same(_draw(family, "meta_train"), _draw(family, "meta_test"))
    other = type(family)(**{**family.get_params(), "seed": 7})
    assert not _same(_draw(family), _draw(other))


def test_sinusoid_shapes_and_ranges_follow_the_options() -> None:
    family = Sinusoid(amplitude=(1.0, 2.0), x_range=(0.0, 1.0), k_shot=5, k_query=3)
    batch = family.sample("meta_train", 10, torch.Generator().manual_seed(0), query_size=100)
    assert batch.support_x.shape == (10, 5, 1) and batch.query_y.shape == (10, 100, 1)
    assert float(batch.support_x.min()) >= 0.0 and float(batch.support_x.max()) <= 1.0
    assert float(batch.query_y.abs().max()) <= 2.0
    assert family.info().kind == "regression"


def test_digits_pools_partition_the_forty_classes() -> None:
    family = Digits()
    pools = [set(family.pool_classes(p)) for p in POOLS]
    assert [len(p) for p in pools] == [24, 8, 8]
    assert set().union(*pools) == set(range(DIGIT_CLASSES))
    assert not (pools[0] & pools[2]) and not (pools[0] & pools[1]) and not (pools[1] & pools[2])


def test_digits_meta_test_episodes_use_only_meta_test_classes() -> None:
    family = Digits(n_way=5, k_shot=2, k_query=3)
    images = _digit_images()
    owner: dict[bytes, set[int]] = {}
    for c, pics in enumerate(images):
        for pic in pics:
            owner.setdefault(pic.tobytes(), set()).add(c)
    test_classes = set(family.pool_classes("meta_test"))
    batch = _draw(family, "meta_test", n=20)
    for x in torch.cat([batch.support_x, batch.query_x], dim=1).flatten(0, 1):
        assert owner[np.ascontiguousarray(x.numpy()).tobytes()] & test_classes
    assert batch.support_y.shape == (20, 10) and set(batch.query_y.unique().tolist()) == set(range(5))


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"k_shot": 200}, "k_shot"),
        ({"n_way": 9}, "n_way"),
        ({"n_way": 1}, "n_way"),
        ({"train_classes": 30, "val_classes": 10}, "train_classes"),
        ({"k_shot": 0}, "k_shot"),
    ],
)
def test_digits_bad_options_name_their_key(options: dict[str, int], key: str) -> None:
    with pytest.raises(FamilyError) as info:
        _draw(Digits(**options), "meta_test")
    assert info.value.key == key and key in str(info.value)


def test_unknown_pool_and_bad_sinusoid_range_are_named() -> None:
    with pytest.raises(FamilyError, match="pool"):
        Sinusoid().sample("train", 2, torch.Generator())  # type: ignore[arg-type]
    with pytest.raises(FamilyError, match="amplitude"):
        Sinusoid(amplitude=(5.0, 1.0)).info()
    # finite but so large that every squared error overflows: named before any training
    for options, key in (({"amplitude": (0.0, 1e35)}, "amplitude"), ({"x_range": (-1e35, 1e35)}, "x_range")):
        with pytest.raises(FamilyError, match=r"must lie within ±1e\+06") as info:
            Sinusoid(**options).sample("meta_train", 1, torch.Generator())  # type: ignore[arg-type]
        assert info.value.key == key
    with pytest.raises(FamilyError, match="noise: must be a number from 0 to 1e\\+06") as info:
        Sinusoid(noise=1e35).sample("meta_train", 1, torch.Generator())


def _table(path: Path, tasks: int, rows: int = 12, label: bool = True) -> Path:
    rng = np.random.default_rng(0)
    lines = ["store,x1,x2,sales" + (",kind" if label else "")]
    for t in range(tasks):
        for r in range(rows):
            x1, x2 = rng.normal(size=2)
            lines.append(f"s{t},{x1:.4f},{x2:.4f},{t * x1 + x2:.4f}" + (f",{'ab'[r % 2]}" if label else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_family_makes_one_task_per_value_and_keeps_pools_apart(tmp_path: Path) -> None:
    path = _table(tmp_path / "t.csv", tasks=10)
    family = CsvFamily(str(path), task_column="store", target="sales", k_shot=4, k_query=4)
    with pytest.raises(FamilyError, match="feature columns must be numeric"):
        family.info()
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in path.read_text().splitlines()) + "\n")
    family = CsvFamily(str(path), task_column="store", target="sales", k_shot=4, k_query=4)
    assert family.info().input_shape == (2,)
    batch = _draw(family, "meta_test", n=3)
    assert batch.support_x.shape == (3, 4, 2) and batch.query_y.shape == (3, 4, 1)
    assert _same(batch, _draw(family, "meta_test", n=3))


def test_csv_family_errors_name_the_key(tmp_path: Path) -> None:
    path = _table(tmp_path / "one.csv", tasks=1)
    with pytest.raises(FamilyError) as info:
        CsvFamily(str(path), task_column="store", target="sales").info()
    assert info.value.key == "task_column"
    with pytest.raises(FamilyError) as info:
        CsvFamily(str(path), task_column="shop", target="sales").info()
    assert info.value.key == "task_column" and "shop" in str(info.value)
    many = _table(tmp_path / "many.csv", tasks=6, rows=5, label=False)
    with pytest.raises(FamilyError) as info:
        _draw(CsvFamily(str(many), task_column="store", target="sales", k_shot=4, k_query=4), "meta_train")
    assert info.value.key == "k_shot"


@pytest.mark.parametrize(
    ("options", "header", "key", "words"),
    [
        ({"test_fraction": float("inf")}, None, "test_fraction", "must be a number between 0 and 1"),
        ({"val_fraction": float("nan")}, None, "val_fraction", "got nan"),
        ({"val_fraction": -5.0}, None, "val_fraction", "got -5.0"),
        ({"target": "store"}, None, "target", "is the task column 'store'"),
        ({}, "store,,x2,sales", "path", "header column(s) [2] have no name"),
    ],
)
def test_csv_family_refuses_options_and_headers_that_would_mislead(
    tmp_path: Path, options: dict[str, object], header: str | None, key: str, words: str
) -> None:
    path = _table(tmp_path / "t.csv", tasks=6, label=False)
    if header is not None:
        path.write_text("\n".join([header, *path.read_text().splitlines()[1:]]) + "\n")
    with pytest.raises(FamilyError) as info:
        CsvFamily(**{"path": str(path), "task_column": "store", "target": "sales", **options}).info()  # type: ignore[arg-type]
    assert info.value.key == key and words in str(info.value)


def test_csv_family_refuses_a_row_without_a_task_a_path_that_is_no_file_and_names_k_query(
    tmp_path: Path,
) -> None:
    path = _table(tmp_path / "t.csv", tasks=6, label=False)
    lines = path.read_text().splitlines()
    lines[3] = "," + lines[3].split(",", 1)[1]
    (tmp_path / "blank.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(FamilyError, match=r"data row 3 names no task \(column 'store' is empty\)"):
        CsvFamily(str(tmp_path / "blank.csv"), task_column="store", target="sales").info()
    with pytest.raises(FamilyError, match="is not a file; give a CSV file"):
        CsvFamily(str(tmp_path), task_column="store", target="sales").info()
    with pytest.raises(FamilyError) as info:
        _draw(CsvFamily(str(path), task_column="store", target="sales", k_query=0))
    assert info.value.key == "k_query"


def test_csv_family_reads_missing_tokens_as_missing_and_strips_labels(tmp_path: Path) -> None:
    path = _table(tmp_path / "t.csv", tasks=6)
    lines = path.read_text().splitlines()
    na_task = [lines[0], *lines[1:4], "NA," + lines[4].split(",", 1)[1], *lines[5:]]
    (tmp_path / "na_task.csv").write_text("\n".join(na_task) + "\n")
    with pytest.raises(FamilyError, match=r"data row 4 names no task \(column 'store' is 'NA'\)"):
        CsvFamily(str(tmp_path / "na_task.csv"), task_column="store", target="x1").info()
    na_label = [lines[0], *lines[1:3], lines[3].rsplit(",", 1)[0] + ",nan", *lines[4:]]
    (tmp_path / "na_label.csv").write_text("\n".join(na_label) + "\n")
    options = {"task_column": "store", "target": "kind", "kind": "classification"}
    with pytest.raises(FamilyError, match=r"data row 3 has no class \(column 'kind' is 'nan'\)") as info:
        CsvFamily(str(tmp_path / "na_label.csv"), **options).info()  # type: ignore[arg-type]
    assert info.value.key == "target"
    # 'a ' and 'a' are one class: a 3-way family needs a third
    padded = [lines[0], *(line + " " if i % 4 == 0 else line for i, line in enumerate(lines[1:]))]
    (tmp_path / "padded.csv").write_text("\n".join(padded) + "\n")
    family = CsvFamily(str(tmp_path / "padded.csv"), n_way=2, k_shot=2, k_query=2, **options)  # type: ignore[arg-type]
    assert family.info().n_outputs == 2
    with pytest.raises(FamilyError) as info:
        _draw(CsvFamily(str(tmp_path / "padded.csv"), n_way=3, k_shot=2, k_query=2, **options))  # type: ignore[arg-type]
    assert info.value.key == "n_way"


def test_csv_family_names_the_row_of_a_regression_target_that_is_missing_or_no_number(tmp_path: Path) -> None:
    # before: "column 'sales' must be numeric for regression", naming neither the cell nor its row
    lines = _table(tmp_path / "t.csv", tasks=6, label=False).read_text().splitlines()
    cases = [("NA", r"data row 3 has no value \(column 'sales' is 'NA'\); give its value or drop the row")]
    cases += [("12x", r"it is '12x' in data row 3; correct the cell"), ("1_5", r"it is '1_5' in data row 3")]
    for cell, words in cases:
        path = tmp_path / "bad.csv"
        path.write_text("\n".join([*lines[:3], lines[3].rsplit(",", 1)[0] + "," + cell, *lines[4:]]) + "\n")
        with pytest.raises(FamilyError, match=words) as info:
            CsvFamily(str(path), task_column="store", target="sales").info()
        assert info.value.key == "target"
    # a feature cell that Python's float reads but the csv source does not ('1_5' is 15 there) is refused
    path.write_text("\n".join([*lines[:3], "s0,1_5," + lines[3].split(",", 2)[2], *lines[4:]]) + "\n")
    with pytest.raises(FamilyError, match=r"column 'x1' is '1_5' in data row 3"):
        CsvFamily(str(path), task_column="store", target="sales").info()


def test_csv_family_says_which_tasks_are_too_small_to_be_drawn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _table(tmp_path / "t.csv", tasks=10, label=False)
    lines = path.read_text().splitlines()
    s7 = [line for line in lines[1:] if line.startswith("s7,")]
    small = [line for line in lines if line not in s7[4:]]  # task s7 keeps 4 of its 12 rows
    (tmp_path / "small.csv").write_text("\n".join(small) + "\n")
    with caplog.at_level("WARNING", logger="stratagem"):
        family = CsvFamily(
            str(tmp_path / "small.csv"), task_column="store", target="sales", k_shot=4, k_query=4
        )
        family.info()
    (record,) = [r for r in caplog.records if "never drawn" in r.getMessage()]
    assert "'s7'" in record.getMessage() and "k_shot + k_query = 8 rows" in record.getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="stratagem"):  # every task fits: nothing to say
        CsvFamily(str(path), task_column="store", target="sales", k_shot=4, k_query=4).info()
    assert not caplog.records
