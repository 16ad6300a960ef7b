"""Using a meta-mode search: load its best θ, adapt it to a new task's few labelled rows, predict.

``adapt(search=..., support=..., target=...)`` reads the search's best meta-strategy
(:func:`engine.results.meta_best`), downloads its θ from the artifact store (safetensors, never
pickled), rebuilds the strategy through its plugin, takes ``steps`` adaptation steps on the support rows
and predicts the query rows.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optuna.artifacts import download_artifact

from engine.errors import StratagemError, TaskDataError
from engine.meta import FamilyInfo, MetaModel, MetaStrategy, load_meta_learner
from engine.plugin import PluginHost
from engine.results import BestMeta, meta_best
from engine.settings import resolve_storage
from engine.trained import open_store, resolve_artifacts

__all__ = ["AdaptedTask", "adapt", "best_steps", "load_meta_search", "load_theta"]

Rows = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class AdaptedTask:
    """Predictions of a meta-learner adapted to one task.

    Attributes:
        search: The meta-mode search whose θ was used; ``strategy`` its best meta-strategy.
        steps: Adaptation steps taken on the support rows.
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
        StratagemError: The search is not a meta-mode search, or its θ was not kept.
    """
    found = meta_best(storage=storage, search=search)
    if not found:
        raise StratagemError(f"search {search!r} has no finished meta-mode trial; run a meta-mode spec first")
    best = found[0]
    host = PluginHost.load(tuple(plugins))
    classes = {r.name: r.item for r in host.meta_strategies.registrations()}
    strategy, model, info = load_theta(best, classes, resolve_storage(storage))
    return strategy, model, info, best


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

    Args:
        search: The meta-mode search.
        support: Labelled rows: dicts with ``target`` and one numeric column per input value (flattened
            in the family's input shape), or a pair ``(X, y)`` of arrays.
        target: The target column of dict rows.
        query: Rows (the target column, if there, is ignored) or an array ``X`` to predict.
        steps: Adaptation steps; default the step count with the best meta-test score.
        storage: SQLAlchemy URL of the study database.
        plugins: Extra local plugin modules (for a meta-strategy that is not built in).

    Raises:
        TaskDataError: Rows of the wrong width, non-numeric values, or more support labels than the
            family's classes.
    """
    strategy, model, info, best = load_meta_search(search, storage=storage, plugins=plugins)
    if isinstance(support, tuple):
        X, y = _shape(np.asarray(support[0], dtype=np.float32), info, "support"), np.asarray(support[1])
    else:
        X, y = _arrays(support, target, info, "support")
    q = X if query is None else _query(query, target, info)
    if steps is None:
        steps = best_steps(best)
    if info.kind == "classification":
        labels = sorted(set(y.tolist()), key=str)
        if len(labels) > info.n_outputs:
            raise TaskDataError(
                f"support: {len(labels)} labels, but search {search!r} learned {info.n_outputs}-way tasks"
            )
        codes = {label: i for i, label in enumerate(labels)}
        y_t = torch.tensor([codes[v] for v in y.tolist()], dtype=torch.int64)
    else:
        y_t = torch.as_tensor(y.astype(np.float32)).reshape(-1, 1)
    predictor = strategy.adapt(model, torch.as_tensor(X), y_t, steps)
    out = predictor(torch.as_tensor(q))
    predictions: list[Any]
    if info.kind == "classification":
        predictions = [labels[int(i)] if int(i) < len(labels) else int(i) for i in out.argmax(dim=-1)]
    else:
        predictions = [float(v) for v in out.reshape(-1)]
    return AdaptedTask(search, best.strategy, int(steps), len(y), predictions)


def _shape(X: np.ndarray, info: FamilyInfo, what: str) -> np.ndarray:
    width = math.prod(info.input_shape)
    if X.ndim != 2 or X.shape[1] != width:
        raise TaskDataError(
            f"{what}: rows need {width} input values (shape {info.input_shape}), got {X.shape}"
        )
    if not np.isfinite(X).all():
        raise TaskDataError(f"{what}: inputs must be finite numbers")
    return X.reshape(len(X), *info.input_shape)


def _arrays(rows: Rows, target: str | None, info: FamilyInfo, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        raise TaskDataError(f"{what}: no rows")
    if target is None or target not in rows[0]:
        raise TaskDataError(f"{what}: target column {target!r} not found; columns: {list(rows[0])}")
    features = [c for c in rows[0] if c != target]
    try:
        X = np.array([[float(r[c]) for c in features] for r in rows], dtype=np.float32)
    except (TypeError, ValueError, KeyError) as exc:
        raise TaskDataError(f"{what}: inputs must be numbers in columns {features}: {exc}") from None
    y = np.array([r[target] for r in rows], dtype=object)
    if info.kind == "regression":
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise TaskDataError(
                f"{what}: target {target!r} must be numeric for a regression family"
            ) from None
    return _shape(X, info, what), y


def _query(query: Any, target: str | None, info: FamilyInfo) -> np.ndarray:
    if isinstance(query, Sequence) and query and isinstance(query[0], Mapping):
        features = [c for c in query[0] if c != target]
        try:
            X = np.array([[float(r[c]) for c in features] for r in query], dtype=np.float32)
        except (TypeError, ValueError, KeyError) as exc:
            raise TaskDataError(f"query: inputs must be numbers in columns {features}: {exc}") from None
        return _shape(X, info, "query")
    return _shape(np.asarray(query, dtype=np.float32), info, "query")
