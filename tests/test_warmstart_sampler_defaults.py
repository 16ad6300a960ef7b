"""The per-task sampler's defaults, chosen by bench/warmstart.py's training group (docs/benchmarks.md)."""

from __future__ import annotations

import optuna
import pytest

from engine.errors import SpecError
from engine.study.factories import SAMPLER_DEFAULTS, make_sampler


def test_tpe_starts_model_based_search_after_five_random_trials_by_default() -> None:
    sampler = make_sampler({}, seed=0)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert SAMPLER_DEFAULTS["tpe"] == {"n_startup_trials": 5}

    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0) - 0.3) ** 2, n_trials=6)
    random_only = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    random_only.optimize(lambda t: (t.suggest_float("x", 0.0, 1.0) - 0.3) ** 2, n_trials=6)
    # the first five trials are TPE's random start-up (the same draws as a random sampler of that
    # seed); the sixth is TPE's own
    assert [t.params for t in study.trials[:5]] == [t.params for t in random_only.trials[:5]]
    assert study.trials[5].params != random_only.trials[5].params


def test_a_spec_that_sets_the_option_keeps_its_own_value() -> None:
    sampler = make_sampler({"name": "tpe", "n_startup_trials": 10}, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=7)
    random_only = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    random_only.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=7)
    assert [t.params for t in study.trials] == [t.params for t in random_only.trials]


def test_other_samplers_get_no_tpe_option_and_bad_options_name_the_table() -> None:
    assert isinstance(make_sampler({"name": "random"}, seed=0), optuna.samplers.RandomSampler)
    with pytest.raises(SpecError, match="cannot build sampler 'tpe'"):
        make_sampler({"name": "tpe", "n_startup": 3}, seed=0)
