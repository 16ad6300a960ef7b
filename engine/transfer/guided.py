"""A sampler that uses other tasks' history beyond the enqueued warm trials (the ``guided`` warm starter).

:class:`GuidedSampler` wraps the study's own sampler (TPE by default). Before each trial that was not
enqueued, it gathers candidates: ``proposals`` configurations drawn from the wrapped sampler (which sees
the target's trials as usual) and every source configuration the target can run, and picks the one
with the highest ``sum_s w_s pred_s(c) + w_t pred_t(c)``: the source surrogates and the target's own
surrogate (:class:`SourceEnsemble`). The weights are RGPE's (Feurer et al., 2018). Until the target has
3 finished trials they are the meta-feature prior, and the source term is a greedy portfolio's
(``pred_s(c)`` floored by ``m_s``, the best the configurations tried so far reach on source ``s``, so
the next pick covers what earlier picks do not). Then each model's weight is its share of bootstrap
resamples of the target's trials in which it misranks fewest pairs (the target's own surrogate judged
out of fold), blended with the prior by ``n / (n + 5)``, and the score is the weighted mean prediction.
As the target's trials accumulate its own model takes over. The sampler chooses every trial until
``until`` trials have finished (the ``guided`` warm starter gives half the budget) or the target's own
model holds half the weight; from then on every trial is the wrapped sampler's alone (with the guided
trials in its history), so the second half of a search is what it would be without the sources. On the
training group of ``bench/warmstart.py`` this beat letting the wrapped sampler take every other trial
of the whole budget (docs/benchmarks.md, "Warm-start choices"). Tried configurations and near
duplicates of them are never picked.

An enqueued trial (the ``guided`` warm starter enqueues its warm phase: the zero-shot portfolio's top
configurations, then the nearest tasks' bests) runs what it was given; the sampler chooses for the others.

The trial then runs the chosen configuration: :meth:`sample_independent` answers from it and falls back
to the wrapped sampler for a parameter it lacks or that is out of the study's range.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from engine.transfer.space import NEAR_DUPLICATE, conform_params, param_key
from engine.transfer.surrogate import SourceEnsemble

__all__ = ["GuidedChoice", "GuidedSampler"]

PROPOSALS = 16
"""Configurations drawn from the wrapped sampler before each trial."""

HAND_OVER = 0.5
"""Once the task's own model holds this much weight, the wrapped sampler decides every trial alone."""

GuidedChoice = Callable[[np.ndarray, float, int], None]
"""Called before each trial of the guided phase with the source weights, the target model's weight and
the number of target trials."""


