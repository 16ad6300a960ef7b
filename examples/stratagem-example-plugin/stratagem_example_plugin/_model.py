"""The residual MLP network itself; imported by :meth:`ResidualMLP.build`, so torch loads lazily."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResidualBlock", "build_resmlp"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


class ResidualBlock(nn.Module):
    """``x + Dropout(Linear(act(Linear(LayerNorm(x)))))``: a pre-norm residual block.

    Args:
        width: Size of the input and output (the residual stream).
        hidden: Size of the hidden layer.
        activation: Name of the activation, a key of ``_ACTIVATIONS``.
        dropout: Dropout probability on the block's output.
    """

    def __init__(self, width: int, hidden: int, activation: str, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.LayerNorm(width),
            nn.Linear(width, hidden),
            _ACTIVATIONS[activation](),
            nn.Linear(hidden, width),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.body(x)
        return out


def build_resmlp(
    *,
    n_features: int,
    n_outputs: int,
    width: int,
    blocks: int,
    expansion: int,
    activation: str,
    dropout: float,
) -> nn.Sequential:
    """Build ``Linear -> blocks x ResidualBlock -> LayerNorm -> activation -> Linear``.

    The input layer maps ``n_features`` to ``width``, the output layer ``width`` to ``n_outputs``.
    Parameters are initialised from torch's global RNG (the engine seeds it before building).
    """
    return nn.Sequential(
        nn.Linear(n_features, width),
        *(ResidualBlock(width, width * expansion, activation, dropout) for _ in range(blocks)),
        nn.LayerNorm(width),
        _ACTIVATIONS[activation](),
        nn.Linear(width, n_outputs),
    )
