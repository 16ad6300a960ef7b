"""Reading and encoding of CSV tables for the ``csv`` task source.

The rules (missing values, task kind detection, class labels, feature encoding) are described in the
docstring of :mod:`plugins.tasks.csv`, which uses these helpers; every error is a
:class:`~engine.TaskDataError` whose message names the file, and the file's line where it is one cell.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np

from engine import FeatureColumn, TaskDataError, TaskKind, read_number

__all__ = [
    "MAX_AUTO_CLASSES",
    "MAX_CATEGORY_LEVELS",
    "MISSING_TOKENS",
    "NUMERIC_SHARE",
    "did_you_mean",
    "encode_features",
    "encode_target",
    "handle_missing",
    "read_csv",
]

MISSING_TOKENS: frozenset[str] = frozenset({"", "na", "n/a", "nan", "+nan", "-nan", "null", "none", "?"})
"""Cell values (compared lower-cased, after stripping whitespace) that mean "missing"."""

MAX_AUTO_CLASSES = 20
"""Most distinct whole-number target values that kind detection still calls classification."""

MAX_CATEGORY_LEVELS = 50
"""Most levels a non-numeric feature column may have before it is refused instead of one-hot encoded."""

NUMERIC_SHARE = 0.8
"""Least share of number cells that makes a column with a few other cells numeric with strays, not text."""

_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+")


def read_csv(path: Path, delimiter: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Return the header, the data rows (cells stripped, blank lines skipped) and each row's line."""
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
    return header, [cells for _, cells in table[1:]], [line for line, _ in table[1:]]


