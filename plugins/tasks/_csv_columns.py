"""Reading and encoding of CSV tables for the ``csv`` task source.

The rules (missing values, task kind detection, class labels, feature encoding) are described in the
docstring of :mod:`plugins.tasks.csv`, which uses these helpers; every error is a
:class:`~engine.TaskDataError` whose message names the file.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine import FeatureColumn, TaskDataError, TaskKind

__all__ = [
    "MAX_AUTO_CLASSES",
    "MAX_CATEGORY_LEVELS",
    "MISSING_TOKENS",
    "encode_features",
    "encode_target",
    "handle_missing",
    "read_csv",
]

MISSING_TOKENS: frozenset[str] = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
"""Cell values (compared lower-cased, after stripping whitespace) that mean "missing"."""

MAX_AUTO_CLASSES = 20
"""Most distinct whole-number target values that kind detection still calls classification."""

MAX_CATEGORY_LEVELS = 50
"""Most levels a non-numeric feature column may have before it is refused instead of one-hot encoded."""


def read_csv(path: Path, delimiter: str) -> tuple[list[str], list[list[str]]]:
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


def handle_missing(
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


def encode_target(
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
    """Classification or regression, by the rules in :mod:`plugins.tasks.csv`'s docstring."""
    if numbers is None:
        return "classification"
    levels = np.unique(numbers)
    if len(levels) == 2:
        return "classification"
    whole = bool(np.all(levels == np.round(levels)))
    if whole and len(levels) <= MAX_AUTO_CLASSES and 2 * len(levels) <= len(numbers):
        return "classification"
    return "regression"


def encode_features(
    where: str, header: Sequence[str], rows: Sequence[Sequence[str]], columns: Sequence[int]
) -> tuple[np.ndarray, tuple[str, ...], tuple[FeatureColumn, ...]]:
    """Numeric columns as they are, other columns one-hot encoded.

    Returns ``X``, its column names, and each raw column's encoding (kept with the dataset, so that a
    model can later be applied to new raw rows).
    """
    blocks: list[np.ndarray] = []
    names: list[str] = []
    encodings: list[FeatureColumn] = []
    n = len(rows)
    for i in columns:
        values = [row[i] for row in rows]
        numbers = _parse_numbers(values)
        if numbers is not None:
            if not np.isfinite(numbers).all():
                raise TaskDataError(f"{where}: column {header[i]!r} contains infinite values; fix or drop it")
            blocks.append(numbers[:, None])
            names.append(header[i])
            encodings.append(FeatureColumn(header[i]))
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
        encodings.append(FeatureColumn(header[i], tuple(levels)))
    return np.hstack(blocks), tuple(names), tuple(encodings)
