"""Built-in strategies: a linear model and a multilayer perceptron.

Both learn classification (one logit per class) and regression (one output value) on the standardised
``float32`` features the engine feeds them. Their search spaces are small on purpose; regularisation by
weight decay belongs to the updater.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import engine
from engine import Strategy, TaskInfo

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = ["ACTIVATIONS", "MLP", "LinearModel", "stratagem_register_strategies"]

ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "gelu", "silu")
"""Activation functions :class:`MLP` accepts, by name."""


def _check_fraction(owner: str, name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), got {value!r}")


class LinearModel(Strategy):
    """Logistic regression (multinomial logits) for classification, linear regression otherwise.

    Search space:
        - ``input_dropout``: float in [0, 0.5], the probability of zeroing each input feature while
          training (a cheap, data-dependent regulariser).
        - ``bias``: ``True`` or ``False``, whether the model has an intercept.

    Args:
        input_dropout: Dropout probability on the inputs, in [0, 1).
        bias: Whether the output layer has an intercept.
    """

    name: ClassVar[str] = "linear"
    description: ClassVar[str] = "Linear model: multinomial logistic regression or least squares."

    def __init__(self, input_dropout: float = 0.0, bias: bool = True) -> None:
        self.input_dropout = input_dropout
        self.bias = bias

    @classmethod
    def suggest(cls, trial: optuna.Trial, info: TaskInfo) -> dict[str, Any]:
        return {
            "input_dropout": trial.suggest_float("input_dropout", 0.0, 0.5),
            "bias": trial.suggest_categorical("bias", [True, False]),
        }

    def build(self, info: TaskInfo) -> torch.nn.Module:
        from torch import nn

        _check_fraction("LinearModel", "input_dropout", self.input_dropout)
        layers: list[nn.Module] = []
        if self.input_dropout > 0:
            layers.append(nn.Dropout(self.input_dropout))
        layers.append(nn.Linear(info.n_features, info.n_outputs, bias=bool(self.bias)))
        return nn.Sequential(*layers)


class MLP(Strategy):
    """A fully connected network: ``depth`` hidden layers of ``width`` units, then a linear output.

    Each hidden layer is ``Linear -> [LayerNorm] -> activation -> [Dropout]``.

    Search space:
        - ``depth``: int in [1, 3], the number of hidden layers.
        - ``width``: int in [16, 256], log scale, the units per hidden layer.
        - ``activation``: one of ``relu``, ``tanh``, ``gelu``, ``silu``.
        - ``dropout``: float in [0, 0.5], after every hidden activation.
        - ``layer_norm``: ``True`` or ``False``, layer normalisation before each activation.

    Args:
        depth: Number of hidden layers (0 gives a linear model).
        width: Units per hidden layer.
        activation: Name of the activation function, one of :data:`ACTIVATIONS`.
        dropout: Dropout probability after each hidden layer, in [0, 1).
        layer_norm: Whether to normalise each hidden layer's pre-activations.
    """

    name: ClassVar[str] = "mlp"
    description: ClassVar[str] = "Multilayer perceptron with configurable depth, width and activation."

    def __init__(
        self,
        depth: int = 2,
        width: int = 64,
        activation: str = "relu",
        dropout: float = 0.0,
        layer_norm: bool = False,
    ) -> None:
        self.depth = depth
        self.width = width
        self.activation = activation
        self.dropout = dropout
        self.layer_norm = layer_norm

    @classmethod
    def suggest(cls, trial: optuna.Trial, info: TaskInfo) -> dict[str, Any]:
        return {
            "depth": trial.suggest_int("depth", 1, 3),
            "width": trial.suggest_int("width", 16, 256, log=True),
            "activation": trial.suggest_categorical("activation", list(ACTIVATIONS)),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "layer_norm": trial.suggest_categorical("layer_norm", [False, True]),
        }

    def build(self, info: TaskInfo) -> torch.nn.Module:
        from torch import nn

        activations: dict[str, type[nn.Module]] = {
            "relu": nn.ReLU,
            "tanh": nn.Tanh,
            "gelu": nn.GELU,
            "silu": nn.SiLU,
        }
        if self.activation not in activations:
            raise ValueError(
                f"MLP: unknown activation {self.activation!r}; choose one of {list(ACTIVATIONS)}"
            )
        if int(self.depth) != self.depth or self.depth < 0:
            raise ValueError(f"MLP: depth must be a non-negative integer, got {self.depth!r}")
        if int(self.width) != self.width or self.width < 1:
            raise ValueError(f"MLP: width must be a positive integer, got {self.width!r}")
        _check_fraction("MLP", "dropout", self.dropout)

        layers: list[nn.Module] = []
        fan_in = info.n_features
        for _ in range(int(self.depth)):
            layers.append(nn.Linear(fan_in, int(self.width)))
            if self.layer_norm:
                layers.append(nn.LayerNorm(int(self.width)))
            layers.append(activations[self.activation]())
            if self.dropout > 0:
                layers.append(nn.Dropout(self.dropout))
            fan_in = int(self.width)
        layers.append(nn.Linear(fan_in, info.n_outputs))
        return nn.Sequential(*layers)


@engine.hookimpl
def stratagem_register_strategies(registry: engine.Registry[type[Strategy]]) -> None:
    """Register :class:`LinearModel` and :class:`MLP`."""
    registry.add(LinearModel)
    registry.add(MLP)
