"""The ``resmlp`` strategy passes Stratagem's conformance kit, like the built-in strategies do."""

from __future__ import annotations

import subprocess
import sys

import engine
import pytest
import torch
from engine.testing import StrategyContract

from stratagem_example_plugin import ResidualMLP, stratagem_register_strategies

IRIS = engine.TaskInfo("classification", n_samples=150, n_features=4, n_classes=3)


class TestResidualMLPContract(StrategyContract):
    """The kit's checks on hyperparameters sampled from ``ResidualMLP.suggest``."""

    strategy_class = ResidualMLP


class TestResidualMLPEveryOptionContract(StrategyContract):
    """The kit's checks on fixed settings that cover every activation, no blocks, and dropout."""

    strategy_class = ResidualMLP
    build_params = (
        {"width": 16, "blocks": 0, "expansion": 1, "activation": "relu", "dropout": 0.0},
        {"width": 32, "blocks": 4, "expansion": 4, "activation": "gelu", "dropout": 0.3},
        {"width": 16, "blocks": 2, "expansion": 2, "activation": "silu", "dropout": 0.1},
    )


def test_the_hook_registers_resmlp() -> None:
    registry: engine.Registry[type[engine.Strategy]] = engine.Registry("strategy")
    stratagem_register_strategies(registry=registry)
    assert registry.names() == ["resmlp"]
    assert registry.get("resmlp") is ResidualMLP


def test_each_block_adds_one_residual_block() -> None:
    from stratagem_example_plugin._model import ResidualBlock

    for blocks in (0, 1, 3):
        model = ResidualMLP(blocks=blocks, width=8).build(IRIS)
        assert sum(isinstance(m, ResidualBlock) for m in model.modules()) == blocks


def test_a_block_is_the_identity_when_its_output_layer_is_zero() -> None:
    from stratagem_example_plugin._model import ResidualBlock

    block = ResidualBlock(width=8, hidden=16, activation="gelu", dropout=0.0)
    output_layer = block.body[-1]
    assert isinstance(output_layer, torch.nn.Linear)
    torch.nn.init.zeros_(output_layer.weight)
    torch.nn.init.zeros_(output_layer.bias)
    x = torch.randn(5, 8)
    torch.testing.assert_close(block(x), x)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"width": 0}, "width must be an integer >= 1"),
        ({"blocks": 1.5}, "blocks must be an integer >= 0"),
        ({"activation": "tanh"}, "unknown activation 'tanh'"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_bad_hyperparameters_are_refused_with_the_name(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResidualMLP(**params).build(IRIS)  # type: ignore[arg-type]


def test_importing_the_plugin_does_not_import_torch() -> None:
    code = "import sys, stratagem_example_plugin; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
