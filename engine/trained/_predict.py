"""Loading an exported model and predicting on raw rows (a CSV file's cells, or dictionaries).

Rules for the rows, never a silent wrong answer: every column the model was trained on must be there
(found by name; other columns, the target included, are ignored), and a CSV header names each column
once; a missing cell, a non-number in a numeric column, a number beyond ±1e30 (training refuses those
too) or a category not seen in training is an error naming the row and column
(:class:`~engine.task.RowEncoding`), and so is an output that is not finite. Predictions run with one
torch thread, as the search evaluated trials, so that they reproduce the stored values bit for bit on
the same machine.
"""

from __future__ import annotations

import csv
import difflib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import TaskDataError
from engine.plugin import PluginHost
from engine.strategy import Strategy
from engine.study.runtime import torch_threads
from engine.study.trained import TrainedModel
from engine.task import out_of_range_cell
from engine.trained._export import export
from engine.trained._format import CARD_FILE, WEIGHTS_FILE, ModelCard, ModelError, read_card, read_members

__all__ = ["LoadedModel", "load_best_model", "load_model", "predict_csv", "read_csv_rows"]


class LoadedModel:
    """An exported model, ready to predict. Build it with :func:`load_model`.

    Attributes:
        card: What the model directory says about the model.
    """

    def __init__(self, card: ModelCard, trained: TrainedModel) -> None:
        self.card = card
        self._trained = trained

    @property
    def kind(self) -> str:
        return self.card.kind

    @property
    def classes(self) -> tuple[str, ...]:
        """Class labels as the training data had them (classification), in probability-column order."""
        return self.card.class_names

    @property
    def columns(self) -> tuple[str, ...]:
        """The raw columns a row needs, in order."""
        return tuple(c.name for c in self.card.encoding.columns)

    def encode(self, rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]] | np.ndarray) -> np.ndarray:
        """Raw rows to the model's features.

        Args:
            rows: Mappings from column name to cell (extra keys ignored), or sequences of cells in the
                order of :attr:`columns`.
        """
        if isinstance(rows, Mapping | str | bytes):
            raise TaskDataError(
                f"rows must be a list of rows, got one {type(rows).__name__}; wrap a single row in a list"
            )
        rows = list(rows)
        mappings = bool(rows) and isinstance(rows[0], Mapping)
        for r, row in enumerate(rows):
            text = isinstance(row, str | bytes) or not hasattr(row, "__len__")
            if text or isinstance(row, Mapping) != mappings:
                what = "mappings from column name to value" if mappings else "sequences of values"
                raise TaskDataError(
                    f"row {r + 1} is {row!r:.60}, not a row like the first ones ({what}); pass a list of "
                    "rows (a 2-D array), each a mapping from column name to value or a sequence of values"
                )
        if mappings:
            header = list(self.columns)
            for r, row in enumerate(rows):
                absent = [c for c in header if c not in row]
                if absent:
                    spare = [str(k) for k in row if k not in header]
                    close = [m for name in absent for m in difflib.get_close_matches(name, spare, n=1)]
                    hint = f"; it has {', '.join(repr(m) for m in close)}: a misspelling?" if close else ""
                    raise TaskDataError(
                        f"row {r + 1} lacks column(s) {absent} that the model was trained on{hint}"
                    )
            cells = [[row[c] for c in header] for row in rows]
            return self.card.encoding.encode(header, cells)
        for r, row in enumerate(rows):
            if len(row) != len(self.columns):
                raise TaskDataError(
                    f"row {r + 1} has {len(row)} values; the model takes {len(self.columns)}, in the order "
                    f"{list(self.columns)} (or pass rows as mappings from column name to value)"
                )
        return self.card.encoding.encode(list(self.columns), rows)

    def output(self, X: np.ndarray) -> np.ndarray:
        """The members' mean output for encoded features: probabilities ``(n, k)`` or values ``(n,)``.

        Raises:
            TaskDataError: ``X`` has the wrong shape, or a value that is not finite or beyond ±1e30.
            ModelError: An output is not finite (the weights hold non-finite numbers, or overflow).
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.card.n_features:
            raise TaskDataError(
                f"expected encoded features of shape (n, {self.card.n_features}), got {X.shape}"
            )
        if not len(X):
            raise TaskDataError("no rows to predict; give at least one")
        cell = out_of_range_cell(X, self.card.feature_names)
        if cell is not None:
            raise TaskDataError(
                f"{cell}, where the model's arithmetic overflows (training refuses such values too); "
                "fix the value"
            )
        with torch_threads(1):
            out = self._trained.predict(X)
        bad = np.flatnonzero(~np.isfinite(out.reshape(len(out), -1)).all(axis=1))
        if bad.size:
            raise ModelError(
                f"row {int(bad[0]) + 1}: the model's output is not a finite number ({len(bad)} row(s) in "
                f"all): its weights hold non-finite numbers or its arithmetic overflows on these values; "
                "check the row, or export the model again"
            )
        return out

    def predict_proba(self, rows: Any) -> np.ndarray:
        """Class probabilities, one column per :attr:`classes` label.

        Raises:
            ModelError: The model is a regression model.
        """
        if self.kind != "classification":
            raise ModelError(
                "probabilities exist for classification models only; this one is a regression model"
            )
        return self.output(self.encode(rows))

    def predict(self, rows: Any) -> np.ndarray:
        """Predicted labels (the data's own class labels, as strings) or values (``float64``)."""
        out = self.output(self.encode(rows))
        if self.kind == "classification":
            return np.asarray(self.classes, dtype=object)[out.argmax(axis=1)]
        return out


def load_model(
    path: str | Path,
    *,
    plugins: Sequence[str] = (),
    strategy_class: type[Strategy] | None = None,
    device: str = "cpu",
) -> LoadedModel:
    """Load a model directory written by :func:`engine.trained.export`.

    The model is rebuilt through the plugin contract: ``Strategy(**params).build(info)`` from the
    registered strategy of that name (built-in, installed, or a local module in ``plugins``), then its
    weights are loaded.

    Args:
        path: The model directory.
        plugins: Local plugin modules to load besides the built-in and installed ones.
        strategy_class: Use this class instead of looking the strategy up (the conformance kit does).
        device: Torch device to predict on.

    Raises:
        ModelError: The directory is not a model, or its strategy is not installed or does not fit.
    """
    if not isinstance(path, str | os.PathLike):
        raise ModelError(f"path must be a model directory (a str or a Path), got {path!r}")
    path = Path(path)
    if not (path / CARD_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise ModelError(
            f"{str(path)!r} is not a model directory: it needs {CARD_FILE} and {WEIGHTS_FILE}, as "
            "`stratagem export --search S --task T --out DIR` writes them"
        )
    card = read_card(path)
    cls = strategy_class or _strategy_class(card, plugins)
    try:
        strategy = cls(**card.strategy_params)
    except Exception as exc:
        raise ModelError(f"strategy {card.strategy!r} refused the stored hyperparameters: {exc}") from None
    members = read_members(path / WEIGHTS_FILE, card, strategy.build, device)
    return LoadedModel(card, TrainedModel(card.strategy, dict(card.strategy_params), members))


def load_best_model(
    *, search: str, task: str | None = None, storage: str | None = None, plugins: Sequence[str] = ()
) -> LoadedModel:
    """The kept model of a task's best trial, straight from the storage (exported to a temporary place).

    Raises:
        UnknownNameError: No such search or task.
        ModelError: No model is kept for the best trial.
    """
    with tempfile.TemporaryDirectory(prefix="stratagem-model-") as tmp:
        out = export(search=search, task=task, out=Path(tmp) / "model", storage=storage)
        return load_model(out, plugins=plugins)


def _strategy_class(card: ModelCard, plugins: Sequence[str]) -> type[Strategy]:
    host = PluginHost.load(tuple(plugins))
    if card.strategy not in host.strategies:
        via = f" (registered by plugin {card.plugin!r} when it was trained)" if card.plugin else ""
        raise ModelError(
            f"the model's strategy {card.strategy!r}{via} is not available here: install that plugin, or "
            "pass its module with --plugin"
        )
    cls: type[Strategy] = host.strategies.get(card.strategy)
    return cls


def _csv_delimiter(delimiter: str) -> str:
    """``delimiter`` as the one character :mod:`csv` takes; the two characters ``\\t`` are a tab.

    Raises:
        TaskDataError: It is empty or longer than one character.
    """
    if delimiter == "\\t":
        return "\t"
    if len(delimiter) != 1:
        raise TaskDataError(
            f"the delimiter must be one character, such as ',' or ';' (\\t for a tab), got {delimiter!r}"
        )
    return delimiter


def read_csv_rows(path: str | Path, delimiter: str = ",") -> tuple[list[str], list[list[str]]]:
    """A CSV file's header and rows (cells stripped; blank lines skipped).

    Args:
        path: The CSV file.
        delimiter: The field separator: one character, or the two characters ``\\t`` for a tab (as
            people type it on a command line).

    Raises:
        TaskDataError: The delimiter is not one character, or the file is missing, unreadable, empty,
            its header names a column twice, or a row has the wrong number of fields.
    """
    path = Path(path)
    delimiter = _csv_delimiter(delimiter)
    where = f"CSV file {str(path)!r}"
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            table = [[c.strip() for c in row] for row in csv.reader(f, delimiter=delimiter, strict=True)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TaskDataError(f"{where} cannot be read: {exc}") from None
    table = [row for row in table if any(row)]
    if not table:
        raise TaskDataError(f"{where} is empty; it needs a header row")
    header = [name or f"unnamed_{i}" for i, name in enumerate(table[0])]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise TaskDataError(f"{where}: the header repeats column names {repeated}; rename them")
    for line, row in enumerate(table[1:], start=2):
        if len(row) != len(header):
            raise TaskDataError(
                f"{where}: data row {line - 1} has {len(row)} fields but the header has {len(header)}"
            )
    return header, table[1:]


def predict_csv(
    model: LoadedModel, csv_path: str | Path, *, proba: bool = False, delimiter: str = ","
) -> tuple[list[str], list[list[Any]]]:
    """Predict for every row of a CSV file; return the output table's header and rows.

    Columns: ``prediction``, then with ``proba`` one ``proba_<label>`` column per class. Numbers are
    written in full precision (Python's ``repr``), so reading them back gives the same floats.
    """
    header, rows = read_csv_rows(csv_path, delimiter)
    where = f"CSV file {str(csv_path)!r}"
    if not rows:
        raise TaskDataError(f"{where} has no data rows, only a header; nothing to predict")
    try:
        out = model.output(model.card.encoding.encode(header, rows))
    except TaskDataError as exc:
        raise TaskDataError(f"{where}: {exc}{_delimiter_hint(header, model.columns, delimiter)}") from None
    if model.kind == "classification":
        labels = [model.classes[i] for i in out.argmax(axis=1)]
        head = ["prediction", *(f"proba_{c}" for c in model.classes)] if proba else ["prediction"]
        table = [
            [lab, *(repr(float(p)) for p in row)] if proba else [lab]
            for lab, row in zip(labels, out, strict=True)
        ]
        return head, table
    if proba:
        raise ModelError("--proba is for classification models; this one is a regression model")
    return ["prediction"], [[repr(float(v))] for v in out]


def _delimiter_hint(header: Sequence[str], columns: Sequence[str], delimiter: str) -> str:
    """A hint at ``--delimiter`` when ``header`` has none of ``columns`` but another common separator
    would split it into some of them ('' otherwise)."""
    if any(c in header for c in columns):
        return ""
    for other in (",", ";", "\t"):
        if other != _csv_delimiter(delimiter) and any(
            c.strip() in columns for name in header for c in name.split(other)
        ):
            shown = "\\t" if other == "\t" else other
            return f"; the header has them when split at {other!r}: give --delimiter '{shown}'"
    return ""
