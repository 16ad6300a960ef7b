"""Built-in task sources: scikit-learn's bundled datasets, CSV files and generated tasks.

Each source is registered through the same hook an installed plugin uses. Spec entries look like::

    [[tasks]]
    source = "sklearn"
    dataset = "iris"

    [[tasks]]
    source = "csv"
    path = "data/houses.csv"      # relative to the spec's folder
    target = "price"
    drop = ["id"]

    [[tasks]]
    source = "synthetic"
    generator = "classification"
    n_samples = 800
    n_classes = 4
    seed = 3

CSV files are read with the standard library's :mod:`csv` module (no pandas). How a CSV column becomes
data:

* **Missing values** are empty cells and the tokens in :data:`MISSING_TOKENS` (case-insensitive), in the
  target and feature columns only (columns named in ``drop`` are ignored). With ``missing = "drop"`` (the
  default) rows with any missing value are dropped, unless that would drop more than half of the rows, which
  is refused: the remaining rows would be a different task. ``missing = "error"`` refuses any missing
  value. Either refusal names the columns and how many values each lacks.
* **Task kind**, unless ``kind`` is given: a target with a non-numeric value is a classification target; a
  numeric target with exactly two distinct values is a classification target; a numeric target whose
  values are all whole numbers, with at most :data:`MAX_AUTO_CLASSES` distinct values and at least two
  rows per distinct value on average, is a classification target; any other numeric target is a
  regression target.
* **Class labels** become codes ``0..k-1`` in sorted order (numeric order for numeric labels); the
  original labels are kept as ``class_names``. Every class needs at least two rows.
* **Features**: a column whose values all parse as numbers is used as is; any other column is one-hot
  encoded into one 0/1 column per level, named ``column=level``. A non-numeric column with more than
  :data:`MAX_CATEGORY_LEVELS` levels is refused (it is usually an identifier or free text: ``drop`` it).
* An empty header cell names its column ``unnamed_<position>`` (0-based), as a file written with an index
  column has; ``drop`` it by that name.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import engine
from engine.errors import TaskDataError
from engine.registry import Registry
from engine.task import Dataset, Option, TaskKind, TaskSource

__all__ = [
    "MAX_AUTO_CLASSES",
    "MAX_CATEGORY_LEVELS",
    "MISSING_TOKENS",
    "CsvSource",
    "SklearnSource",
    "SyntheticSource",
    "stratagem_register_task_sources",
]

MISSING_TOKENS: frozenset[str] = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
"""Cell values (compared lower-cased, after stripping whitespace) that mean "missing"."""

MAX_AUTO_CLASSES = 20
"""Most distinct whole-number target values that kind detection still calls classification."""

MAX_CATEGORY_LEVELS = 50
"""Most levels a non-numeric feature column may have before it is refused instead of one-hot encoded."""


@engine.hookimpl
def stratagem_register_task_sources(registry: Registry[TaskSource]) -> None:
    """Register the built-in ``sklearn``, ``csv`` and ``synthetic`` task sources."""
    for source in (SklearnSource(), CsvSource(), SyntheticSource()):
        registry.add(source)


# --------------------------------------------------------------------------------------------- sklearn

_SKLEARN_DATASETS: dict[str, tuple[str, TaskKind]] = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}


class SklearnSource(TaskSource):
    """The small datasets bundled with scikit-learn; nothing is downloaded."""

    name: ClassVar[str] = "sklearn"
    description: ClassVar[str] = "Datasets bundled with scikit-learn: " + ", ".join(_SKLEARN_DATASETS)
    options: ClassVar[Mapping[str, Option]] = {
        "dataset": Option(str, required=True, help="Which bundled dataset", choices=tuple(_SKLEARN_DATASETS)),
    }

    def load(self, options: Mapping[str, Any], base_dir: Path) -> Dataset:
        """Load the bundled dataset named by ``options["dataset"]``.

        Raises:
            TaskDataError: The dataset name is not one of the bundled datasets.
        """
        dataset = options.get("dataset")
        if dataset not in _SKLEARN_DATASETS:
            raise TaskDataError(
                f"sklearn source: unknown dataset {dataset!r}; choose one of: {', '.join(_SKLEARN_DATASETS)}"
            )
        import sklearn.datasets

        loader_name, kind = _SKLEARN_DATASETS[dataset]
        bunch = getattr(sklearn.datasets, loader_name)()
        class_names = tuple(str(c) for c in bunch.target_names) if kind == "classification" else ()
        return Dataset(
            name=dataset,
            X=bunch.data,
            y=bunch.target,
            kind=kind,
            feature_names=tuple(str(f) for f in bunch.feature_names),
            class_names=class_names,
            description=f"scikit-learn bundled dataset {dataset!r} (sklearn.datasets.{loader_name})",
        )


# ------------------------------------------------------------------------------------------------- csv


class CsvSource(TaskSource):
    """A table in a CSV file with a header row; one column is the target."""

    name: ClassVar[str] = "csv"
    description: ClassVar[str] = "A CSV file with a header row; one column is the target"
    options: ClassVar[Mapping[str, Option]] = {
        "path": Option(str, required=True, help="CSV file; a relative path is relative to the spec's folder"),
        "target": Option(str, required=True, help="Name of the target column"),
        "kind": Option(
            str,
            help="Task kind; detected from the target column when not given",
            choices=("classification", "regression"),
        ),
        "missing": Option(
            str,
            help='"drop" rows with missing values (default; refused if over half the rows) or "error"',
            choices=("drop", "error"),
        ),
        "delimiter": Option(str, help='One-character field separator (default ",")'),
        "drop": Option(list, help="Columns to ignore, such as identifiers"),
    }

    def default_name(self, options: Mapping[str, Any]) -> str:
        """The file name without its extension."""
        return Path(str(options["path"])).stem

    def load(self, options: Mapping[str, Any], base_dir: Path) -> Dataset:
        """Read the CSV file and turn it into a dataset (see the module docstring for the rules).

        Raises:
            TaskDataError: The file is missing, empty or unparseable, the target or a ``drop`` column
                does not exist, values are missing (beyond what ``missing`` allows), a class has a
                single row, or no usable feature column is left.
        """
        path = Path(str(options["path"])).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        target = str(options["target"])
        kind: TaskKind | None = options.get("kind")
        missing = options.get("missing", "drop")
        delimiter = options.get("delimiter", ",")
        drop = options.get("drop", [])
        if kind not in (None, "classification", "regression"):
            raise TaskDataError(f"csv source: kind must be 'classification' or 'regression', got {kind!r}")
        if missing not in ("drop", "error"):
            raise TaskDataError(f"csv source: missing must be 'drop' or 'error', got {missing!r}")
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise TaskDataError(
                f"csv source: delimiter must be one character, such as ';', got {delimiter!r}"
            )
        if not isinstance(drop, list | tuple) or not all(isinstance(c, str) for c in drop):
            raise TaskDataError(f"csv source: drop must be a list of column names, got {drop!r}")

        header, rows = _read_csv(path, delimiter)
        where = f"CSV file {str(path)!r}"
        columns = ", ".join(repr(c) for c in header)
        if target not in header:
            hint = ""
            if len(header) == 1:
                hint = f"; the file has a single column, so is the delimiter {delimiter!r} right?"
            raise TaskDataError(f"{where}: no target column {target!r}; its columns are {columns}{hint}")
        unknown = [c for c in drop if c not in header]
        if unknown:
            raise TaskDataError(f"{where}: drop names unknown columns {unknown}; its columns are {columns}")
        if target in drop:
            raise TaskDataError(f"{where}: the target column {target!r} is also listed in drop")
        t = header.index(target)
        feature_cols = [i for i, c in enumerate(header) if i != t and c not in drop]
        if not feature_cols:
            raise TaskDataError(f"{where}: no feature columns are left besides the target {target!r}")

        rows, n_dropped = _handle_missing(where, header, rows, [t, *feature_cols], missing)
        y, kind, class_names, detected = _encode_target(where, target, [r[t] for r in rows], kind)
        X, feature_names = _encode_features(where, header, rows, feature_cols)
        if np.all(X.max(axis=0) == X.min(axis=0)):
            raise TaskDataError(
                f"{where}: every feature column has the same value on every row, so there is nothing to "
                f"learn from; check the file or the drop option"
            )
        notes = [f"target {target!r}", f"{kind} ({'detected' if detected else 'given'})"]
        if n_dropped:
            notes.append(f"{n_dropped} rows with missing values dropped")
        return Dataset(
            name=path.stem,
            X=X,
            y=y,
            kind=kind,
            feature_names=feature_names,
            class_names=class_names,
            description=f"CSV file {path} ({'; '.join(notes)})",
        )


def _read_csv(path: Path, delimiter: str) -> tuple[list[str], list[list[str]]]:
    """Return the header and the data rows (cells stripped, blank lines skipped)."""
    where = f"CSV file {str(path)!r}"
    if not path.is_file():
        raise TaskDataError(f"{where} does not exist (or is not a file); check `path` in the task entry")
    table: list[tuple[int, list[str]]] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter, strict=True)
            try:
                for row in reader:
                    cells = [cell.strip() for cell in row]
                    if any(cells):
                        table.append((reader.line_num, cells))
            except csv.Error as exc:
                raise TaskDataError(
                    f"{where}: cannot parse line {reader.line_num}: {exc}; check its quoting and the "
                    f"delimiter option"
                ) from exc
    except UnicodeDecodeError as exc:
        raise TaskDataError(f"{where} is not UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    except OSError as exc:
        raise TaskDataError(f"{where} cannot be read: {exc}") from exc
    if not table:
        raise TaskDataError(f"{where} is empty; it needs a header row and data rows")
    header = [name or f"unnamed_{i}" for i, name in enumerate(table[0][1])]
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates:
        raise TaskDataError(f"{where}: the header repeats column names {duplicates}; rename them")
    if len(table) == 1:
        raise TaskDataError(f"{where} has a header row but no data rows")
    for line, cells in table[1:]:
        if len(cells) != len(header):
            raise TaskDataError(
                f"{where}: line {line} has {len(cells)} fields but the header has {len(header)}; "
                f"check the delimiter option and quoting"
            )
    return header, [cells for _, cells in table[1:]]


def _handle_missing(
    where: str, header: Sequence[str], rows: list[list[str]], used: Sequence[int], policy: str
) -> tuple[list[list[str]], int]:
    """Drop rows with missing values in the used columns, or refuse; return kept rows and count dropped."""
    is_missing = [[row[i].lower() in MISSING_TOKENS for i in used] for row in rows]
    bad_rows = sum(any(flags) for flags in is_missing)
    if not bad_rows:
        return rows, 0
    counts = np.sum(np.asarray(is_missing, dtype=np.int64), axis=0)
    summary = ", ".join(f"{header[i]!r} ({int(c)})" for i, c in zip(used, counts, strict=True) if c)
    problem = (
        f"{where}: {bad_rows} of {len(rows)} rows have missing values (empty or one of "
        f"{sorted(MISSING_TOKENS - {''})}); missing values per column: {summary}"
    )
    if policy == "error":
        raise TaskDataError(
            f"{problem}. Fill them in, list those columns in drop, or set missing = 'drop' to drop the rows"
        )
    if 2 * bad_rows > len(rows):
        raise TaskDataError(
            f"{problem}. Dropping those rows would lose more than half the data; list the columns with "
            f"many missing values in drop, or fill them in"
        )
    kept = [row for row, flags in zip(rows, is_missing, strict=True) if not any(flags)]
    return kept, bad_rows


def _parse_numbers(values: Sequence[str]) -> np.ndarray | None:
    """The values as ``float64``, or ``None`` if any of them is not a number."""
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return None


def _label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _encode_target(
    where: str, target: str, values: Sequence[str], kind: TaskKind | None
) -> tuple[np.ndarray, TaskKind, tuple[str, ...], bool]:
    """Return ``(y, kind, class_names, kind_was_detected)`` for the target column's values."""
    numbers = _parse_numbers(values)
    if numbers is not None and not np.isfinite(numbers).all():
        raise TaskDataError(f"{where}: the target column {target!r} contains infinite values")
    detected = kind is None
    if kind is None:
        kind = _detect_kind(numbers)
    if kind == "regression":
        if numbers is None:
            bad = next(v for v in values if _parse_numbers([v]) is None)
            raise TaskDataError(
                f"{where}: kind is 'regression' but the target column {target!r} has the non-numeric "
                f"value {bad!r}; fix the value or use kind = 'classification'"
            )
        if np.all(numbers == numbers[0]):
            raise TaskDataError(f"{where}: the target column {target!r} has the same value on every row")
        return numbers, kind, (), detected
    if numbers is not None:
        levels = np.unique(numbers)
        codes = np.searchsorted(levels, numbers)
        class_names = tuple(_label(v) for v in levels)
    else:
        names = sorted(set(values))
        index = {name: code for code, name in enumerate(names)}
        codes = np.array([index[v] for v in values], dtype=np.int64)
        class_names = tuple(names)
    if len(class_names) < 2:
        raise TaskDataError(
            f"{where}: the target column {target!r} has a single class {class_names[0]!r}; "
            f"classification needs at least two"
        )
    counts = np.bincount(codes, minlength=len(class_names))
    singles = [class_names[c] for c in np.flatnonzero(counts == 1)]
    if singles:
        shown = ", ".join(repr(s) for s in singles[:10]) + (" ..." if len(singles) > 10 else "")
        raise TaskDataError(
            f"{where}: {len(singles)} class(es) of target {target!r} have a single row: {shown}. "
            f"A class needs at least two rows to be both trained on and evaluated; remove or merge those rows"
            + (", or set kind = 'regression' if the target is a quantity" if numbers is not None else "")
        )
    return codes.astype(np.int64), "classification", class_names, detected


