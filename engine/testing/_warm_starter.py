"""Conformance tests every warm-starter plugin should pass.

The kit builds a small history by hand: three source tasks (random subsets of iris, with their real
meta-features) whose studies tried ``linear`` and ``mlp`` configurations with ``gradient_descent``, plus
one cross-task default, and a target that may use only ``linear``. A warm starter must enqueue only
configurations the target can run, inside the distributions the sources used, say what it did in a
record that round-trips through storage, start cold (with a reason) when there is no history, and, if it
returns a sampler wrapper, keep every trial inside the study's space.
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from engine.task import Dataset, fingerprint
from engine.task.metafeatures import compute_meta_features
from engine.testing._data import tiny_dataset
from engine.warmstarter import (
    Candidate,
    Source,
    SourceTrial,
    WarmStart,
    WarmStartContext,
    WarmStarter,
    WarmStartRecord,
    WarmTarget,
)

__all__ = ["WarmStarterContract", "kit_history"]

_DISTS = {
    "strategy": CategoricalDistribution(["linear", "mlp"]),
    "updater": CategoricalDistribution(["gradient_descent"]),
    "linear.input_dropout": FloatDistribution(0.0, 0.5),
    "mlp.width": IntDistribution(8, 128, log=True),
    "gradient_descent.lr": FloatDistribution(1e-4, 1e-1, log=True),
}


def _subset(seed: int) -> Dataset:
    iris = tiny_dataset("classification")
    rows = np.random.default_rng(seed).choice(len(iris.y), size=90, replace=False)
    return Dataset(f"iris-{seed}", iris.X[rows], iris.y[rows], "classification")


def _trial(study: str, number: int, rng: np.random.Generator) -> SourceTrial:
    strategy = "linear" if number % 2 else "mlp"
    params: dict[str, Any] = {"strategy": strategy, "updater": "gradient_descent"}
    if strategy == "linear":
        params["linear.input_dropout"] = float(rng.uniform(0.0, 0.5))
    else:
        params["mlp.width"] = int(rng.integers(8, 129))
    params["gradient_descent.lr"] = float(10 ** rng.uniform(-4, -1))
    dists = {k: _DISTS[k] for k in params}
    value = float(rng.uniform(0.5, 1.0))
    return SourceTrial(study, number, params, dists, value, value, 0.0, True)


@cache
def kit_history() -> tuple[WarmTarget, tuple[Source, ...], tuple[Candidate, ...]]:
    """The target, three sources (12 complete trials each, ranked) and one cross-task default."""
    rng = np.random.default_rng(0)
    sources = []
    for seed in (1, 2, 3):
        ds = _subset(seed)
        name = f"kit/{ds.name}"
        raw = [_trial(name, n, rng) for n in range(12)]
        order = np.argsort(np.argsort([float(t.value or 0.0) for t in raw]))
        trials = tuple(
            SourceTrial(t.study, t.number, t.params, t.distributions, t.value, t.test_value, r / 11, True)
            for t, r in zip(raw, order, strict=True)
        )
        sources.append(
            Source(
                fingerprint(ds), ds.name, "kit", name, (name,), "accuracy", compute_meta_features(ds), trials
            )
        )
    default = Candidate(
        {
            "strategy": "linear",
            "linear.input_dropout": 0.1,
            "updater": "gradient_descent",
            "gradient_descent.lr": 0.01,
        },
        None,
        "cross-task default of search 'kit-defaults'",
        0.2,
        None,
        None,
    )
    target_data = _subset(4)
    target = WarmTarget(
        fingerprint=fingerprint(target_data),
        kind="classification",
        meta_features=compute_meta_features(target_data),
        evaluator="accuracy",
        strategies=("linear",),
        updaters=("gradient_descent",),
        info=target_data.info(),
    )
    return target, tuple(sources), (default,)


class WarmStarterContract:
    """Base test class for an :class:`engine.WarmStarter`; subclass it as ``Test...`` and set the instance.

    Attributes:
        warm_starter: The warm starter under test (required).
    """

    warm_starter: ClassVar[WarmStarter]

    def _start(self, n_trials: int, *, history: bool = True) -> tuple[optuna.Study, WarmStart, list[Any]]:
        target, sources, defaults = kit_history()
        study = optuna.create_study(direction="maximize")
        persisted: list[WarmStartRecord] = []

        def planned() -> list[dict[str, Any]]:
            trials = study.get_trials(deepcopy=False)
            return [dict(t.params) or dict(t.system_attrs.get("fixed_params", {})) for t in trials]

        context = WarmStartContext(
            target=target,
            study=study,
            n_trials=n_trials,
            seed=0,
            sources=sources if history else (),
            defaults=defaults if history else (),
            population=[s.meta_features for s in sources],
            planned=planned,
            persist=persisted.append,
        )
        return study, self.warm_starter.start(context), persisted

    def test_declares_a_name_and_a_description(self) -> None:
        assert isinstance(self.warm_starter.name, str) and self.warm_starter.name
        assert isinstance(self.warm_starter.description, str)

    def test_without_history_it_starts_cold_and_says_why(self) -> None:
        study, warm, _ = self._start(6, history=False)
        assert isinstance(warm, WarmStart)
        assert warm.record.used is False and warm.record.reason
        assert not study.trials

    def test_it_enqueues_only_what_the_target_can_run(self) -> None:
        study, warm, _ = self._start(6)
        waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
        assert warm.record.used is True and waiting
        assert warm.record.enqueued == len(waiting) <= 6
        for t in waiting:
            params = t.system_attrs["fixed_params"]
            assert params["strategy"] == "linear" and params["updater"] == "gradient_descent"
            for name, value in params.items():
                assert name in _DISTS, f"enqueued an unknown parameter {name!r}"
                dist = _DISTS[name]
                assert dist._contains(dist.to_internal_repr(value)), f"{name}={value!r} is out of range"

    def test_its_record_round_trips_through_storage(self) -> None:
        _, warm, _ = self._start(6)
        assert WarmStartRecord.from_dict(warm.record.to_dict()) == warm.record

    def test_its_callbacks_keep_within_the_budget(self) -> None:
        study, warm, persisted = self._start(6)

        def objective(trial: optuna.Trial) -> float:
            trial.suggest_categorical("strategy", ["linear"])
            trial.suggest_float("linear.input_dropout", 0.0, 0.5)
            trial.suggest_categorical("updater", ["gradient_descent"])
            return -abs(np.log10(trial.suggest_float("gradient_descent.lr", 1e-4, 1e-1, log=True)) + 2)

        study.optimize(objective, n_trials=6, callbacks=list(warm.callbacks))
        assert len(study.trials) == 6
        assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))
        for record in persisted:
            assert isinstance(record, WarmStartRecord) and record.enqueued <= 6

    def test_its_sampler_keeps_the_search_valid(self) -> None:
        """A warm starter that returns a sampler wrapper must keep every trial inside the study's space."""
        study, warm, _ = self._start(8)
        if warm.sampler is None:
            pytest.skip(f"{self.warm_starter.name} returns no sampler wrapper")
        base = study.sampler
        study.sampler = warm.sampler(base)
        assert isinstance(study.sampler, optuna.samplers.BaseSampler) and study.sampler is not base

        def objective(trial: optuna.Trial) -> float:
            trial.suggest_categorical("strategy", ["linear"])
            trial.suggest_float("linear.input_dropout", 0.0, 0.5)
            trial.suggest_categorical("updater", ["gradient_descent"])
            return -abs(np.log10(trial.suggest_float("gradient_descent.lr", 1e-4, 1e-1, log=True)) + 2)

        study.optimize(objective, n_trials=8, callbacks=list(warm.callbacks))
        assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 8
        for t in study.trials:
            assert set(t.params) == {"strategy", "linear.input_dropout", "updater", "gradient_descent.lr"}

    def test_it_is_deterministic(self) -> None:
        first, _, _ = self._start(6)
        second, _, _ = self._start(6)
        params = [[t.system_attrs.get("fixed_params") for t in s.trials] for s in (first, second)]
        assert params[0] == params[1]