def did_you_mean(names: Sequence[str], header: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` naming the columns of ``header`` closest to ``names`` ('' if none is)."""
    by_lower = {c.lower(): c for c in header}
    close = []
    for name in names:
        match = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
        if match and by_lower[match[0]] not in close:
            close.append(by_lower[match[0]])
    return f"; did you mean {' and '.join(repr(c) for c in close)}?" if close else ""


def handle_missing(
    where: str, header: Sequence[str], rows: Sequence[Sequence[str]], used: Sequence[int], policy: str
) -> tuple[list[int], str]:
    """Drop rows with missing values in the used columns, or refuse.

    Returns:
        The positions of the rows kept, and (when rows were dropped) how many values each column lacks,
        as ``"'a' (1), 'b' (2)"``.
    """
    is_missing = [[row[i].lower() in MISSING_TOKENS for i in used] for row in rows]
    bad_rows = sum(any(flags) for flags in is_missing)
    if not bad_rows:
        return list(range(len(rows))), ""
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
    return [r for r, flags in enumerate(is_missing) if not any(flags)], summary


def _parse_numbers(values: Sequence[str]) -> np.ndarray | None:
    """The values as ``float64``, or ``None`` if any of them is not a number."""
    numbers = [read_number(v) for v in values]
    if any(x is None for x in numbers):
        return None
    return np.array(numbers, dtype=np.float64)


def _strays(values: Sequence[str]) -> list[int]:
    """Positions of the cells that are not numbers in a column that is otherwise a quantity ([] if none).

    Such a column has at least :data:`NUMERIC_SHARE` number cells (a decimal comma, '0,13', counting as
    one) whose values, alone, would be a regression target: a few whole numbers beside a word may be
    category codes beside a category ('1', '2', 'other'), a quantity with a word in it is a typo."""
    numbers: list[str] = []
    odd: list[int] = []
    for i, v in enumerate(values):
        if read_number(v) is not None:
            numbers.append(v)
        else:
            odd.append(i)
            if _DECIMAL_COMMA.fullmatch(v):
                numbers.append(v.replace(",", "."))
    if not odd or len(numbers) < NUMERIC_SHARE * len(values) or _detect_kind(numbers) != "regression":
        return []
    return odd


def _shown(values: Sequence[str], positions: Sequence[int], lines: Sequence[int]) -> str:
    """A few cells as ``'x' (line 5), '-' (line 9) ...``."""
    shown = ", ".join(f"{values[i]!r} (line {lines[i]})" for i in positions[:5])
    return shown + (f" and {len(positions) - 5} more" if len(positions) > 5 else "")


def _stray_fix(values: Sequence[str], positions: Sequence[int]) -> str:
    """How to mend the cells at ``positions`` of a numeric column."""
    commas = sum(bool(_DECIMAL_COMMA.fullmatch(values[i])) for i in positions)
    point = "write decimals with a point ('0.13'; the delimiter option sets only the field separator)"
    if commas == len(values):
        return point
    fix = (
        "correct those cells, or empty them to mark them missing (their rows are then dropped, see the "
        "missing option)"
    )
    if commas:
        which = "they look" if commas == len(positions) else f"{commas} of them look"
        fix = f"{which} like numbers with a decimal comma: {point}; {fix}"
    return fix


def _strays_problem(what: str, values: Sequence[str], strays: Sequence[int], lines: Sequence[int]) -> str:
    """``<what> holds numbers except in ...: <cells>; <fix>`` for a column's stray cells."""
    if all(_DECIMAL_COMMA.fullmatch(v) for v in values):
        shown = _shown(values, strays, lines)
        return f"{what} holds numbers written with a decimal comma: {shown}; {_stray_fix(values, strays)}"
    return (
        f"{what} holds numbers except in {len(strays)} of its {len(values)} cells: "
        f"{_shown(values, strays, lines)}; {_stray_fix(values, strays)}"
    )


def _non_finite(
    where: str, what: str, values: Sequence[str], numbers: np.ndarray, lines: Sequence[int]
) -> None:
    bad = np.flatnonzero(~np.isfinite(numbers))
    if bad.size:
        i = int(bad[0])
        how = "not a number" if np.isnan(numbers[i]) else "infinite"
        raise TaskDataError(
            f"{where}: {what} has the {how} value {values[i]!r} (line {lines[i]}); fix it, or empty the cell "
            f"to mark it missing"
        )


def encode_target(
    where: str, target: str, values: Sequence[str], kind: TaskKind | None, lines: Sequence[int]
) -> tuple[np.ndarray, TaskKind, tuple[str, ...], bool]:
    """Return ``(y, kind, class_names, kind_was_detected)`` for the target column's values.

    ``lines`` holds each value's line in the file, for messages.
    """
    what = f"the target column {target!r}"
    numbers = _parse_numbers(values)
    if numbers is not None:
        _non_finite(where, what, values, numbers, lines)
    detected = kind is None
    if kind is None:
        strays = _strays(values)
        if strays:
            raise TaskDataError(
                f"{where}: {_strays_problem(what, values, strays, lines)}; or set kind = 'classification' "
                "if its values are class labels"
            )
        kind = _detect_kind(values)
    if kind == "regression":
        if numbers is None:
            bad = [i for i, v in enumerate(values) if read_number(v) is None]
            more = f" ({len(bad)} such cells: {_shown(values, bad, lines)})" if len(bad) > 1 else ""
            raise TaskDataError(
                f"{where}: kind is 'regression' but {what} has the non-numeric value {values[bad[0]]!r} "
                f"(line {lines[bad[0]]}){more}; {_stray_fix(values, bad)}; or use kind = 'classification'"
            )
        if np.all(numbers == numbers[0]):
            raise TaskDataError(f"{where}: {what} has the same value on every row")
        return numbers, kind, (), detected
    class_names = _class_order(values)
    index = {name: code for code, name in enumerate(class_names)}
    codes = np.array([index[v] for v in values], dtype=np.int64)
    if len(class_names) < 2:
        raise TaskDataError(
            f"{where}: {what} has a single class {class_names[0]!r}; classification needs at least two"
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
    return codes, "classification", class_names, detected


def _class_order(values: Sequence[str]) -> tuple[str, ...]:
    """The distinct cells, as written: in numeric order (exact, then as written) when all are numbers,
    else in string order. Labels are never merged: '1.1' and '1.10', or two 17-digit identifiers that
    are the same ``float``, stay two classes, and '007' stays '007'."""
    labels = set(values)
    if _parse_numbers(list(labels)) is None:
        return tuple(sorted(labels))
    return tuple(sorted(labels, key=lambda v: (_exact(v), v)))


def _exact(cell: str) -> Decimal:
    """A number cell's exact value (its float's where Decimal refuses an extreme exponent)."""
    try:
        return Decimal(cell)
    except ArithmeticError:
        return Decimal(float(cell))


def _detect_kind(values: Sequence[str]) -> TaskKind:
    """Classification or regression, by the rules in :mod:`plugins.tasks.csv`'s docstring; the distinct
    values are the distinct cells, as the classes would be."""
    if _parse_numbers(values) is None:
        return "classification"
    levels = set(values)
    if len(levels) == 2:
        return "classification"
    if len(levels) > MAX_AUTO_CLASSES or 2 * len(levels) > len(values):
        return "regression"
    exact = [_exact(v) for v in levels]
    whole = all(x.is_finite() and x == x.to_integral_value() for x in exact)
    return "classification" if whole else "regression"


def encode_features(
    where: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    columns: Sequence[int],
    lines: Sequence[int],
) -> tuple[np.ndarray, tuple[str, ...], tuple[FeatureColumn, ...]]:
    """Numeric columns as they are, other columns one-hot encoded.

    Returns ``X``, its column names, and each raw column's encoding (kept with the dataset, so that a
    model can later be applied to new raw rows). ``lines`` holds each row's line in the file.
    """
    blocks: list[np.ndarray] = []
    names: list[str] = []
    encodings: list[FeatureColumn] = []
    n = len(rows)
    for i in columns:
        values = [row[i] for row in rows]
        numbers = _parse_numbers(values)
        if numbers is not None:
            _non_finite(where, f"column {header[i]!r}", values, numbers, lines)
            blocks.append(numbers[:, None])
            names.append(header[i])
            encodings.append(FeatureColumn(header[i]))
            continue
        strays = _strays(values)
        if strays:
            raise TaskDataError(
                f"{where}: {_strays_problem(f'column {header[i]!r}', values, strays, lines)}; or list the "
                "column in drop"
            )
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
