"""The built-in strategies pass the conformance kit, and build the models their docstrings describe."""

from __future__ import annotations

import pytest
import torch

from engine.plugin.registry import Registry
from engine.strategy import Strategy
from engine.task import TaskInfo
from engine.testing import StrategyContract
from plugins.strategies import MLP, LinearModel, stratagem_register_strategies

IRIS = TaskInfo("classification", n_samples=150, n_features=4, n_classes=3)
REGRESSION = TaskInfo("regression", n_samples=100, n_features=5)


class TestLinearModelContract(StrategyContract):
    strategy_class = LinearModel


class TestMLPContract(StrategyContract):
    strategy_class = MLP


class TestMLPWithEveryOptionContract(StrategyContract):
    strategy_class = MLP
    build_params = tuple(
        {"depth": 3, "width": 16, "activation": a, "dropout": 0.3, "layer_norm": True}
        for a in ("relu", "tanh", "gelu", "silu")
    )


def test_the_hook_registers_linear_and_mlp() -> None:
    registry: Registry[type[Strategy]] = Registry("strategy")
    stratagem_register_strategies(registry=registry)
    assert registry.get("linear") is LinearModel
    assert registry.get("mlp") is MLP


def test_linear_model_is_one_affine_layer_with_one_column_per_output() -> None:
    model = LinearModel(bias=False).build(IRIS)
    (layer,) = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert (layer.in_features, layer.out_features, layer.bias) == (4, 3, None)
    assert sum(p.numel() for p in model.parameters()) == 12


def test_linear_model_input_dropout_zeroes_inputs_only_while_training() -> None:
    model = LinearModel(input_dropout=0.5).build(REGRESSION)
    x = torch.ones(2000, 5)
    torch.manual_seed(0)
    model.train()
    train_outputs = model(x)
    model.eval()
    eval_outputs = model(x)
    assert torch.unique(eval_outputs).numel() == 1
    assert torch.unique(train_outputs).numel() > 1


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_mlp_has_depth_hidden_layers_of_width_units(depth: int) -> None:
    model = MLP(depth=depth, width=24).build(IRIS)
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    expected = [(4, 24)] + [(24, 24)] * (depth - 1) + [(24, 3)] if depth else [(4, 3)]
    assert shapes == expected


@pytest.mark.parametrize(
    ("activation", "module"),
    [("relu", torch.nn.ReLU), ("tanh", torch.nn.Tanh), ("gelu", torch.nn.GELU), ("silu", torch.nn.SiLU)],
)
def test_mlp_uses_the_named_activation(activation: str, module: type[torch.nn.Module]) -> None:
    model = MLP(depth=2, activation=activation).build(IRIS)
    assert sum(isinstance(m, module) for m in model.modules()) == 2


def test_mlp_adds_dropout_and_layer_norm_only_when_asked() -> None:
    plain = MLP(depth=2, dropout=0.0, layer_norm=False).build(IRIS)
    full = MLP(depth=2, dropout=0.2, layer_norm=True).build(IRIS)
    assert not any(isinstance(m, torch.nn.Dropout | torch.nn.LayerNorm) for m in plain.modules())
    assert sum(isinstance(m, torch.nn.Dropout) for m in full.modules()) == 2
    assert sum(isinstance(m, torch.nn.LayerNorm) for m in full.modules()) == 2


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (MLP(activation="swish"), "unknown activation 'swish'"),
        (MLP(depth=-1), "depth must be a non-negative integer"),
        (MLP(width=0), "width must be a positive integer"),
        (MLP(dropout=1.0), r"dropout must be in \[0, 1\)"),
        (LinearModel(input_dropout=-0.1), r"input_dropout must be in \[0, 1\)"),
    ],
)
def test_build_rejects_bad_hyperparameters_with_a_clear_message(strategy: Strategy, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        strategy.build(IRIS)


def test_mlp_search_space_matches_its_documentation() -> None:
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    MLP.suggest(trial, IRIS)
    d = trial.distributions
    assert d["depth"] == optuna.distributions.IntDistribution(1, 3)
    assert d["width"] == optuna.distributions.IntDistribution(16, 256, log=True)
    assert d["activation"] == optuna.distributions.CategoricalDistribution(["relu", "tanh", "gelu", "silu"])
    assert d["dropout"] == optuna.distributions.FloatDistribution(0.0, 0.5)
    assert d["layer_norm"] == optuna.distributions.CategoricalDistribution([False, True])