class GuidedSampler(BaseSampler):
    """Chooses each trial's configuration among the wrapped sampler's proposals and the sources'
    configurations, by the source ensemble plus the target's own surrogate.

    Args:
        base: The study's own sampler; it proposes candidates and samples whatever is not chosen here.
        ensemble: The source ensemble of the target task.
        strategies: The strategies the target may use.
        updaters: The updaters the target may use.
        proposals: Candidates drawn from ``base`` before each trial.
        until: Once this many trials (enqueued ones included) have finished, ``base`` decides every
            trial alone; ``None``: only once the task's own model holds half the weight.
        on_choice: Told the weights at each choice (to keep the warm-start record).
    """

    def __init__(
        self,
        base: BaseSampler,
        ensemble: SourceEnsemble,
        *,
        strategies: Sequence[str],
        updaters: Sequence[str],
        proposals: int = PROPOSALS,
        until: int | None = None,
        on_choice: GuidedChoice | None = None,
    ) -> None:
        self.base = base
        self.ensemble = ensemble
        self.proposals = proposals
        self.until = until
        self.on_choice = on_choice
        self._top = {
            "strategy": CategoricalDistribution(list(strategies)),
            "updater": CategoricalDistribution(list(updaters)),
        }
        self._source_dists: dict[str, BaseDistribution] = {}
        for src in ensemble.sources:
            for t in src.trials:
                for name, d in t.distributions.items():
                    self._source_dists.setdefault(name, d)
        self._chosen: dict[int, dict[str, Any]] = {}

    # -------------------------------------------------------------------- BaseSampler, delegated

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if trial.number in self._chosen:
            return {}
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        chosen = self._chosen.get(trial.number)
        if chosen is not None and param_name in chosen:
            value = conform_params({param_name: chosen[param_name]}, {param_name: param_distribution})
            if value is not None:
                return value[param_name]
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)
        if "fixed_params" not in trial.system_attrs:  # an enqueued trial runs what it was given
            chosen = self._choose(study, trial)
            if chosen:
                self._chosen[trial.number] = chosen

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._chosen.pop(trial.number, None)
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    # -------------------------------------------------------------------------------- the choice

    def _dists(self, trials: Sequence[FrozenTrial]) -> dict[str, BaseDistribution]:
        """The target's own distributions where it has them (its trials', else its plugins' space), the
        sources' elsewhere."""
        dists = dict(self._source_dists)
        dists.update(self.ensemble.target_space)
        dists.update(self._top)
        for t in trials:
            dists.update(t.distributions)
        return dists

    def _propose(
        self, study: optuna.Study, trial: FrozenTrial, dists: Mapping[str, BaseDistribution]
    ) -> list[dict[str, Any]]:
        """``proposals`` configurations drawn from the wrapped sampler, one strategy and updater each.

        Drawn parameter by parameter (a multivariate TPE would warn about each: its warnings are muted
        meanwhile, since here that is intended)."""
        out = []
        level = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        frozen: Any = _Frozen(study)
        try:
            for _ in range(self.proposals):
                params = {
                    name: self.base.sample_independent(frozen, trial, name, dists[name]) for name in self._top
                }
                prefixes = (f"{params['strategy']}.", f"{params['updater']}.")
                for name, d in dists.items():
                    if name.startswith(prefixes):
                        params[name] = self.base.sample_independent(frozen, trial, name, d)
                out.append(params)
        finally:
            optuna.logging.set_verbosity(level)
        return out

    def _choose(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        ens = self.ensemble
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if self.until is not None and len(trials) >= self.until:
            return {}  # the guided phase is over: the wrapped sampler decides, as it would alone
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        dists = self._dists(trials)
        tried = [
            dict(t.params) or dict(t.system_attrs.get("fixed_params", {}))
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number
        ]
        weights, target_weight, model = ens.target_model(trials, maximize, folds=5)
        if self.on_choice is not None:
            self.on_choice(weights, target_weight, sum(t.state == TrialState.COMPLETE for t in trials))
        if target_weight >= HAND_OVER:
            return {}  # the task's own evidence outweighs the sources': the wrapped sampler decides
        sources = [c for c in (conform_params(c.params, dists) for c in ens.candidates) if c is not None]
        seen: set[str] = set()
        fresh = []
        for c in self._propose(study, trial, dists) + sources:
            key = param_key(c)
            if key not in seen and all(ens.space.distance(c, o) >= NEAR_DUPLICATE for o in tried):
                seen.add(key)
                fresh.append(c)
        if not fresh:
            return {}
        predictions = ens.predict(fresh)
        if model is None:  # no evidence here yet: a greedy portfolio over the sources
            predictions = np.maximum(predictions, ens.coverage(tried)[:, None])
        score = weights @ predictions if len(ens.models) else np.zeros(len(fresh))
        if model is not None and target_weight > 0:
            score = score + target_weight * model.predict(ens.space.encode(fresh))
        best = int(np.argmax(score)) if math.isfinite(float(np.max(score))) else 0
        return fresh[best]


class _Frozen:
    """The study as it stands, its trials read once: the proposals before one trial draw a hundred values
    or so, and TPE (with its default ``constant_liar``) would read every trial from storage for each."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self._trials = study.get_trials(deepcopy=False)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = [t for t in self._trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self._get_trials()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)
