"""Transfer across tasks: the stored history that warm start and zero-shot recommendation learn from.

* **Sources** (:func:`discover_sources`): every other task (data fingerprint) with a strategy study of at
  least two complete trials, all its studies pooled. Each study's values are normalised by rank to
  [0, 1] (1 = the study's best, pruned trials 0), so studies judged by different evaluators or directions
  compare.
* **Similarity** (:func:`meta_distances`, :func:`similarity_weights`): stored meta-features
  (:data:`DISTANCE_FEATURES`), each scaled by its inter-quartile range over every stored task of the
  kind plus the target, per-feature differences clipped to 3, distance = their root mean square; prior
  weight ``exp(-(d / h)^2 / 2)`` with ``h`` the median source distance, normalised to sum 1.
* **Configurations** (:class:`ConfigSpace`): the conditional space (``strategy``, ``<strategy>.*``,
  ``updater``, ``<updater>.*``) encoded as numbers for the surrogates.
* **Ensemble** (:class:`SourceEnsemble`): one surrogate per source (extra trees) predicting the
  rank-normalised value of a configuration, candidates from every source's history (and the cross-task
  best defaults), weights from similarity and, once the target has trials, from how well each model
  ranks them. :mod:`engine.warmstart` describes how the weights and the greedy portfolio work.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import select

from engine.metafeatures import FEATURE_NAMES, meta_feature_vector
from engine.objective import ATTR
from engine.search import KIND_STRATEGIES as STUDY_KIND
from engine.storage import Database, SearchRow, SearchTaskRow, TaskRow
from engine.storage.database import open_optuna_storage
from engine.storage.models import DefaultRow

__all__ = [
    "DISTANCE_FEATURES",
    "Candidate",
    "ConfigSpace",
    "Source",
    "SourceEnsemble",
    "SourceTrial",
    "conform_params",
    "cross_task_defaults",
    "discover_sources",
    "meta_distances",
    "similarity_weights",
]

DISTANCE_FEATURES: tuple[str, ...] = tuple(
    f
    for f in FEATURE_NAMES
    if f not in ("n_samples", "n_features", "samples_per_feature", "is_classification")
)
"""Meta-features the task distance compares (raw counts enter through their logarithms)."""

MIN_TARGET_TRIALS = 3
PRIOR_STRENGTH = 5.0
NEAR_DUPLICATE = 0.05
MAX_SOURCES = 20
MAX_CANDIDATES = 2000
MAX_TARGET_TRIALS = 60
_BOOTSTRAPS = 200
_DONE = (TrialState.COMPLETE, TrialState.PRUNED)


# --------------------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class SourceTrial:
    """A finished trial of a source study: flat parameters, raw values and rank within its study."""

    study: str
    number: int
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    value: float | None
    test_value: float | None
    rank: float
    complete: bool


@dataclass(frozen=True)
class Source:
    """Another task's history: every strategy study stored for one data fingerprint.

    ``search``, ``study`` and ``evaluator`` are those of its study with the most complete trials.
    """

    fingerprint: str
    task: str
    search: str
    study: str
    studies: tuple[str, ...]
    evaluator: str
    meta_features: dict[str, float]
    trials: tuple[SourceTrial, ...]

    @property
    def n_complete(self) -> int:
        return sum(t.complete for t in self.trials)

    def ranked(self) -> list[SourceTrial]:
        """Complete trials, best (highest rank) first."""
        return sorted((t for t in self.trials if t.complete), key=lambda t: (-t.rank, t.study, t.number))


def _rank_normalise(values: Sequence[float], maximize: bool) -> np.ndarray:
    """Average ranks scaled to [0, 1], 1 for the best value (a single value gets 1)."""
    arr = np.asarray(values, dtype=np.float64) * (1.0 if maximize else -1.0)
    n = len(arr)
    if n <= 1:
        return np.ones(n)
    order = np.argsort(arr, kind="mergesort")
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.arange(n, dtype=np.float64)
    for v in np.unique(arr):
        tied = arr == v
        ranks[tied] = ranks[tied].mean()
    return ranks / (n - 1)


def _is_strategy_trial(t: FrozenTrial) -> bool:
    return "strategy" in t.params and "updater" in t.params


def _study_trials(storage: optuna.storages.BaseStorage, study_id: int, name: str) -> list[SourceTrial]:
    trials = storage.get_all_trials(study_id, deepcopy=False, states=_DONE)
    complete = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.value is not None
        and math.isfinite(t.value)
        and _is_strategy_trial(t)
    ]
    if not complete:
        return []
    maximize = storage.get_study_directions(study_id)[0] == optuna.study.StudyDirection.MAXIMIZE
    ranks = _rank_normalise([float(t.value) for t in complete if t.value is not None], maximize)
    out = [
        SourceTrial(
            name,
            t.number,
            dict(t.params),
            dict(t.distributions),
            t.value,
            t.user_attrs.get(ATTR, {}).get("test_value"),
            float(r),
            True,
        )
        for t, r in zip(complete, ranks, strict=True)
    ]
    out += [
        SourceTrial(name, t.number, dict(t.params), dict(t.distributions), None, None, 0.0, False)
        for t in trials
        if t.state == TrialState.PRUNED and _is_strategy_trial(t)
    ]
    return out


def discover_sources(
    db: Database,
    kind: str,
    *,
    exclude_fingerprint: str | None,
    storage: optuna.storages.BaseStorage | None = None,
) -> list[Source]:
    """Every other task of ``kind`` with a strategy study holding at least two complete trials.

    Args:
        db: The engine's tables (the tasks' meta-features).
        kind: ``"classification"`` or ``"regression"``.
        exclude_fingerprint: The target task; its studies, in any search, are never read.
        storage: Optuna storage of the same database (default: opened from ``db.url``).

    Returns:
        The sources, ordered by fingerprint.
    """
    storage = storage if storage is not None else open_optuna_storage(db.url, create=False)
    with db.session() as s:
        rows = {
            r.fingerprint: (r.name, dict(r.meta_features))
            for r in s.scalars(select(TaskRow).where(TaskRow.kind == kind))
            if r.fingerprint != exclude_fingerprint
        }
    grouped: dict[str, list[tuple[dict[str, Any], str, list[SourceTrial]]]] = {}
    for study in storage.get_all_studies():
        attrs = study.user_attrs.get(ATTR)
        if not isinstance(attrs, dict) or attrs.get("kind") != STUDY_KIND:
            continue
        fp = attrs.get("fingerprint")
        if not fp or fp == exclude_fingerprint or fp not in rows:
            continue
        trials = _study_trials(storage, study._study_id, study.study_name)
        if sum(t.complete for t in trials) >= 2:
            grouped.setdefault(fp, []).append((attrs, study.study_name, trials))
    sources = []
    for fp, studies in sorted(grouped.items()):
        studies.sort(key=lambda x: (-sum(t.complete for t in x[2]), x[1]))
        attrs, name, _ = studies[0]
        sources.append(
            Source(
                fingerprint=fp,
                task=str(attrs.get("task") or rows[fp][0]),
                search=str(attrs.get("search", "")),
                study=name,
                studies=tuple(n for _, n, _ in studies),
                evaluator=str(attrs.get("evaluator", "")),
                meta_features=rows[fp][1],
                trials=tuple(t for _, _, ts in studies for t in ts),
            )
        )
    return sources


def meta_distances(
    target: Mapping[str, float],
    others: Sequence[Mapping[str, float]],
    population: Iterable[Mapping[str, float]],
) -> np.ndarray:
    """Normalised meta-feature distance from ``target`` to each of ``others`` (see the module docs).

    Args:
        target: The target task's meta-features.
        others: The tasks to measure the distance to.
        population: Every known task of the kind; with ``target`` and ``others`` it sets each feature's
            scale. Entries lacking a feature are ignored.

    Raises:
        ValueError: ``target`` or one of ``others`` lacks a meta-feature.
    """
    cols = [FEATURE_NAMES.index(f) for f in DISTANCE_FEATURES]
    t = meta_feature_vector(target)[cols]
    o = np.array([meta_feature_vector(m)[cols] for m in others]).reshape(len(others), len(cols))
    pop = [t, *o]
    for m in population:
        try:
            pop.append(meta_feature_vector(m)[cols])
        except ValueError:
            continue
    pop_arr = np.array(pop)
    q25, q75 = np.percentile(pop_arr, [25, 75], axis=0)
    span = pop_arr.max(axis=0) - pop_arr.min(axis=0)
    scale = np.where(q75 - q25 > 1e-12, q75 - q25, np.where(span > 1e-12, span, 1.0))
    diffs = np.clip(np.abs(o - t) / scale, 0.0, 3.0)
    return np.asarray(np.sqrt((diffs**2).mean(axis=1)))


def similarity_weights(distances: np.ndarray) -> np.ndarray:
    """Prior source weights ``exp(-(d / h)^2 / 2)`` with ``h`` the median distance, summing to 1."""
    if distances.size == 0:
        return distances
    h = float(np.median(distances))
    if h <= 1e-12:
        h = float(distances.max()) or 1.0
    w = np.exp(-0.5 * (distances / h) ** 2)
    return np.asarray(w / w.sum())


# --------------------------------------------------------------------------------------------- encoding


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class ConfigSpace:
    """Encodes flat conditional configurations (``strategy``, ``mlp.width``, ...) as vectors.

    Built from the parameter distributions seen in the source trials. A numeric parameter becomes its
    position in [0, 1] (on a log scale where the distribution is), -0.5 when inactive; a categorical one
    becomes one indicator per choice, all 0 when inactive.
    """

    def __init__(self, distributions: Iterable[Mapping[str, BaseDistribution]]) -> None:
        self.numeric: dict[str, tuple[float, float, bool]] = {}
        self.choices: dict[str, list[str]] = {}
        self.allowed: dict[str, set[str]] = {}
        for dists in distributions:
            for name, d in dists.items():
                if isinstance(d, CategoricalDistribution) and name not in self.numeric:
                    keys = [_key(c) for c in d.choices]
                    known = self.choices.setdefault(name, [])
                    known.extend(k for k in keys if k not in known)
                    self.allowed[name] = self.allowed.get(name, set(keys)) & set(keys)
                elif isinstance(d, (FloatDistribution, IntDistribution)) and name not in self.choices:
                    low, high, log = float(d.low), float(d.high), bool(d.log)
                    if name in self.numeric:
                        lo, hi, lg = self.numeric[name]
                        low, high, log = min(lo, low), max(hi, high), lg or log
                    self.numeric[name] = (low, high, log and low > 0)
        self._offsets: dict[str, int] = {}
        width = len(self.numeric)
        for name, keys in self.choices.items():
            self._offsets[name] = width
            width += len(keys)
        self.width = width
        self._num_index = {name: i for i, name in enumerate(self.numeric)}

    def unit(self, name: str, value: Any) -> float | None:
        """A numeric parameter's position in [0, 1], or ``None`` if it is not numeric here."""
        if name not in self.numeric or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        low, high, log = self.numeric[name]
        if high <= low:
            return 0.5
        if log:
            u = (math.log(max(float(value), 1e-300)) - math.log(low)) / (math.log(high) - math.log(low))
        else:
            u = (float(value) - low) / (high - low)
        return min(1.0, max(0.0, u))

    def encode(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """One row per configuration."""
        X = np.zeros((len(configs), self.width))
        X[:, : len(self.numeric)] = -0.5
        for row, params in enumerate(configs):
            for name, value in params.items():
                if name in self._num_index:
                    u = self.unit(name, value)
                    if u is not None:
                        X[row, self._num_index[name]] = u
                elif name in self.choices:
                    key = _key(value)
                    if key in self.choices[name]:
                        X[row, self._offsets[name] + self.choices[name].index(key)] = 1.0
        return X

    def distance(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """Mean per-parameter difference in [0, 1]: 1 for a parameter active in one only or a different
        choice, the difference of unit positions for a numeric one."""
        names = set(a) | set(b)
        if not names:
            return 0.0
        total = 0.0
        for name in names:
            if name not in a or name not in b:
                total += 1.0
                continue
            ua, ub = self.unit(name, a[name]), self.unit(name, b[name])
            if ua is not None and ub is not None:
                total += abs(ua - ub)
            else:
                total += float(_key(a[name]) != _key(b[name]))
        return total / len(names)


def _surrogate(X: np.ndarray, y: np.ndarray, seed: int, n_estimators: int = 48) -> Any:
    from sklearn.ensemble import ExtraTreesRegressor

    return ExtraTreesRegressor(
        n_estimators=n_estimators, min_samples_leaf=2, max_features=0.6, random_state=seed
    ).fit(X, y)


def _restrict(
    params: Mapping[str, Any], strategies: Sequence[str] | None, updaters: Sequence[str] | None
) -> dict[str, Any] | None:
    """The configuration's own parameters, or ``None`` if its strategy or updater is not allowed."""
    strategy, updater = params.get("strategy"), params.get("updater")
    if not isinstance(strategy, str) or not isinstance(updater, str):
        return None
    if (strategies is not None and strategy not in strategies) or (
        updaters is not None and updater not in updaters
    ):
        return None
    keep = ("strategy", "updater")
    return {k: v for k, v in params.items() if k in keep or k.startswith((strategy + ".", updater + "."))}


def conform_params(params: Mapping[str, Any], dists: Mapping[str, BaseDistribution]) -> dict[str, Any] | None:
    """Fit ``params`` to the target study's own distributions: numeric values clipped into range;
    ``None`` if a categorical value is not a choice there."""
    out = dict(params)
    for name, value in params.items():
        d = dists.get(name)
        if isinstance(d, CategoricalDistribution):
            if _key(value) not in {_key(c) for c in d.choices}:
                return None
        elif isinstance(d, (FloatDistribution, IntDistribution)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            clipped = min(max(value, d.low), d.high)
            out[name] = round(clipped) if isinstance(d, IntDistribution) else float(clipped)
    return out


# --------------------------------------------------------------------------------------------- ensemble


@dataclass(frozen=True)
class Candidate:
    """A configuration to try, and where it was seen.

    Attributes:
        params: Flat trial parameters (``strategy``, ``<strategy>.<param>``, ``updater``, ...).
        source: Fingerprint of the task it was tried on, or ``None`` for a cross-task default.
        origin: Study and trial number it comes from, or the cross-task search it was chosen by.
        value: Its value there (the evaluator's, or the cross-task loss).
        test_value: Its test-split value there, if recorded.
        rank: Its rank-normalised value there (1 = best of that study), ``None`` for a default.
    """

    params: dict[str, Any]
    source: str | None
    origin: str
    value: float | None
    test_value: float | None
    rank: float | None


def _flatten(
    strategy: str, s_params: Mapping[str, Any], updater: str, u_params: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "strategy": strategy,
        **{f"{strategy}.{k}": v for k, v in s_params.items()},
        "updater": updater,
        **{f"{updater}.{k}": v for k, v in u_params.items()},
    }


def cross_task_defaults(db: Database, kind: str, *, exclude_fingerprint: str | None) -> list[Candidate]:
    """Stored cross-task "best defaults" of ``kind`` whose search did not include the excluded task."""
    from sqlalchemy import inspect

    if not inspect(db.engine).has_table(DefaultRow.__tablename__):
        return []
    with db.session() as s:
        covered: dict[int, set[str]] = {}
        for search_id, fp in s.execute(
            select(SearchTaskRow.search_id, TaskRow.fingerprint).join(
                TaskRow, SearchTaskRow.task_id == TaskRow.id
            )
        ):
            covered.setdefault(search_id, set()).add(fp)
        out = []
        for row, search in s.execute(
            select(DefaultRow, SearchRow.name)
            .join(SearchRow, DefaultRow.search_id == SearchRow.id)
            .where(DefaultRow.kind == kind)
            .order_by(DefaultRow.loss)
        ):
            if exclude_fingerprint is not None and exclude_fingerprint in covered.get(row.search_id, set()):
                continue
            params = _flatten(row.strategy, row.strategy_params, row.updater, row.updater_params)
            out.append(
                Candidate(params, None, f"cross-task default of search {search!r}", row.loss, None, None)
            )
        return out


class SourceEnsemble:
    """Source surrogates and candidate configurations for one target task.

    Args:
        sources: The other tasks' histories (see :func:`discover_sources`).
        meta_features: The target's meta-features.
        population: Meta-features of every stored task of the kind (scales the distance).
        extra: Further candidates (cross-task defaults).
        strategies: Strategies the target may use (``None``: any).
        updaters: Updaters the target may use (``None``: any).
        seed: Seeds the surrogates and the bootstrap.

    Raises:
        ValueError: The target's meta-features are incomplete.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        meta_features: Mapping[str, float],
        population: Iterable[Mapping[str, float]] = (),
        *,
        extra: Sequence[Candidate] = (),
        strategies: Sequence[str] | None = None,
        updaters: Sequence[str] | None = None,
        seed: int = 0,
    ) -> None:
        usable = []
        for src in sources:
            try:
                meta_feature_vector(src.meta_features)
            except ValueError:
                continue
            usable.append(src)
        distances = meta_distances(meta_features, [s.meta_features for s in usable], population)
        order = np.argsort(distances, kind="mergesort")[:MAX_SOURCES]
        self.sources: list[Source] = [usable[i] for i in order]
        self.distances = distances[order]
        self.prior = similarity_weights(self.distances)
        self.seed = seed
        self.space = ConfigSpace(t.distributions for s in self.sources for t in s.trials)
        self.models: list[Any] = []
        self._known: list[dict[str, float]] = [
            {_key(t.params): t.rank for t in src.trials if t.complete} for src in self.sources
        ]
        for i, src in enumerate(self.sources):
            X = self.space.encode([t.params for t in src.trials])
            self.models.append(_surrogate(X, np.array([t.rank for t in src.trials]), seed + i))
        self.candidates = self._candidates(extra, strategies, updaters)
        self.X = self.space.encode([c.params for c in self.candidates])
        self.predictions = self.predict([c.params for c in self.candidates])

    def predict(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Each source's rank-normalised value for each configuration, shape ``(sources, configs)``: the
        observed rank where the source tried exactly that configuration, its surrogate's prediction
        elsewhere."""
        if not self.models or not configs:
            return np.zeros((len(self.models), len(configs)))
        X = self.space.encode(configs)
        out = np.array([m.predict(X) for m in self.models])
        keys = [_key(c) for c in configs]
        for i, known in enumerate(self._known):
            for j, key in enumerate(keys):
                if key in known:
                    out[i, j] = known[key]
        return out

    def coverage(self, tried: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Per source, the best value (as :meth:`predict` gives it) among the ``tried`` configurations."""
        if not tried:
            return np.zeros(len(self.models))
        return np.asarray(self.predict(tried).max(axis=1))

    def _candidates(
        self, extra: Sequence[Candidate], strategies: Sequence[str] | None, updaters: Sequence[str] | None
    ) -> list[Candidate]:
        seen: set[str] = set()
        out: list[Candidate] = []
        pools = [
            [
                Candidate(t.params, s.fingerprint, f"{t.study} #{t.number}", t.value, t.test_value, t.rank)
                for t in s.ranked()
            ]
            for s in self.sources
        ]
        pools.append(list(extra))
        per_source = max(1, MAX_CANDIDATES // max(1, len(pools)))
        for pool in pools:
            for cand in pool[:per_source]:
                params = _restrict(cand.params, strategies, updaters)
                if params is None or any(
                    isinstance(self.space.choices.get(k), list) and _key(v) not in self.space.allowed[k]
                    for k, v in params.items()
                ):
                    continue
                key = _key(params)
                if key not in seen:
                    seen.add(key)
                    out.append(
                        Candidate(params, cand.source, cand.origin, cand.value, cand.test_value, cand.rank)
                    )
        return out

    def scores(
        self,
        weights: np.ndarray,
        target_weight: float = 0.0,
        target_pred: np.ndarray | None = None,
        covered: np.ndarray | None = None,
    ) -> np.ndarray:
        """Ensemble score of every candidate: ``sum_s w_s max(pred_s(c), covered_s) + w_t pred_t(c)``.

        With ``covered`` (see :meth:`coverage`) the score is a greedy portfolio's: a candidate gains only
        where it beats what the configurations tried so far already reach on that source.
        """
        predictions = self.predictions
        if covered is not None and predictions.size:
            predictions = np.maximum(predictions, covered[:, None])
        score = weights @ predictions if len(self.models) else np.zeros(len(self.candidates))
        if target_pred is not None and target_weight > 0:
            score = score + target_weight * target_pred
        return np.asarray(score)

    def reweight(
        self, trials: Sequence[FrozenTrial], maximize: bool
    ) -> tuple[np.ndarray, float, np.ndarray | None]:
        """Weights given the target's own finished trials.

        Returns:
            Source weights, the weight of the target's own surrogate, and that surrogate's prediction
            for every candidate (``None`` while the target has fewer than 3 usable trials).
        """
        trials = [t for t in trials if _is_strategy_trial(t)][-MAX_TARGET_TRIALS:]
        complete = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
        ]
        if len(complete) < MIN_TARGET_TRIALS or not self.models:
            return self.prior, 0.0, None
        pruned = [t for t in trials if t.state == TrialState.PRUNED]
        y = np.concatenate(
            [
                _rank_normalise([float(t.value) for t in complete if t.value is not None], maximize),
                np.zeros(len(pruned)),
            ]
        )
        X = self.space.encode([t.params for t in complete + pruned])
        n = len(y)
        loo = np.empty(n)
        for i in range(n):
            rest = np.arange(n) != i
            loo[i] = _surrogate(X[rest], y[rest], self.seed + i, n_estimators=16).predict(X[i : i + 1])[0]
        preds = np.vstack([*(m.predict(X) for m in self.models), loo])
        wins = _ranking_wins(preds, y, np.random.default_rng(self.seed + n))
        gamma = n / (n + PRIOR_STRENGTH)
        weights = (1.0 - gamma) * self.prior + gamma * wins[:-1]
        target_pred = (
            _surrogate(X, y, self.seed, n_estimators=32).predict(self.X) if self.candidates else None
        )
        return weights, float(gamma * wins[-1]), target_pred

    def summary(self, weights: np.ndarray, top: int = 10) -> list[dict[str, Any]]:
        """The ``top`` sources by weight, as recorded in the warm-start info."""
        order = np.argsort(-weights, kind="mergesort")[:top]
        return [
            {
                "task": self.sources[i].task,
                "search": self.sources[i].search,
                "study": self.sources[i].study,
                "fingerprint": self.sources[i].fingerprint,
                "distance": round(float(self.distances[i]), 4),
                "weight": round(float(weights[i]), 4),
                "n_trials": self.sources[i].n_complete,
            }
            for i in order
        ]

    def pick(
        self,
        score: np.ndarray,
        avoid: Sequence[Mapping[str, Any]],
        *,
        top: int = 1,
        conform: Mapping[str, BaseDistribution] | None = None,
    ) -> list[int]:
        """Indices of the ``top`` best-scoring candidates, none within :data:`NEAR_DUPLICATE` of
        ``avoid`` or of each other (and valid in ``conform``'s distributions, when given)."""
        chosen: list[int] = []
        taken = list(avoid)
        for i in np.argsort(-score, kind="mergesort"):
            params = self.candidates[i].params
            if conform is not None and conform_params(params, conform) is None:
                continue
            if all(self.space.distance(params, other) >= NEAR_DUPLICATE for other in taken):
                chosen.append(int(i))
                taken.append(params)
                if len(chosen) == top:
                    break
        return chosen


def _ranking_wins(preds: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Share of bootstrap resamples of the target trials in which each model misranks fewest pairs
    (a pair tied in the prediction counts half; ties for fewest share the win)."""
    n = len(y)
    idx = rng.integers(0, n, size=(_BOOTSTRAPS, n))
    Y = y[idx]
    P = preds[:, idx]
    lower = (Y[:, :, None] < Y[:, None, :])[None]
    above = P[:, :, :, None] > P[:, :, None, :]
    tied = P[:, :, :, None] == P[:, :, None, :]
    loss = (lower & above).sum(axis=(2, 3)) + 0.5 * (lower & tied).sum(axis=(2, 3))
    is_min = loss == loss.min(axis=0)
    return np.asarray((is_min / is_min.sum(axis=0)).mean(axis=1))
