"""Using a meta-mode search: load its best θ, adapt it to a new task's few labelled rows, predict.

``adapt(search=..., support=..., target=...)`` reads the search's best meta-strategy
(:func:`engine.results.meta_best`), downloads its θ from the artifact store (safetensors, never
pickled), rebuilds the strategy through its plugin, takes ``steps`` adaptation steps on the support rows
and predicts the query rows. Rows hold raw values: the standardisation a family applied to its inputs
in meta-training (kept with θ, :attr:`engine.meta.FamilyInfo.input_mean`) is applied to them, and
their columns are matched by name to the family's (``input_columns``) and the support's. So is a
regression family's standardisation of its targets (``target_mean``): support targets are mapped in,
predictions back to the target's units.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optuna.artifacts import download_artifact

from engine.errors import StratagemError, TaskDataError
from engine.meta import FamilyInfo, MetaModel, MetaStrategy, TaskFamily, load_meta_learner
from engine.plugin import PluginHost, Registry
from engine.results import BestMeta, meta_best
from engine.settings import resolve_storage
from engine.spec.checks import MAX_STEPS
from engine.storage.locations import locate
from engine.task import MAX_ABS_VALUE, out_of_range_cell, read_number
from engine.trained import open_store, resolve_artifacts

__all__ = ["AdaptedTask", "adapt", "best_steps", "load_meta_search", "load_theta"]

Rows = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class AdaptedTask:
    """Predictions of a meta-learner adapted to one task.

    Attributes:
        search: The meta-mode search whose θ was used; ``strategy`` its best meta-strategy.
        steps: Adaptation steps taken on the support rows (0 for a strategy that takes none, such as
            prototypes, whatever was asked).
        n_support: Support rows.
        predictions: One per query row: a number (regression) or a support label (classification).
    """

    search: str
    strategy: str
    steps: int
    n_support: int
    predictions: list[Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_meta_search(
    search: str, *, storage: str | None = None, plugins: Sequence[str] = ()
) -> tuple[MetaStrategy, MetaModel, FamilyInfo, BestMeta]:
    """The best θ of a meta-mode search, rebuilt through its meta-strategy's plugin.

    Raises:
        UnknownNameError: No such search.
        StratagemError: The search is not a meta-mode search, or its θ was not kept, or it was kept
            without the input standardisation its family applies (kept by an earlier version).
    """
    found = meta_best(storage=storage, search=search)
    if not found:
        raise StratagemError(f"search {search!r} has no finished meta-mode trial; run a meta-mode spec first")
    best = found[0]
    host = PluginHost.load(tuple(plugins))
    classes = {r.name: r.item for r in host.meta_strategies.registrations()}
    strategy, model, info = load_theta(best, classes, resolve_storage(storage))
    if not info.input_mean:
        _check_raw_inputs(best, host.task_families)
    return strategy, model, info, best


def _check_raw_inputs(best: BestMeta, families: Registry[type[TaskFamily]]) -> None:
    """Refuse θ kept without a standardisation that its family (rebuilt from the stored options) applies.

    θ kept before families reported their input columns and standardisation carries none; adapting it
    to raw rows of a family that standardises (``csv``) would predict wrongly without a word.
    """
    name = str(best.family.get("name"))
    if name not in families:
        return
    options = {k: v for k, v in best.family.items() if k != "name"}
    rerun = "run the search again (delete it first, or under a new name) to keep θ with its standardisation"
    try:
        current = families.get(name)(**options).info()
    except (StratagemError, TypeError, ValueError, OSError) as exc:
        raise StratagemError(
            f"search {best.search!r}: its θ was kept without its inputs' standardisation, and family "
            f"{name!r} cannot be rebuilt to check that it needs none ({exc}); {rerun}"
        ) from None
    if current.input_mean:
        raise StratagemError(
            f"search {best.search!r}: its θ was kept by an earlier version without the standardisation "
            f"family {name!r} applies to its inputs, so it would predict wrongly from raw rows; {rerun}"
        )


def load_theta(
    best: BestMeta, classes: Mapping[str, type[MetaStrategy]], storage: str
) -> tuple[MetaStrategy, MetaModel, FamilyInfo]:
    """Download the θ kept for ``best`` (safetensors) and rebuild it with the meta-strategy ``classes``.

    Args:
        best: The best meta trial of a search.
        classes: Meta-strategy classes by name.
        storage: The resolved storage URL (for the default artifact directory).

    Raises:
        StratagemError: No θ was kept, or its meta-strategy is not among ``classes``.
    """
    location = best.artifacts or resolve_artifacts(storage)
    if best.artifact_id is None or location is None:
        raise StratagemError(
            f"search {best.search!r} kept no θ for its best trial {best.trial}: give it an artifact "
            "directory (search.artifacts or $STRATAGEM_ARTIFACTS) and run it again"
        )
    location = locate(location, storage, best.artifact_id)[0]
    with tempfile.TemporaryDirectory(prefix="stratagem-adapt-") as tmp:
        path = Path(tmp) / "meta_learner.safetensors"
        download_artifact(
            artifact_store=open_store(location), artifact_id=best.artifact_id, file_path=str(path)
        )
        try:
            return load_meta_learner(path, classes)
        except ValueError as exc:
            raise StratagemError(str(exc)) from None


def best_steps(best: BestMeta) -> int:
    """The adaptation step count with the best meta-test score of ``best`` (0 without a curve)."""
    better = max if best.metric == "accuracy" else min
    return int(better(best.test, key=lambda p: p["mean"])["steps"]) if best.test else 0


def adapt(
    *,
    search: str,
    support: Rows | tuple[Any, Any],
    target: str | None = None,
    query: Rows | Any | None = None,
    steps: int | None = None,
    storage: str | None = None,
    plugins: Sequence[str] = (),
) -> AdaptedTask:
    """Adapt a meta-mode search's best θ to ``support`` and predict ``query`` (default: the support inputs).

    Inputs are raw values: where the family standardised its inputs for meta-training (``csv``), the
    same meta-train mean and deviation, kept with θ, are applied here. Input columns are matched by
    name: a family built from a table (``csv``) needs exactly the feature columns it was trained on,
    and query rows need exactly the support rows' input columns, in any order.

    Args:
        search: The meta-mode search.
        support: Labelled rows: dicts with ``target`` and one numeric column per input value (flattened
            in the family's input shape), or a pair ``(X, y)`` of arrays (columns in the family's
            order, :attr:`FamilyInfo.input_columns` where it has one).
        target: The target column of dict rows.
        query: Rows (the target column, if there, is ignored) or an array ``X`` to predict.
        steps: Adaptation steps; default the step count with the best meta-test score.
        storage: SQLAlchemy URL of the study database.
        plugins: Extra local plugin modules (for a meta-strategy that is not built in).

    Raises:
        TaskDataError: Rows of the wrong width, columns other than the family's or the support's,
            non-numeric values, or more support labels than the family's classes.
    """
    support = _rows_given(support, "support")
    query = None if query is None else _rows_given(query, "query")
    strategy, model, info, best = load_meta_search(search, storage=storage, plugins=plugins)
    pair = isinstance(support, tuple) and not (support and isinstance(support[0], Mapping))
    if pair and len(support) != 2:
        raise TaskDataError(f"support: give rows (mappings) or an (X, y) pair, got a tuple of {len(support)}")
    if pair:
        columns = list(info.input_columns)
        X, y = _array(support[0], "support"), _targets(support[1])
        if len(X) != len(y):
            raise TaskDataError(f"support: {len(X)} input rows but {len(y)} targets")
    else:
        columns, X, y = _support(support, target, info)
    if query is None:
        q = X
    elif isinstance(query, Sequence) and not query:
        raise TaskDataError("query: no rows")
    elif isinstance(query, Sequence) and isinstance(query[0], Mapping):
        q = _query(query, target, columns)
    else:
        q = _array(query, "query")
    X_t, q_t = _inputs(X, info, "support"), _inputs(q, info, "query")
    if steps is None:
        steps = best_steps(best)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_STEPS:
        raise TaskDataError(  # a step count in the millions would run for hours without a word
            f"steps must be an integer from 0 to {MAX_STEPS} (adaptation steps, as [meta] steps allows), "
            f"got {steps!r}"
        )
    if info.kind == "classification":
        _check_labels(y)
        labels = sorted(set(y.tolist()), key=str)
        if len(labels) > info.n_outputs:
            raise TaskDataError(
                f"support: {len(labels)} labels, but search {search!r} learned {info.n_outputs}-way tasks"
            )
        codes = {label: i for i, label in enumerate(labels)}
        y_t = torch.tensor([codes[v] for v in y.tolist()], dtype=torch.int64)
    else:
        named = f"target {target!r}" if target is not None and not pair else "targets"
        try:
            y_f = np.array([_number(v) for v in y.tolist()], dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise TaskDataError(f"support: {named} must be numeric for a regression family") from None
        if not np.isfinite(y_f).all():
            raise TaskDataError(f"support: {named} must be finite numbers")
        if (np.abs(y_f) > MAX_ABS_VALUE).any():
            raise TaskDataError(
                f"support: {named} must lie within ±{MAX_ABS_VALUE:.0e}, where the meta-learner's arithmetic "
                "does not overflow; rescale them"
            )
        y_f = (y_f - info.target_mean) / info.target_std  # θ learned targets in the family's units
        y_t = torch.as_tensor(y_f.astype(np.float32)).reshape(-1, 1)
    predictor = strategy.adapt(model, X_t, y_t, steps)
    out = predictor(q_t)
    predictions: list[Any]
    if info.kind == "classification":
        # θ's head may be wider than this task's classes: only the outputs of the support's labels count.
        predictions = [labels[int(i)] for i in out[..., : len(labels)].argmax(dim=-1)]
    else:
        predictions = [float(v) * info.target_std + info.target_mean for v in out.reshape(-1)]
    taken = strategy.steps_taken(y_t, steps)
    return AdaptedTask(search, best.strategy, taken, len(y), predictions)


def _rows_given(value: Any, what: str) -> Any:
    """``value`` as rows ``adapt`` can index: an iterator of rows (a generator, ``csv.DictReader``) is
    read into a list; one row, a string or a number, which would be read cell by cell, is refused."""
    if isinstance(value, Mapping):
        raise TaskDataError(f"{what}: one row (a mapping) given; give a list of rows, one mapping each")
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TaskDataError(f"{what}: give a list of rows (mappings) or an array, got {value!r:.60}")
    if isinstance(value, Iterator):
        return list(value)
    return value


def _targets(values: Any) -> np.ndarray:
    """The ``y`` of an ``(X, y)`` support pair: one target per row (a column vector is accepted)."""
    y = np.asarray(values, dtype=object)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise TaskDataError(f"support: y must hold one target per row (1-D), got shape {y.shape}")
    return y


def _check_labels(y: np.ndarray) -> None:
    """Refuse a support row without a label (``None``, NaN or an empty string): it names no class."""
    for i, label in enumerate(y.tolist(), start=1):
        if label is None or (isinstance(label, float) and math.isnan(label)) or str(label).strip() == "":
            raise TaskDataError(
                f"support: row {i} has no label ({label!r}); give every support row its class"
            )


def _array(values: Any, what: str) -> np.ndarray:
    """``values`` as a float array, or a :class:`TaskDataError` naming ``what``."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TaskDataError(f"{what}: inputs must be numbers: {exc}") from None


