"""How a raw row becomes a model's input: the columns a task source read, in order, and their encodings.

A :class:`Dataset` may carry a :class:`RowEncoding` so that a trained model can be applied to new raw
rows (a CSV file's cells) exactly as the training rows were turned into ``X``. A source that delivers
numbers only (bundled or generated data) needs none: its encoding is one numeric column per feature
name (:meth:`RowEncoding.numeric`).

Rules when encoding new rows (:meth:`RowEncoding.encode`), never a silent guess:

* every column of the encoding must be present, found by name; other columns (the target, identifiers)
  are ignored;
* a numeric column's cell must parse as a finite number (not a boolean, nor text such as '0_1' that
  only Python reads as a number);
* a one-hot column's cell must be one of the levels seen in training (compared after stripping
  whitespace); an unknown level is an error that lists the known ones;
* a missing cell (empty, or one of :attr:`RowEncoding.missing` compared lower-cased) is an error.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import TaskDataError

__all__ = ["DEFAULT_MISSING", "FeatureColumn", "RowEncoding"]

DEFAULT_MISSING: tuple[str, ...] = ("", "?", "n/a", "na", "nan", "none", "null")
"""Cell values (lower-cased, stripped) that mean "missing" unless an encoding names others."""


@dataclass(frozen=True)
class FeatureColumn:
    """One raw column: numeric (used as is) when ``levels`` is empty, else one-hot over ``levels``."""

    name: str
    levels: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        """How many columns of ``X`` it becomes."""
        return len(self.levels) or 1

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "levels": list(self.levels)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureColumn:
        return cls(str(data["name"]), tuple(str(x) for x in data.get("levels", ())))


@dataclass(frozen=True)
class RowEncoding:
    """The raw columns of a task, in the order their encodings form ``X``.

    Attributes:
        columns: The raw feature columns.
        target: The raw target column's name, if the source knows it (it is ignored when encoding).
        missing: Cell values that mean "missing" (lower-case).
    """

    columns: tuple[FeatureColumn, ...]
    target: str | None = None
    missing: tuple[str, ...] = DEFAULT_MISSING

    @classmethod
    def numeric(cls, feature_names: Sequence[str]) -> RowEncoding:
        """One numeric column per feature: what a source of numbers only implies."""
        return cls(tuple(FeatureColumn(str(n)) for n in feature_names))

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)

    def encode(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """Turn raw rows (cells as strings or numbers, in ``header``'s order) into ``X``.

        Raises:
            TaskDataError: A column is missing, or a cell is missing, not a number, or an unknown level;
                the message names the row (1-based among the data rows) and the column.
        """
        position = {name: i for i, name in enumerate(header)}
        absent = [c.name for c in self.columns if c.name not in position]
        if absent:
            spare = [str(h) for h in header if h not in {c.name for c in self.columns}]
            close = [m for name in absent for m in difflib.get_close_matches(name, spare, n=1)]
            hint = f"; the rows have {', '.join(repr(m) for m in close)}: a misspelling?" if close else ""
            raise TaskDataError(
                f"the rows lack column(s) {absent} that the model was trained on; its columns are "
                f"{[c.name for c in self.columns]} (other columns are ignored){hint}"
            )
        X = np.zeros((len(rows), self.width), dtype=np.float64)
        missing = set(self.missing)
        offset = 0
        for col in self.columns:
            i = position[col.name]
            index = {level: j for j, level in enumerate(col.levels)}
            for r, row in enumerate(rows):
                cell = row[i]
                text = cell.strip() if isinstance(cell, str) else cell
                if text is None or (isinstance(text, str) and text.lower() in missing):
                    raise TaskDataError(
                        f"row {r + 1}, column {col.name!r}: the value is missing ({cell!r}); the model "
                        "needs every column it was trained on filled in"
                    )
                if col.levels:
                    j = index.get(str(text))
                    if j is None:
                        raise TaskDataError(
                            f"row {r + 1}, column {col.name!r}: unknown category {text!r}; the model knows "
                            f"{list(col.levels)}"
                        )
                    X[r, offset + j] = 1.0
                else:
                    X[r, offset] = _number(text, r, col.name)
            offset += col.width
        return X

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "target": self.target,
            "missing": list(self.missing),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowEncoding:
        return cls(
            tuple(FeatureColumn.from_dict(c) for c in data["columns"]),
            data.get("target"),
            tuple(str(m) for m in data.get("missing", DEFAULT_MISSING)),
        )


def read_number(text: str) -> float | None:
    """A CSV cell's number, as every reader of rows here reads one, or ``None`` if it is none: Python's
    ``float`` also reads '0_1' (as 1) and non-ASCII digits, which are text here. ``nan`` and ``inf`` are
    numbers (callers that need finite values check for them)."""
    if "_" in text or not text.isascii():
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _number(value: Any, row: int, column: str) -> float:
    """A numeric cell's value. Refused: booleans (Python's or NumPy's), text that is no number or that
    only Python reads as one ('0_1', non-ASCII digits, as training reads them), and numbers beyond
    ``float`` (an integer of 400 digits) or not finite."""
    where = f"row {row + 1}, column {column!r}"
    if isinstance(value, bool | np.bool_):
        raise TaskDataError(f"{where}: expected a number, got {value!r}")
    try:
        number = read_number(value) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        number = None
    except OverflowError:  # no repr: an int of over 4300 digits has none
        raise TaskDataError(f"{where}: the number is beyond the range of a float (±1.8e308)") from None
    if number is None:
        raise TaskDataError(f"{where}: expected a number, got {value!r:.60}")
    if not math.isfinite(number):
        raise TaskDataError(f"{where}: {value!r} is not a finite number")
    return number