def _detect_kind(numbers: np.ndarray | None) -> TaskKind:
    """Classification or regression, by the rules in the module docstring."""
    if numbers is None:
        return "classification"
    levels = np.unique(numbers)
    if len(levels) == 2:
        return "classification"
    whole = bool(np.all(levels == np.round(levels)))
    if whole and len(levels) <= MAX_AUTO_CLASSES and 2 * len(levels) <= len(numbers):
        return "classification"
    return "regression"


def _encode_features(
    where: str, header: Sequence[str], rows: Sequence[Sequence[str]], columns: Sequence[int]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Numeric columns as they are, other columns one-hot encoded."""
    blocks: list[np.ndarray] = []
    names: list[str] = []
    n = len(rows)
    for i in columns:
        values = [row[i] for row in rows]
        numbers = _parse_numbers(values)
        if numbers is not None:
            if not np.isfinite(numbers).all():
                raise TaskDataError(f"{where}: column {header[i]!r} contains infinite values; fix or drop it")
            blocks.append(numbers[:, None])
            names.append(header[i])
            continue
        levels = sorted(set(values))
        if len(levels) > MAX_CATEGORY_LEVELS:
            raise TaskDataError(
                f"{where}: column {header[i]!r} is not numeric and has {len(levels)} distinct values "
                f"(at most {MAX_CATEGORY_LEVELS} are one-hot encoded); if it is an identifier or free text, "
                f"list it in drop, otherwise encode it as numbers"
            )
        index = {level: j for j, level in enumerate(levels)}
        onehot = np.zeros((n, len(levels)))
        onehot[np.arange(n), [index[v] for v in values]] = 1.0
        blocks.append(onehot)
        names.extend(f"{header[i]}={level}" for level in levels)
    return np.hstack(blocks), tuple(names)


# ------------------------------------------------------------------------------------------- synthetic

_GENERATOR_HELP = {
    "classification": "sklearn make_classification; noise = fraction of labels flipped (default 0.01)",
    "regression": "sklearn make_regression (linear); noise = std of target noise (default 10)",
    "friedman1": "sklearn make_friedman1 (n_features >= 5); noise = std of target noise (default 1)",
    "friedman2": "sklearn make_friedman2 (4 features); noise = std of target noise (default 0)",
    "friedman3": "sklearn make_friedman3 (4 features); noise = std of target noise (default 0)",
    "moons": "two interleaving half circles (2 features, 2 classes); noise = point std (default 0.2)",
    "circles": "two concentric circles (2 features, 2 classes); noise = point std (default 0.1)",
    "blobs": "Gaussian blobs, one per class (default 3 classes, 2 features); noise = blob std (default 1)",
}
_DEFAULT_NOISE = {
    "classification": 0.01,
    "regression": 10.0,
    "friedman1": 1.0,
    "friedman2": 0.0,
    "friedman3": 0.0,
    "moons": 0.2,
    "circles": 0.1,
    "blobs": 1.0,
}
_CLASSIFIERS = frozenset({"classification", "moons", "circles", "blobs"})
_FIXED_FEATURES = {"friedman2": 4, "friedman3": 4, "moons": 2, "circles": 2}
_APPLIES_TO = {
    "n_informative": frozenset({"classification", "regression"}),
    "n_classes": frozenset({"classification", "blobs"}),
}
_NAME_PARTS = (("n_samples", "n"), ("n_features", "d"), ("n_informative", "i"), ("n_classes", "k"))


class SyntheticSource(TaskSource):
    """Generated tasks of a chosen size, dimension and number of classes; the same seed, the same data."""

    name: ClassVar[str] = "synthetic"
    description: ClassVar[str] = "Generated tasks: " + ", ".join(_GENERATOR_HELP)
    options: ClassVar[Mapping[str, Option]] = {
        "generator": Option(
            str, help="Which generator (default 'classification')", choices=tuple(_GENERATOR_HELP)
        ),
        "n_samples": Option(int, help="Rows, 10 to 1,000,000 (default 500)"),
        "n_features": Option(int, help="Columns (default 20; fixed for friedman2/3, moons, circles)"),
        "n_informative": Option(int, help="Informative columns (classification, regression)"),
        "n_classes": Option(int, help="Classes (classification: default 2, blobs: default 3)"),
        "noise": Option((int, float), help="Generator-specific noise level (see the generator list)"),
        "seed": Option(int, help="Random seed (default 0)"),
    }

    def default_name(self, options: Mapping[str, Any]) -> str:
        """``synthetic-<generator>[-n<rows>][-d<cols>][-i<informative>][-k<classes>][-noise<x>]-<seed>``."""
        parts = [f"synthetic-{options.get('generator', 'classification')}"]
        parts += [f"{short}{options[key]}" for key, short in _NAME_PARTS if key in options]
        if "noise" in options:
            parts.append(f"noise{options['noise']}")
        parts.append(str(options.get("seed", 0)))
        return "-".join(parts)

    def load(self, options: Mapping[str, Any], base_dir: Path) -> Dataset:
        """Generate the dataset the options describe.

        Raises:
            TaskDataError: An option is out of range or does not apply to the chosen generator.
        """
        from sklearn import datasets as gen

        generator = options.get("generator", "classification")
        if generator not in _GENERATOR_HELP:
            raise TaskDataError(
                f"synthetic source: unknown generator {generator!r}; "
                f"choose one of: {', '.join(_GENERATOR_HELP)}"
            )
        where = f"synthetic source ({generator})"
        for key, generators in _APPLIES_TO.items():
            if key in options and generator not in generators:
                raise TaskDataError(
                    f"{where}: {key} applies only to generators {sorted(generators)}; remove it"
                )
        n = _int_option(where, options, "n_samples", 500, 10, 1_000_000)
        fixed = _FIXED_FEATURES.get(generator)
        if fixed is not None and options.get("n_features", fixed) != fixed:
            raise TaskDataError(
                f"{where}: always has {fixed} features; remove n_features or change generator"
            )
        d = fixed or _int_option(where, options, "n_features", 2 if generator == "blobs" else 20, 1, 10_000)
        k = _int_option(where, options, "n_classes", 3 if generator == "blobs" else 2, 2, 100)
        if generator in _CLASSIFIERS and n < 2 * k:
            raise TaskDataError(f"{where}: {n} rows are too few for {k} classes; use n_samples >= {2 * k}")
        noise = float(options.get("noise", _DEFAULT_NOISE[generator]))
        if not math.isfinite(noise) or noise < 0 or (generator == "classification" and noise > 1):
            limit = "between 0 and 1 (a fraction of labels)" if generator == "classification" else ">= 0"
            raise TaskDataError(f"{where}: noise must be {limit}, got {noise}")
        seed = _int_option(where, options, "seed", 0, 0, 2**32 - 1)

        if generator == "classification":
            default_informative = min(d, max(math.ceil(math.log2(k)) + 1, d // 2))
            n_inf = _int_option(where, options, "n_informative", default_informative, 1, d)
            if 2**n_inf < k:
                raise TaskDataError(
                    f"{where}: n_informative = {n_inf} cannot separate {k} classes; "
                    f"use n_informative >= {math.ceil(math.log2(k))}"
                )
            X, y = gen.make_classification(
                n_samples=n,
                n_features=d,
                n_informative=n_inf,
                n_redundant=min(2, d - n_inf),
                n_classes=k,
                n_clusters_per_class=2 if 2**n_inf >= 2 * k else 1,
                flip_y=noise,
                random_state=seed,
            )
        elif generator == "regression":
            n_inf = _int_option(where, options, "n_informative", min(d, 10), 1, d)
            X, y = gen.make_regression(
                n_samples=n, n_features=d, n_informative=n_inf, noise=noise, random_state=seed
            )
        elif generator == "friedman1":
            if d < 5:
                raise TaskDataError(f"{where}: needs n_features >= 5, got {d}")
            X, y = gen.make_friedman1(n_samples=n, n_features=d, noise=noise, random_state=seed)
        elif generator == "friedman2":
            X, y = gen.make_friedman2(n_samples=n, noise=noise, random_state=seed)
        elif generator == "friedman3":
            X, y = gen.make_friedman3(n_samples=n, noise=noise, random_state=seed)
        elif generator == "moons":
            X, y = gen.make_moons(n_samples=n, noise=noise, random_state=seed)
        elif generator == "circles":
            X, y = gen.make_circles(n_samples=n, noise=noise, factor=0.5, random_state=seed)
        else:
            if noise <= 0:
                raise TaskDataError(f"{where}: noise is the blobs' standard deviation and must be > 0")
            X, y = gen.make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=noise, random_state=seed)
        is_classifier = generator in _CLASSIFIERS
        return Dataset(
            name=self.default_name(options),
            X=X,
            y=y,
            kind="classification" if is_classifier else "regression",
            class_names=tuple(str(c) for c in range(int(np.max(y)) + 1)) if is_classifier else (),
            description=f"synthetic task: {_GENERATOR_HELP[generator]}; seed {seed}",
        )


def _int_option(where: str, options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TaskDataError(f"{where}: {key} must be a whole number from {low} to {high}, got {value!r}")
    return value