def _inputs(X: np.ndarray, info: FamilyInfo, what: str) -> torch.Tensor:
    """Raw input rows ``(n, width)`` checked, standardised as the family did, and shaped for θ."""
    width = math.prod(info.input_shape)
    if X.ndim != 2 or X.shape[1] != width or not len(X):
        raise TaskDataError(
            f"{what}: rows need {width} input values (shape {info.input_shape}), got {X.shape}"
        )
    _check_magnitudes(X, info.input_columns, what)
    if info.input_mean:
        X = (X - np.asarray(info.input_mean)) / np.asarray(info.input_std)
    return torch.as_tensor(X.astype(np.float32).reshape(len(X), *info.input_shape))


def _check_magnitudes(X: np.ndarray, columns: Sequence[str], what: str) -> None:
    """Refuse a value that is not finite or beyond ±1e30, naming its row and column: θ's arithmetic
    overflows on it, as a model's does (``stratagem predict`` and training refuse such values too)."""
    cell = out_of_range_cell(X, columns)
    if cell is not None:
        raise TaskDataError(
            f"{what}: {cell}, where the meta-learner's arithmetic overflows (training refuses such values "
            "too); fix the value"
        )


def _columns(rows: Rows, skip: str | None, what: str) -> list[str]:
    """The columns of ``rows`` but ``skip`` (those of the first row; every row must have the same)."""
    if not rows:
        raise TaskDataError(f"{what}: no rows")
    first = list(rows[0])
    for i, row in enumerate(rows, start=1):
        if set(row) != set(first):
            raise TaskDataError(
                f"{what}: row {i} has columns {sorted(map(str, row))}, row 1 has {sorted(map(str, first))}; "
                "give every row the same columns"
            )
    return [c for c in first if c != skip]


