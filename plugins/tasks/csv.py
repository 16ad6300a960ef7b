"""The ``csv`` task source: a table in a CSV file with a header row; one column is the target.

A spec entry looks like::

    [[tasks]]
    source = "csv"
    path = "data/houses.csv"      # relative to the spec's folder
    target = "price"
    drop = ["id"]

CSV files are read with the standard library's :mod:`csv` module (no pandas). How a CSV column becomes
data:

* **Missing values** are empty cells and the tokens in :data:`MISSING_TOKENS` (case-insensitive), in the
  target and feature columns only (columns named in ``drop`` are ignored). With ``missing = "drop"`` (the
  default) rows with any missing value are dropped, with a warning (the ``stratagem`` logger, shown on
  stderr) naming the file, how many rows and which classes lost all their rows, unless that would drop
  more than half of the rows, which is refused: the remaining rows would be a different task.
  ``missing = "error"`` refuses any missing value. Either refusal names the columns and how many values
  each lacks.
* **Numbers** are cells that Python's ``float`` reads, except cells with ``_`` ('0_1') or non-ASCII
  digits, which are text. A column that holds numbers but for a few other cells (at least
  :data:`NUMERIC_SHARE` of its cells are numbers, or decimal-comma numbers such as '0,13', and those
  numbers alone would be a regression target) is refused naming those cells and their lines: they are
  typos, missing-value markers or decimal commas, not categories. Without ``kind``, that holds for the
  target too.
* **Task kind**, unless ``kind`` is given: a target with a non-numeric value is a classification target; a
  numeric target with exactly two distinct values is a classification target; a numeric target whose
  values are all whole numbers, with at most :data:`MAX_AUTO_CLASSES` distinct values and at least two
  rows per distinct value on average, is a classification target; any other numeric target is a
  regression target. Distinct values are distinct cells, as the class labels would be.
* **Class labels** are the cells as written (stripped): '1.1' and '1.10', or '7' and '007', are two
  classes, never merged by reading them as numbers. They become codes ``0..k-1`` in sorted order
  (numeric order when all are numbers); the labels are kept as ``class_names``. Every class needs at
  least two rows.
* **Features**: a column whose values all parse as numbers is used as is; any other column is one-hot
  encoded into one 0/1 column per level, named ``column=level``. A non-numeric column with more than
  :data:`MAX_CATEGORY_LEVELS` levels is refused (it is usually an identifier or free text: ``drop`` it).
* **Encoding kept**: the dataset carries a :class:`~engine.RowEncoding` (the feature columns in order,
  each numeric or one-hot with its levels) so that an exported model predicts on new raw rows the same
  way; the original class labels are its ``class_names``.
* An empty header cell names its column ``unnamed_<position>`` (0-based), as a file written with an index
  column has; ``drop`` it by that name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engine import Dataset, Option, RowEncoding, TaskDataError, TaskKind, TaskSource
from plugins.tasks._csv_columns import (
    MAX_AUTO_CLASSES,
    MAX_CATEGORY_LEVELS,
    MISSING_TOKENS,
    NUMERIC_SHARE,
    did_you_mean,
    encode_features,
    encode_target,
    handle_missing,
    read_csv,
)

__all__ = ["MAX_AUTO_CLASSES", "MAX_CATEGORY_LEVELS", "MISSING_TOKENS", "NUMERIC_SHARE", "CsvSource"]

log = logging.getLogger("stratagem")


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
                does not exist, values are missing (beyond what ``missing`` allows), a numeric column
                has a few cells that are not numbers, a class has a single row, or no usable feature
                column is left.
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

        header, rows, lines = read_csv(path, delimiter)
        where = f"CSV file {str(path)!r}"
        columns = ", ".join(repr(c) for c in header)
        if target not in header:
            hint = did_you_mean([target], header)
            if len(header) == 1:
                hint = f"; the file has a single column, so is the delimiter {delimiter!r} right?"
            raise TaskDataError(f"{where}: no target column {target!r}; its columns are {columns}{hint}")
        unknown = [c for c in drop if c not in header]
        if unknown:
            raise TaskDataError(
                f"{where}: drop names unknown columns {unknown}; its columns are {columns}"
                f"{did_you_mean(unknown, header)}"
            )
        if target in drop:
            raise TaskDataError(f"{where}: the target column {target!r} is also listed in drop")
        t = header.index(target)
        feature_cols = [i for i, c in enumerate(header) if i != t and c not in drop]
        if not feature_cols:
            raise TaskDataError(f"{where}: no feature columns are left besides the target {target!r}")

        kept, gaps = handle_missing(where, header, rows, [t, *feature_cols], missing)
        dropped = [rows[r] for r in sorted(set(range(len(rows))) - set(kept))]
        rows, lines = [rows[r] for r in kept], [lines[r] for r in kept]
        y, kind, class_names, detected = encode_target(where, target, [r[t] for r in rows], kind, lines)
        X, feature_names, encodings = encode_features(where, header, rows, feature_cols, lines)
        if np.all(X.max(axis=0) == X.min(axis=0)):
            raise TaskDataError(
                f"{where}: every feature column has the same value on every row, so there is nothing to "
                f"learn from; check the file or the drop option"
            )
        notes = [f"target {target!r}", f"{kind} ({'detected' if detected else 'given'})"]
        if dropped:
            notes.append(f"{len(dropped)} rows with missing values dropped")
            lost = sorted({r[t] for r in dropped if r[t].lower() not in MISSING_TOKENS} - set(class_names))
            gone = (
                f"; class(es) {', '.join(repr(c) for c in lost)} lost every row and will not be learned"
                if kind == "classification" and lost
                else ""
            )
            log.warning(
                "%s: dropped %d of %d rows for missing values (per column: %s)%s; set missing = 'error' in "
                "the task entry to be refused instead, or fill the values in",
                where,
                len(dropped),
                len(dropped) + len(rows),
                gaps,
                gone,
            )
        return Dataset(
            name=path.stem,
            X=X,
            y=y,
            kind=kind,
            feature_names=feature_names,
            class_names=class_names,
            description=f"CSV file {path} ({'; '.join(notes)})",
            encoding=RowEncoding(encodings, target=target, missing=tuple(sorted(MISSING_TOKENS))),
        )
