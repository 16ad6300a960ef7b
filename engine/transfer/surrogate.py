"""The source ensemble: one surrogate per source, candidates from every source, weights that learn.

Each source gets a surrogate (extra trees on an encoding of the conditional configuration) that predicts
the rank-normalised value; every source configuration, and the cross-task best defaults, is a candidate.
Weights start from meta-feature similarity and, once the target has trials, follow how well each model
ranks them (RGPE, Feurer et al. 2018; Watanabe et al.'s meta-learning TPE, 2022). The ``transfer`` warm
starter (:mod:`plugins.warm_starters`) describes how the weights and the greedy portfolio are used.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from engine.task.metafeatures import meta_feature_vector
from engine.transfer.similarity import meta_distances, similarity_weights
from engine.transfer.sources import is_strategy_trial, rank_normalise
from engine.transfer.space import NEAR_DUPLICATE, ConfigSpace, conform_params, param_key, restrict
from engine.warmstarter import Candidate, Source, SourceUse

__all__ = ["SourceEnsemble", "fit_surrogate"]

MIN_TARGET_TRIALS = 3
PRIOR_STRENGTH = 5.0
MAX_SOURCES = 20
MAX_CANDIDATES = 2000
MAX_TARGET_TRIALS = 60
_BOOTSTRAPS = 200
_CHOSEN_BY_SEARCH = ("strategy", "updater")
"""Parameters whose choices are each search's own strategy and updater lists: a candidate's are checked
against the target's lists (:func:`restrict`), never against the choices other sources had."""