def _mismatch(have: Sequence[str], want: Sequence[str]) -> str | None:
    """What ``have`` lacks and adds compared with ``want`` (``None`` when they are the same set)."""
    missing = [c for c in want if c not in have]
    extra = [c for c in have if c not in want]
    if not missing and not extra:
        return None
    parts = [f"missing column(s) {missing}"] if missing else []
    parts += [f"extra column(s) {extra}"] if extra else []
    return " and ".join(parts)


def _number(value: Any) -> float:
    """``value`` as a float; a string as the ``csv`` source reads a cell (:func:`engine.task.read_number`;
    ``ValueError`` if it is none)."""
    number = read_number(value) if isinstance(value, str) else float(value)
    if number is None:
        raise ValueError(f"not a number: {value!r}")
    return number


def _matrix(rows: Rows, columns: Sequence[str], what: str) -> np.ndarray:
    """The values of ``columns`` in ``rows`` as floats, in that column order."""
    X = np.empty((len(rows), len(columns)), dtype=np.float64)
    for i, row in enumerate(rows):
        for j, c in enumerate(columns):
            try:
                X[i, j] = _number(row[c])
            except (TypeError, ValueError):
                raise TaskDataError(
                    f"{what}: column {c!r} of row {i + 1} is {row[c]!r}, not a number; inputs must be numbers"
                ) from None
    _check_magnitudes(X, columns, what)
    return X


