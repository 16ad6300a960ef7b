"""Zero-shot portfolio: configurations that cover the stored tasks, ranked for the target by a model
learned across them."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from engine.testing import kit_history
from engine.transfer import SourceEnsemble
from engine.transfer.portfolio import greedy_portfolio, learned_ranking, ranked_portfolio
from engine.warmstarter import Source


def _ensemble(sources: tuple[Source, ...]) -> SourceEnsemble:
    target, _, _ = kit_history()
    return SourceEnsemble(sources, target.meta_features, [s.meta_features for s in sources], seed=0)


def _lr_matters(sources: tuple[Source, ...]) -> tuple[Source, ...]:
    """The kit's sources, where every task ranks configurations by how near lr is to 1e-2."""
    out = []
    for src in sources:
        trials = tuple(
            dataclasses.replace(
                t, rank=1.0 - abs(math.log10(float(t.params["gradient_descent.lr"])) + 2) / 2
            )
            for t in src.trials
        )
        out.append(dataclasses.replace(src, trials=trials))
    return tuple(out)


def test_the_portfolio_reaches_every_sources_best() -> None:
    _, sources, _ = kit_history()
    ens = _ensemble(sources)
    members = greedy_portfolio(ens, size=4)

    assert len(members) == len(set(members)) == 4
    covered = ens.coverage([ens.candidates[i].params for i in members])
    assert np.allclose(covered, 1.0)  # each source's own best configuration is in it (rank 1 there)
    assert not np.allclose(ens.coverage([ens.candidates[members[0]].params]), 1.0)  # one alone is not


def test_the_learned_ranking_finds_what_all_tasks_agree_on() -> None:
    _, sources, _ = kit_history()
    ens = _ensemble(_lr_matters(sources))
    scores = learned_ranking(ens, kit_history()[0].meta_features)

    assert scores.shape == (len(ens.candidates),)
    best = ens.candidates[int(np.argmax(scores))].params
    assert abs(math.log10(best["gradient_descent.lr"]) + 2) < 0.5
    worst = ens.candidates[int(np.argmin(scores))].params
    assert abs(math.log10(worst["gradient_descent.lr"]) + 2) > 1.0


def test_recommendations_start_with_the_portfolio_best_predicted_first_and_never_repeat() -> None:
    _, sources, _ = kit_history()
    ens = _ensemble(_lr_matters(sources))
    order, scores = ranked_portfolio(ens, kit_history()[0].meta_features, top=12)

    members = set(greedy_portfolio(ens))
    head = order[: len(members)]
    assert set(head) == members
    assert [scores[i] for i in head] == sorted((scores[i] for i in head), reverse=True)
    assert len(order) == len(set(order)) == 12
