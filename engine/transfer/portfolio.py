"""Zero-shot choice: a portfolio that covers the sources, ranked for the target by a learned model.

In the manner of auto-sklearn 2.0 and FLAML's zero-shot AutoML: :func:`greedy_portfolio` picks, among
the source ensemble's candidates, configurations that together do well on every source (each pick adds
most to ``sum_s max(pred_s(c), m_s)``, ``m_s`` what the earlier picks reach on source ``s``, every
source counting the same). :func:`learned_ranking` fits one model across all sources that predicts a
configuration's rank-normalised value from the task's meta-features and the configuration, and scores
every candidate for the target; the portfolio is ordered by it. Measured on the training group of
``bench/warmstart.py`` (docs/benchmarks.md), this first configuration beat the similarity-weighted
ensemble's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from engine.task.metafeatures import FEATURE_NAMES, meta_feature_vector
from engine.transfer.similarity import DISTANCE_FEATURES
from engine.transfer.surrogate import SourceEnsemble, fit_surrogate

__all__ = ["PORTFOLIO_SIZE", "greedy_portfolio", "learned_ranking", "ranked_portfolio"]

PORTFOLIO_SIZE = 8
"""Configurations in the portfolio."""


def greedy_portfolio(ensemble: SourceEnsemble, size: int = PORTFOLIO_SIZE) -> list[int]:
    """Indices of up to ``size`` candidates that together cover the sources, in the order picked."""
    if not ensemble.sources:
        return ensemble.pick(ensemble.scores(ensemble.prior), [], top=size)
    uniform = np.full(len(ensemble.sources), 1.0 / len(ensemble.sources))
    members: list[int] = []
    while len(members) < size:
        tried = [ensemble.candidates[i].params for i in members]
        covered = ensemble.coverage(tried) if tried else None
        chosen = ensemble.pick(ensemble.scores(uniform, covered=covered), tried)
        if not chosen:
            break
        members.extend(chosen)
    return members


def learned_ranking(ensemble: SourceEnsemble, meta_features: Mapping[str, float]) -> np.ndarray:
    """Every candidate's predicted rank-normalised value on the target, by one model fitted across the
    sources on (meta-features, configuration).

    Meta-features are scaled by their inter-quartile range over the sources and the target. With no
    source, the similarity-weighted ensemble score stands in.
    """
    if not ensemble.sources or not ensemble.candidates:
        return ensemble.scores(ensemble.prior)
    cols = [FEATURE_NAMES.index(f) for f in DISTANCE_FEATURES]
    target = meta_feature_vector(meta_features)[cols]
    tasks = np.array([meta_feature_vector(s.meta_features)[cols] for s in ensemble.sources])
    everyone = np.vstack([tasks, target])
    q25, q75 = np.percentile(everyone, [25, 75], axis=0)
    scale = np.where(q75 - q25 > 1e-12, q75 - q25, 1.0)
    rows, ranks = [], []
    for src, m in zip(ensemble.sources, (tasks - q25) / scale, strict=True):
        trials = [t for t in src.trials if t.complete]
        if trials:
            X = ensemble.space.encode([t.params for t in trials])
            rows.append(np.hstack([np.tile(m, (len(trials), 1)), X]))
            ranks.append([t.rank for t in trials])
    if not rows:
        return ensemble.scores(ensemble.prior)
    model = fit_surrogate(np.vstack(rows), np.concatenate(ranks), ensemble.seed, n_estimators=128)
    m = (target - q25) / scale
    return np.asarray(model.predict(np.hstack([np.tile(m, (len(ensemble.candidates), 1)), ensemble.X])))


def ranked_portfolio(
    ensemble: SourceEnsemble, meta_features: Mapping[str, float], top: int
) -> tuple[list[int], np.ndarray]:
    """The ``top`` candidates to try first on the target, and the learned score of every candidate.

    The portfolio's members come first, best predicted first; if ``top`` asks for more, the remaining
    candidates follow by the same prediction (never near duplicates of earlier ones).
    """
    scores = learned_ranking(ensemble, meta_features)
    members = sorted(greedy_portfolio(ensemble), key=lambda i: (-scores[i], i))
    chosen: list[int] = members[:top]
    if len(chosen) < top:
        taken: Sequence[Mapping[str, object]] = [ensemble.candidates[i].params for i in chosen]
        chosen += [i for i in ensemble.pick(scores, taken, top=top - len(chosen)) if i not in chosen]
    return chosen, scores