def fit_surrogate(X: np.ndarray, y: np.ndarray, seed: int, n_estimators: int = 48) -> Any:
    """Extra trees predicting a rank-normalised value from encoded configurations (and features)."""
    from sklearn.ensemble import ExtraTreesRegressor

    return ExtraTreesRegressor(
        n_estimators=n_estimators, min_samples_leaf=2, max_features=0.6, random_state=seed
    ).fit(X, y)


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
        space: The target's own parameter distributions, where known (a plugin's ranges and choices
            may have changed since the sources ran): candidates are fitted into them, numbers clipped,
            parameters the target lacks dropped, and those with a choice the target lacks left out.
            Elsewhere a categorical value must be a choice in every source that had the parameter.

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
        space: Mapping[str, BaseDistribution] | None = None,
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
        self.target_space: dict[str, BaseDistribution] = dict(space or {})
        self.space = ConfigSpace(t.distributions for s in self.sources for t in s.trials)
        self.models: list[Any] = []
        self._predicted: dict[str, np.ndarray] = {}
        self._known: list[dict[str, float]] = [
            {param_key(t.params): t.rank for t in src.trials if t.complete} for src in self.sources
        ]
        for i, src in enumerate(self.sources):
            X = self.space.encode([t.params for t in src.trials])
            self.models.append(fit_surrogate(X, np.array([t.rank for t in src.trials]), seed + i))
        self.candidates = self._candidates(extra, strategies, updaters, self.target_space)
        self.X = self.space.encode([c.params for c in self.candidates])
        self.predictions = self.predict([c.params for c in self.candidates])

    def predict(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Each source's rank-normalised value for each configuration, shape ``(sources, configs)``: the
        observed rank where the source tried exactly that configuration, its surrogate's prediction
        elsewhere."""
        if not self.models or not configs:
            return np.zeros((len(self.models), len(configs)))
        keys = [param_key(c) for c in configs]
        out = self._raw(configs, keys)
        for i, known in enumerate(self._known):
            for j, key in enumerate(keys):
                if key in known:
                    out[i, j] = known[key]
        return out

    def _raw(self, configs: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> np.ndarray:
        """Each source surrogate's prediction for each configuration, shape ``(sources, configs)``.

        A search asks about the same configurations (its trials, the candidates) before every trial, and
        the surrogates never change: each configuration is predicted once and remembered by its key."""
        missing = {k: c for k, c in zip(keys, configs, strict=True) if k not in self._predicted}
        if missing and self.models:
            fresh = np.array([m.predict(self.space.encode(list(missing.values()))) for m in self.models])
            for j, key in enumerate(missing):
                self._predicted[key] = fresh[:, j]
        return np.array([self._predicted[k] for k in keys]).T.reshape(len(self.models), len(keys))

    def coverage(self, tried: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Per source, the best value (as :meth:`predict` gives it) among the ``tried`` configurations."""
        if not tried:
            return np.zeros(len(self.models))
        return np.asarray(self.predict(tried).max(axis=1))

    def _candidates(
        self,
        extra: Sequence[Candidate],
        strategies: Sequence[str] | None,
        updaters: Sequence[str] | None,
        space: Mapping[str, BaseDistribution],
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
                params = restrict(cand.params, strategies, updaters)
                if params is not None and space:
                    params = conform_params(
                        {k: v for k, v in params.items() if k in space or k in _CHOSEN_BY_SEARCH}, space
                    )
                if params is None or any(
                    k not in _CHOSEN_BY_SEARCH
                    and k not in space
                    and isinstance(self.space.choices.get(k), list)
                    and param_key(v) not in self.space.allowed[k]
                    for k, v in params.items()
                ):
                    continue
                key = param_key(params)
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
        weights, target_weight, model = self.target_model(trials, maximize)
        if model is None or not self.candidates:
            return weights, target_weight, None
        return weights, target_weight, np.asarray(model.predict(self.X))

    def target_model(
        self, trials: Sequence[FrozenTrial], maximize: bool, *, folds: int | None = None
    ) -> tuple[np.ndarray, float, Any]:
        """Weights given the target's own finished trials, and the target's own surrogate.

        Over bootstrap resamples of the target's trials, each model (every source surrogate, and the
        target's surrogate judged out of fold) counts the pairs of trials it ranks wrongly; its data
        weight is the share of resamples in which it ranks best, blended with the prior by
        ``n / (n + 5)`` for ``n`` target trials.

        Args:
            trials: The target study's trials (unfinished ones are ignored; pruned ones rank last).
            maximize: The target study's direction.
            folds: Folds to judge the target's surrogate (``None``: leave one out).

        Returns:
            Source weights, the weight of the target's own surrogate, and that surrogate (``None``, with
            the prior weights, while the target has fewer than 3 usable trials).
        """
        trials = [t for t in trials if is_strategy_trial(t)][-MAX_TARGET_TRIALS:]
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
                rank_normalise([float(t.value) for t in complete if t.value is not None], maximize),
                np.zeros(len(pruned)),
            ]
        )
        configs = [t.params for t in complete + pruned]
        X = self.space.encode(configs)
        n = len(y)
        k = n if folds is None else min(n, folds)
        fold = np.arange(n) % k
        held_out = np.empty(n)
        for i in range(k):
            rest = fold != i
            model = fit_surrogate(X[rest], y[rest], self.seed + i, n_estimators=16)
            held_out[~rest] = model.predict(X[~rest])
        preds = np.vstack([self._raw(configs, [param_key(c) for c in configs]), held_out])
        wins = _ranking_wins(preds, y, np.random.default_rng(self.seed + n))
        gamma = n / (n + PRIOR_STRENGTH)
        weights = (1.0 - gamma) * self.prior + gamma * wins[:-1]
        return weights, float(gamma * wins[-1]), fit_surrogate(X, y, self.seed, n_estimators=32)

    def summary(self, weights: np.ndarray, top: int = 10) -> tuple[SourceUse, ...]:
        """The ``top`` sources by weight, as recorded in the warm-start record."""
        order = np.argsort(-weights, kind="mergesort")[:top]
        return tuple(
            SourceUse(
                task=self.sources[i].task,
                search=self.sources[i].search,
                study=self.sources[i].study,
                fingerprint=self.sources[i].fingerprint,
                distance=round(float(self.distances[i]), 4),
                weight=round(float(weights[i]), 4),
                n_trials=self.sources[i].n_complete,
            )
            for i in order
        )

    def neighbour_bests(self, k: int) -> list[tuple[int, int]]:
        """The best candidate of each of the ``k`` nearest sources that have one, nearest first
        (auto-sklearn's meta-learning warm start), none a near duplicate of an earlier one.

        Returns:
            ``(source index, candidate index)`` pairs.
        """
        chosen: list[tuple[int, int]] = []
        taken: list[Mapping[str, Any]] = []
        for s, src in enumerate(self.sources):  # nearest first
            if len(chosen) == k:
                break
            for i, cand in enumerate(self.candidates):  # each source's candidates come best first
                if cand.source == src.fingerprint and all(
                    self.space.distance(cand.params, o) >= NEAR_DUPLICATE for o in taken
                ):
                    chosen.append((s, i))
                    taken.append(cand.params)
                    break
        return chosen

    def pick(
        self,
        score: np.ndarray,
        avoid: Sequence[Mapping[str, Any]],
        *,
        top: int = 1,
        conform: Mapping[str, BaseDistribution] | None = None,
        among: Collection[int] | None = None,
    ) -> list[int]:
        """Indices of the ``top`` best-scoring candidates, none within :data:`NEAR_DUPLICATE` of
        ``avoid`` or of each other (and valid in ``conform``'s distributions, when given; only those
        in ``among``, when given)."""
        chosen: list[int] = []
        taken = list(avoid)
        for i in np.argsort(-score, kind="mergesort"):
            if among is not None and i not in among:
                continue
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
