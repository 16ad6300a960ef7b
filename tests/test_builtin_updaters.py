"""The built-in updaters pass the conformance kit, and train, restore, adapt and stop as documented."""

from __future__ import annotations

import dataclasses
import math

import optuna
import pytest
import torch

from engine.plugin.registry import Registry
from engine.testing import UpdaterContract, reference_evaluator, tiny_problem
from engine.updater import TrainingProblem, Updater
from plugins.evaluators import Accuracy
from plugins.strategies import LinearModel
from plugins.updaters import GradientDescent, RandomSearch, one_fifth_rule, stratagem_register_updaters


class TestGradientDescentContract(UpdaterContract):
    updater = GradientDescent(epochs=15, batch_size=32)


class TestGradientDescentFullBatchSGDContract(UpdaterContract):
    updater = GradientDescent(optimizer="sgd", lr=0.05, epochs=15, batch_size=None)


class TestRandomSearchContract(UpdaterContract):
    updater = RandomSearch(iterations=150, report_every=50)


def _ignore(step: int, value: float) -> None:
    pass


def _linear(problem: TrainingProblem, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return LinearModel().build(problem.info)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _ScriptedValidation:
    """Validation that returns scripted values and remembers the weights it was shown."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.states: list[dict[str, torch.Tensor]] = []

    def __call__(self, model: torch.nn.Module) -> float:
        self.states.append(_state(model))
        return self.values[len(self.states) - 1]


def test_the_hook_registers_both_updaters() -> None:
    registry: Registry[type[Updater]] = Registry("updater")
    stratagem_register_updaters(registry=registry)
    assert registry.get("gradient_descent") is GradientDescent
    assert registry.get("random_search") is RandomSearch
    assert (GradientDescent.gradient_free, RandomSearch.gradient_free) == (False, True)


# -- gradient descent -------------------------------------------------------------------------------


def test_gradient_descent_restores_the_weights_of_the_best_validation_epoch() -> None:
    validation = _ScriptedValidation([0.5, 0.9, 0.7, 0.6])
    problem = dataclasses.replace(tiny_problem("classification"), validate=validation, higher_is_better=True)
    model = _linear(problem)
    result = GradientDescent(epochs=4).fit(model, problem, _ignore)
    assert result.steps == 4
    assert not _same(validation.states[1], validation.states[3]), "training should have moved on"
    assert _same(_state(model), validation.states[1])


def test_gradient_descent_follows_the_direction_of_the_validation_value() -> None:
    validation = _ScriptedValidation([0.5, 0.9, 0.7, 0.6])
    problem = dataclasses.replace(tiny_problem("classification"), validate=validation, higher_is_better=False)
    model = _linear(problem)
    GradientDescent(epochs=4).fit(model, problem, _ignore)
    assert _same(_state(model), validation.states[0])


def test_gradient_descent_restores_the_initial_weights_when_no_epoch_validates() -> None:
    validation = _ScriptedValidation([math.nan, math.inf, -math.inf])
    problem = dataclasses.replace(tiny_problem("regression"), validate=validation)
    model = _linear(problem)
    initial = _state(model)
    GradientDescent(epochs=3).fit(model, problem, _ignore)
    assert _same(_state(model), initial)


def test_gradient_descent_stops_when_the_loss_diverges_and_keeps_finite_weights() -> None:
    problem = tiny_problem("regression")
    model = _linear(problem)
    steps: list[int] = []
    result = GradientDescent(optimizer="sgd", lr=1e3, epochs=200, batch_size=None).fit(
        model, problem, lambda step, value: steps.append(step)
    )
    assert result.steps < 200
    assert steps == list(range(1, result.steps + 1))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert math.isfinite(problem.validate(model))


def test_gradient_descent_shuffles_with_the_problem_generator() -> None:
    def final_state(seed: int) -> dict[str, torch.Tensor]:
        problem = tiny_problem("classification", seed=seed)
        model = _linear(problem)
        GradientDescent(epochs=3, batch_size=16).fit(model, problem, _ignore)
        return _state(model)

    assert _same(final_state(1), final_state(1))
    assert not _same(final_state(1), final_state(2))


def test_gradient_descent_merges_a_trailing_single_row_batch_so_batch_norm_trains() -> None:
    problem = tiny_problem("classification")  # 90 training rows: batches of 89 would leave one over
    assert len(problem.X) == 90
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))
    result = GradientDescent(epochs=2, batch_size=89).fit(model, problem, _ignore)
    assert result.steps == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"weight_decay": -1e-3}, "weight_decay must be >= 0"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer or None"),
    ],
)
def test_gradient_descent_rejects_bad_hyperparameters(params: dict[str, object], message: str) -> None:
    problem = tiny_problem("regression")
    with pytest.raises(ValueError, match=message):
        GradientDescent(**params).fit(_linear(problem), problem, _ignore)  # type: ignore[arg-type]


def test_gradient_descent_accepts_zero_weight_decay() -> None:
    problem = tiny_problem("regression")
    assert GradientDescent(weight_decay=0.0, epochs=1).fit(_linear(problem), problem, _ignore).steps == 1


def test_a_real_pruner_stops_gradient_descent_after_its_first_report() -> None:
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    trial = study.ask()

    def report(step: int, value: float) -> None:
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()

    problem = tiny_problem("classification", reference_evaluator("classification", "error"))
    with pytest.raises(optuna.TrialPruned):
        GradientDescent(epochs=10).fit(_linear(problem), problem, report)
    assert list(study.trials[0].intermediate_values) == [1]


def test_gradient_descent_search_space_matches_its_documentation() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    GradientDescent.suggest(trial, tiny_problem("classification").info)
    d = optuna.distributions
    assert trial.distributions == {
        "optimizer": d.CategoricalDistribution(["sgd", "adam", "adamw"]),
        "lr": d.FloatDistribution(1e-4, 1e-1, log=True),
        "weight_decay": d.FloatDistribution(1e-6, 1e-2, log=True),
        "epochs": d.IntDistribution(10, 50),
        "batch_size": d.CategoricalDistribution([32, 64, 128, 256, None]),
    }


# -- random search ----------------------------------------------------------------------------------


def test_one_fifth_rule_grows_on_success_shrinks_on_failure_and_balances_at_one_in_five() -> None:
    assert one_fifth_rule(1.0, True, 0.2) == pytest.approx(math.exp(0.2))
    assert one_fifth_rule(1.0, False, 0.2) == pytest.approx(math.exp(-0.05))
    sigma = 0.3
    for success in (True, False, False, False, False):
        sigma = one_fifth_rule(sigma, success, 0.2)
    assert sigma == pytest.approx(0.3)


def test_random_search_trains_a_linear_model_on_iris_from_random_weights() -> None:
    problem = tiny_problem("classification", Accuracy())
    model = _linear(problem)
    untrained_loss = problem.loss(model(problem.X), problem.y).item()
    untrained_accuracy = problem.validate(model)
    result = RandomSearch(sigma=0.1, iterations=300).fit(model, problem, _ignore)
    assert result.train_loss < 0.6 * untrained_loss
    assert problem.validate(model) >= max(0.85, untrained_accuracy + 0.2)


def test_random_search_widens_small_steps_that_keep_succeeding() -> None:
    problem = tiny_problem("classification")
    updater = RandomSearch(sigma=1e-4, iterations=100, adapt=0.2)
    updater.fit(_linear(problem), problem, _ignore)
    assert updater.success_rate_ > 0.2
    assert updater.sigma_ > 1e-3


def test_random_search_narrows_large_steps_that_keep_failing() -> None:
    problem = tiny_problem("classification")
    updater = RandomSearch(sigma=50.0, iterations=100, adapt=0.2)
    updater.fit(_linear(problem), problem, _ignore)
    assert updater.success_rate_ < 0.2
    assert updater.sigma_ < 5.0


def test_random_search_reports_once_per_round_and_after_the_last_iteration() -> None:
    problem = tiny_problem("regression")
    calls: list[int] = []
    result = RandomSearch(iterations=120, report_every=50).fit(
        _linear(problem), problem, lambda step, value: calls.append(step)
    )
    assert calls == [1, 2, 3]
    assert result.steps == 120


def test_random_search_restores_the_weights_of_the_best_validation_round() -> None:
    validation = _ScriptedValidation([3.0, 1.0, 2.0])
    problem = dataclasses.replace(tiny_problem("regression"), validate=validation, higher_is_better=False)
    model = _linear(problem)
    RandomSearch(iterations=30, report_every=10).fit(model, problem, _ignore)
    assert _same(_state(model), validation.states[1])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sigma": 0.0}, "sigma must be a positive finite number"),
        ({"adapt": -0.1}, "adapt must be positive"),
        ({"iterations": 0}, "iterations must be a positive integer"),
        ({"report_every": 2.5}, "report_every must be a positive integer"),
    ],
)
def test_random_search_rejects_bad_hyperparameters(params: dict[str, float], message: str) -> None:
    problem = tiny_problem("regression")
    with pytest.raises(ValueError, match=message):
        RandomSearch(**params).fit(_linear(problem), problem, _ignore)  # type: ignore[arg-type]
