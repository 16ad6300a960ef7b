"""Built-in warm starters: ``guided`` (the default), ``transfer`` and ``knn``.

``guided``: the first ``PORTFOLIO_TRIALS`` trials (3; fewer when the warm phase is shorter) run the
zero-shot recommendation's first configurations, as auto-sklearn 2.0 starts a search (a portfolio
covering the sources, ranked for the task by a model learned across them, :func:`engine.ranked_portfolio`).
Then, as ``transfer`` does (below), a callback enqueues one warm trial after each finished trial, but
only among the best configurations of the ``ceil(n_trials / 2)`` nearest sources (``knn``'s), ordered by
the ensemble's score; enqueued trials stay out of the pruner's reference, so they are not pruned against
each other. In the first half of the budget, every trial that is not enqueued is chosen by
:class:`engine.GuidedSampler`, which wraps the study's sampler: among that sampler's proposals and the
sources' configurations, the one that the source surrogates plus the task's own surrogate, weighted as
``transfer`` weights them, score highest. The task's own model gains weight as its trials accumulate;
from half the budget on (or once that model holds half the weight) the study's sampler decides alone,
with every guided trial in its history.

``knn``: auto-sklearn's meta-learning baseline. The best configuration of each of the
``ceil(n_trials / 2)`` nearest sources (by meta-features) is enqueued before the first trial.

``transfer``: uses every source's whole history through a :class:`engine.SourceEnsemble`. Every source
configuration, and the cross-task "best default" of the kind if one is stored, is a candidate scored
``sum_s w_s * pred_s(c) + w_t * pred_t(c)``. Until the target has 3 finished trials ``w`` is the prior
(meta-feature similarity) and ``w_t = 0``. From then on the weights follow the target's own trials, in
the spirit of RGPE (Feurer et al., 2018) and Watanabe et al.'s meta-learning TPE (2022): over bootstrap
resamples of the target's trials, each model (every source surrogate, and a surrogate ``t`` of the
target itself judged leave-one-out) counts the pairs of trials it ranks wrongly; its data weight is the
share of resamples in which it ranks best. A model's weight blends prior and data weight by
``n / (n + 5)`` for ``n`` target trials. After each finished trial a callback enqueues the candidate that
adds most to a greedy portfolio (auto-sklearn 2, FLAML): ``pred_s(c)`` is replaced by
``max(pred_s(c), m_s)``, with ``m_s`` the best that the configurations tried so far reach on source
``s``, so the next pick covers the sources the earlier picks do not. Tried configurations and near
duplicates of them are skipped; a source's own observed rank replaces its surrogate's prediction for
configurations it tried. This goes on until ``ceil(n_trials / 2)`` warm trials are queued, the target's
own model holds half the weight, or candidates run out; the study's sampler, which sees the warm trials
in the history, takes over.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

import engine
from engine import (
    Candidate,
    GuidedSampler,
    Registry,
    SourceEnsemble,
    WarmStart,
    WarmStartContext,
    WarmStarter,
    WarmStartRecord,
    conform_params,
    ranked_portfolio,
)

__all__ = ["PORTFOLIO_TRIALS", "GuidedWarmStarter", "KnnWarmStarter", "TransferWarmStarter"]


@engine.hookimpl
def stratagem_register_warm_starters(registry: Registry[WarmStarter]) -> None:
    registry.add(GuidedWarmStarter())
    registry.add(TransferWarmStarter())
    registry.add(KnnWarmStarter())


PORTFOLIO_TRIALS = 3
"""``guided``'s first trials: the zero-shot portfolio's top configurations. Chosen on the training group of
``bench/warmstart.py`` against 1 (docs/benchmarks.md, "Warm-start choices")."""


def _max_warm(n_trials: int) -> int:
    return max(1, min(n_trials, math.ceil(n_trials / 2)))


def _ensemble(
    ctx: WarmStartContext, method: str, defaults: Sequence[Candidate]
) -> SourceEnsemble | WarmStartRecord:
    """The ensemble over the context's history, or the record that says why there is none."""
    kind = ctx.target.kind
    if not ctx.sources and not defaults:
        reason = (
            f"no finished studies of other {kind} tasks in this storage (a study counts once it has two "
            "completed trials)"
        )
        return WarmStartRecord(used=False, method=method, reason=reason)
    try:
        ensemble = SourceEnsemble(
            ctx.sources,
            ctx.target.meta_features,
            ctx.population,
            extra=defaults,
            strategies=ctx.target.strategies,
            updaters=ctx.target.updaters,
            seed=ctx.seed,
            space=ctx.target.space,
        )
    except ValueError as exc:
        return WarmStartRecord(used=False, method=method, reason=f"cannot compare tasks: {exc}")
    if not ensemble.candidates:
        return WarmStartRecord(
            used=False,
            method=method,
            reason="no configuration of other tasks uses this task's strategies and updaters",
            sources=ensemble.summary(ensemble.prior),
        )
    return ensemble


