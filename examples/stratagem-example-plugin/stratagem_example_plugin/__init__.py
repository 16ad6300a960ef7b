"""An example third-party Stratagem plugin: the ``resmlp`` strategy (a residual MLP).

The package is a plugin because its ``pyproject.toml`` declares an entry point in the ``stratagem``
group that names this module; Stratagem imports it and calls the ``@engine.hookimpl`` functions below.

Importing this module does not import torch: the network is built in :mod:`stratagem_example_plugin._model`,
which :meth:`ResidualMLP.build` imports when the engine first asks for a model. So ``stratagem plugins``
and ``stratagem --help`` stay fast with the plugin installed.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, ClassVar

import engine

if TYPE_CHECKING:
    import optuna
    import torch

__all__ = ["ACTIVATIONS", "ResidualMLP", "stratagem_register_strategies"]

try:
    __version__ = version("stratagem-example-plugin")
except PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0.0.0+unknown"

ACTIVATIONS: tuple[str, ...] = ("relu", "gelu", "silu")
"""Activation functions :class:`ResidualMLP` accepts, by name."""


class ResidualMLP(engine.Strategy):
    """A residual MLP: an input projection, ``blocks`` pre-norm residual blocks, a normalised head.

    Each block computes ``x + Dropout(Linear(act(Linear(LayerNorm(x)))))`` with a hidden layer of
    ``width * expansion`` units. The skip connections keep deep networks trainable with plain gradient
    descent, and layer normalisation works row by row, so predictions do not depend on the batch. For
    classification the head outputs one logit per class, for regression one value.

    Search space (each name is prefixed ``resmlp.`` in the Optuna study):
        - ``width``: int in [16, 128], log scale, the width of the residual stream.
        - ``blocks``: int in [1, 4], the number of residual blocks.
        - ``expansion``: 1, 2 or 4, the hidden layer's size relative to ``width``.
        - ``activation``: one of ``relu``, ``gelu``, ``silu``.
        - ``dropout``: float in [0, 0.3], on each block's output while training.

    Args:
        width: Units of the residual stream.
        blocks: Number of residual blocks (0 gives a one-hidden-layer network with a normalised head).
        expansion: Hidden units per block as a multiple of ``width``.
        activation: Name of the activation function, one of :data:`ACTIVATIONS`.
        dropout: Dropout probability on each block's output, in [0, 1).
    """

    name: ClassVar[str] = "resmlp"
    description: ClassVar[str] = "Residual MLP: pre-norm residual blocks with layer normalisation."

    def __init__(
        self,
        width: int = 64,
        blocks: int = 2,
        expansion: int = 2,
        activation: str = "gelu",
        dropout: float = 0.0,
    ) -> None:
        self.width = width
        self.blocks = blocks
        self.expansion = expansion
        self.activation = activation
        self.dropout = dropout

    @classmethod
    def suggest(cls, trial: optuna.Trial, info: engine.TaskInfo) -> dict[str, Any]:
        """Sample ``__init__``'s keyword arguments; the engine prefixes the names with ``resmlp.``."""
        return {
            "width": trial.suggest_int("width", 16, 128, log=True),
            "blocks": trial.suggest_int("blocks", 1, 4),
            "expansion": trial.suggest_categorical("expansion", [1, 2, 4]),
            "activation": trial.suggest_categorical("activation", list(ACTIVATIONS)),
            "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        }

    def build(self, info: engine.TaskInfo) -> torch.nn.Module:
        """Check the hyperparameters and build an untrained network for ``info``'s task.

        Raises:
            ValueError: A hyperparameter is out of range; the message names it and the valid values.
        """
        self._check()
        from stratagem_example_plugin._model import build_resmlp

        return build_resmlp(
            n_features=info.n_features,
            n_outputs=info.n_outputs,
            width=int(self.width),
            blocks=int(self.blocks),
            expansion=int(self.expansion),
            activation=self.activation,
            dropout=float(self.dropout),
        )

    def _check(self) -> None:
        for name, low in (("width", 1), ("blocks", 0), ("expansion", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < low:
                raise ValueError(f"ResidualMLP: {name} must be an integer >= {low}, got {value!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"ResidualMLP: unknown activation {self.activation!r}; choose one of {list(ACTIVATIONS)}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ResidualMLP: dropout must be in [0, 1), got {self.dropout!r}")


@engine.hookimpl
def stratagem_register_strategies(registry: engine.Registry[type[engine.Strategy]]) -> None:
    """Register :class:`ResidualMLP` as strategy ``resmlp``."""
    registry.add(ResidualMLP)