def _support(rows: Rows, target: str | None, info: FamilyInfo) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The support's input columns (the family's order where it has one), inputs and targets."""
    columns = _columns(rows, target, "support")
    if target is None or target not in rows[0]:
        raise TaskDataError(f"support: target column {target!r} not found; columns: {list(rows[0])}")
    if info.input_columns:
        wrong = _mismatch(columns, info.input_columns)
        if wrong:
            raise TaskDataError(
                f"support: {wrong}: family {info.name!r} was meta-trained on input columns "
                f"{list(info.input_columns)}; give exactly those (in any order) besides the target"
            )
        columns = list(info.input_columns)
    for i, row in enumerate(rows, start=1):
        if row[target] is None or (isinstance(row[target], str) and not row[target].strip()):
            raise TaskDataError(
                f"support: row {i} has no value in target column {target!r}; give every support row its label"
            )
    return columns, _matrix(rows, columns, "support"), np.array([r[target] for r in rows], dtype=object)


def _query(rows: Rows, target: str | None, columns: Sequence[str]) -> np.ndarray:
    """Query inputs with their columns matched by name to the support's input ``columns``
    (by position when no names are known: a support given as arrays for a family without names)."""
    have = _columns(rows, target, "query")
    if not columns:
        return _matrix(rows, have, "query")
    wrong = _mismatch(have, columns)
    if wrong:
        raise TaskDataError(
            f"query: {wrong}: its input columns must be the support's, {list(columns)} (in any order)"
        )
    return _matrix(rows, columns, "query")