class KnnWarmStarter(WarmStarter):
    """auto-sklearn's baseline: the best valid configuration of each of the nearest sources."""

    name = "knn"
    description = "enqueue the best configuration of each of the most similar tasks (auto-sklearn)"

    def start(self, context: WarmStartContext) -> WarmStart:
        ensemble = _ensemble(context, self.name, ())
        if isinstance(ensemble, WarmStartRecord):
            return WarmStart(ensemble)
        bests = ensemble.neighbour_bests(_max_warm(context.n_trials))
        for _, i in bests:
            context.study.enqueue_trial(ensemble.candidates[i].params, skip_if_exists=True)
        chosen = [s for s, _ in bests]
        weights = np.zeros(len(ensemble.sources))
        weights[chosen] = 1.0 / max(1, len(chosen))
        record = WarmStartRecord(
            used=bool(chosen),
            method=self.name,
            reason=f"best configurations of the {len(chosen)} most similar task(s) by meta-features",
            sources=tuple(s for s in ensemble.summary(weights, top=len(ensemble.sources)) if s.weight > 0),
            enqueued=len(chosen),
        )
        return WarmStart(record)


class TransferWarmStarter(WarmStarter):
    """Surrogates of every source, weighted by similarity and then by the target's own trials."""

    name = "transfer"
    description = "source surrogates weighted by similarity, then by the task's own trials (RGPE-style)"

    def start(self, context: WarmStartContext) -> WarmStart:
        ensemble = _ensemble(context, self.name, context.defaults)
        if isinstance(ensemble, WarmStartRecord):
            return WarmStart(ensemble)
        max_warm = _max_warm(context.n_trials)
        first = ensemble.pick(ensemble.scores(ensemble.prior), [])
        params = ensemble.candidates[first[0]].params
        context.study.enqueue_trial(params, skip_if_exists=True)
        kind = context.target.kind
        reason = (
            f"{len(ensemble.sources)} other {kind} task(s) with history, weighted by meta-feature "
            "similarity and, once trials finish here, by how well they rank this task's trials"
            if context.sources
            else "no other task's studies; enqueued the cross-task default"
        )
        record = WarmStartRecord(
            used=True,
            method=self.name,
            reason=reason,
            sources=ensemble.summary(ensemble.prior),
            enqueued=1,
            candidates=len(ensemble.candidates),
            max_warm=max_warm,
            target_weight=0.0,
        )
        if max_warm <= 1:
            return WarmStart(record)
        return WarmStart(record, (_TransferCallback(context, ensemble, record, max_warm, [params]),))


class _TransferCallback:
    """After each finished trial, enqueue the next candidate (of those ``among``, when given) until the
    warm phase ends; ``record`` is the warm-start record as it stands."""

    def __init__(
        self,
        context: WarmStartContext,
        ensemble: SourceEnsemble,
        record: WarmStartRecord,
        max_warm: int,
        enqueued: list[dict[str, Any]],
        among: Collection[int] | None = None,
    ) -> None:
        self.context = context
        self.ensemble = ensemble
        self.record = record
        self.max_warm = max_warm
        self.enqueued = enqueued
        self.among = among
        self.finished = 0
        self.active = True

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.finished += 1
        if not self.active or self.finished >= self.context.n_trials:
            return
        slots = study.get_trials(
            deepcopy=False, states=(*engine.DONE_STATES, TrialState.RUNNING, TrialState.WAITING)
        )
        if len(slots) >= self.context.n_trials:  # every trial is done, running or queued: none left to guide
            return
        done = [t for t in slots if t.state in engine.DONE_STATES]
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        weights, target_weight, target_pred = self.ensemble.reweight(done, maximize)
        stop = None
        if len(self.enqueued) >= self.max_warm:
            stop = f"warm phase over after {len(self.enqueued)} trials; the sampler takes over"
        elif target_weight >= 0.5:
            stop = "this task's own trials now outweigh the sources; the sampler takes over"
        else:
            dists: dict[str, BaseDistribution] = dict(self.context.target.space)
            for t in done:
                dists.update(t.distributions)
            tried = [*self.enqueued, *self.context.planned()]
            covered = self.ensemble.coverage(tried)
            chosen = self.ensemble.pick(
                self.ensemble.scores(weights, target_weight, target_pred, covered),
                tried,
                conform=dists,
                among=self.among,
            )
            if not chosen:
                stop = "no untried configuration of other tasks is left; the sampler takes over"
            else:
                params = conform_params(self.ensemble.candidates[chosen[0]].params, dists)
                assert params is not None
                study.enqueue_trial(params, skip_if_exists=True)
                self.enqueued.append(params)
        self.record = dataclasses.replace(
            self.record,
            sources=self.ensemble.summary(weights),
            target_weight=round(target_weight, 4),
            enqueued=len(self.enqueued),
            stopped=stop,
        )
        if stop is not None:
            self.active = False
        self.context.persist(self.record)


