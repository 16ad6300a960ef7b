"""A configuration: one strategy with its hyperparameters, trained by one updater with its own.

A leaf value type, used wherever a chosen configuration is stored, shown or reused: the best table,
cross-task defaults, recommendations and warm start. In an Optuna study it is spread over flat
parameters (``strategy``, ``<strategy>.<param>``, ``updater``, ``<updater>.<param>``); the conversions
live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Configuration", "plain_params"]


@dataclass(frozen=True)
class Configuration:
    """Strategy + hyperparameters + updater + hyperparameters.

    Attributes:
        strategy: Registry name of the strategy.
        strategy_params: Keyword arguments of the strategy's ``__init__``.
        updater: Registry name of the updater.
        updater_params: Keyword arguments of the updater's ``__init__``.
    """

    strategy: str
    strategy_params: Mapping[str, Any] = field(default_factory=dict)
    updater: str = ""
    updater_params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Configuration:
        """Read a configuration from an Optuna trial's flat parameters."""
        strategy = str(params["strategy"])
        updater = str(params["updater"])
        return cls(
            strategy,
            {k[len(strategy) + 1 :]: v for k, v in params.items() if k.startswith(strategy + ".")},
            updater,
            {k[len(updater) + 1 :]: v for k, v in params.items() if k.startswith(updater + ".")},
        )

    def to_params(self) -> dict[str, Any]:
        """The flat Optuna parameters of this configuration (what ``study.enqueue_trial`` takes)."""
        out: dict[str, Any] = {"strategy": self.strategy}
        out.update({f"{self.strategy}.{k}": v for k, v in self.strategy_params.items()})
        out["updater"] = self.updater
        out.update({f"{self.updater}.{k}": v for k, v in self.updater_params.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the four fields."""
        return {
            "strategy": self.strategy,
            "strategy_params": dict(self.strategy_params),
            "updater": self.updater,
            "updater_params": dict(self.updater_params),
        }


def plain_params(params: Any) -> dict[str, Any]:
    """Keyword arguments as a plugin's ``suggest`` returned them, in the values a configuration is stored
    with: NumPy scalars become Python's (``np.float32(0.5)`` -> ``0.5``), lists, tuples and dicts (by
    string keys) keep their shape; anything else is refused, since it could not be stored, shown or reloaded.

    Raises:
        TypeError: ``params`` is not a mapping with string keys, or a value is of another type; the
            message names the key.
    """
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise TypeError(f"suggest must return a dict of keyword arguments by name, got {params!r:.80}")
    return {k: _plain(k, v) for k, v in params.items()}


def _plain(key: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return type(value)(_plain(key, v) for v in value)
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _plain(f"{key}.{k}", v) for k, v in value.items()}
    item = getattr(value, "item", None)  # a NumPy (or torch) scalar
    if callable(item) and getattr(value, "shape", None) == ():
        return _plain(key, item())
    raise TypeError(
        f"suggest returned {key}={value!r:.60} of type {type(value).__name__}; give numbers, strings, "
        "booleans, or lists or dicts of them"
    )