class GuidedWarmStarter(WarmStarter):
    """The zero-shot portfolio's top configurations, then the nearest tasks' bests ordered by the transfer
    ensemble; then the ensemble and the task's own surrogate guide every trial, through a sampler wrapper
    over the study's own sampler."""

    name = "guided"
    description = (
        "zero-shot portfolio, nearest tasks' bests, then source and task surrogates choose each trial"
    )

    def start(self, context: WarmStartContext) -> WarmStart:
        ensemble = _ensemble(context, self.name, context.defaults)
        if isinstance(ensemble, WarmStartRecord):
            return WarmStart(ensemble)
        max_warm = _max_warm(context.n_trials)
        first, _ = ranked_portfolio(
            ensemble, context.target.meta_features, top=min(PORTFOLIO_TRIALS, max_warm)
        )
        firsts = [ensemble.candidates[i].params for i in first]
        for params in firsts:
            context.study.enqueue_trial(params, skip_if_exists=True)
        kind = context.target.kind
        record = WarmStartRecord(
            used=True,
            method=self.name,
            reason=(
                f"{len(ensemble.sources)} other {kind} task(s) with history: the zero-shot portfolio's "
                f"first {len(firsts)} configuration(s), then the best of each nearest task, ordered by the "
                "sources' surrogates weighted by meta-feature similarity and, once trials finish here, by "
                "how well they rank this task's trials; then every trial chosen among the sampler's "
                "proposals and the sources' configurations by the same weights"
                if context.sources
                else "no other task's studies; enqueued the cross-task default"
            ),
            sources=ensemble.summary(ensemble.prior),
            enqueued=len(firsts),
            candidates=len(ensemble.candidates),
            max_warm=max_warm,
            target_weight=0.0,
        )
        nearest = {i for _, i in ensemble.neighbour_bests(max_warm)}
        warm = _TransferCallback(context, ensemble, record, max_warm, firsts, among=nearest)
        return WarmStart(
            record, (warm,) if max_warm > 1 else (), sampler=_guide(context, ensemble, warm, max_warm)
        )

    def resume(self, context: WarmStartContext, record: WarmStartRecord) -> WarmStart | None:
        """Guide this worker's trials too, from the same history (nothing is enqueued again)."""
        ensemble = _ensemble(context, self.name, context.defaults)
        if isinstance(ensemble, WarmStartRecord):
            return None
        until = record.max_warm or _max_warm(context.n_trials)
        return WarmStart(record, sampler=_guide(context, ensemble, _Held(record), until))


@dataclasses.dataclass
class _Held:
    """The warm-start record as it stands, where no warm-phase callback keeps it."""

    record: WarmStartRecord


def _guide(
    context: WarmStartContext, ensemble: SourceEnsemble, held: _Held | _TransferCallback, until: int
) -> Callable[[optuna.samplers.BaseSampler], optuna.samplers.BaseSampler]:
    """The sampler wrapper of ``guided``, choosing trials until ``until`` have finished and keeping the
    record's weights current (in ``held``, which the warm phase's callback also updates)."""

    def on_choice(weights: np.ndarray, target_weight: float, _n: int) -> None:
        record = dataclasses.replace(
            held.record, sources=ensemble.summary(weights), target_weight=round(target_weight, 4)
        )
        if record != held.record:
            held.record = record
            context.persist(held.record)

    def wrap(base: optuna.samplers.BaseSampler) -> optuna.samplers.BaseSampler:
        return GuidedSampler(
            base,
            ensemble,
            strategies=context.target.strategies,
            updaters=context.target.updaters,
            until=until,
            on_choice=on_choice,
        )

    return wrap
