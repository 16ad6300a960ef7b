"""The conditional configuration space as numbers, and fitting configurations into a study's space.

Flat configurations (``strategy``, ``<strategy>.<param>``, ``updater``, ``<updater>.<param>``) become
vectors for the surrogates (:class:`ConfigSpace`); :func:`conform_params` fits a configuration seen on
another task into the target study's own distributions, and :func:`restrict` keeps only the parameters
of an allowed strategy and updater.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

__all__ = ["NEAR_DUPLICATE", "ConfigSpace", "conform_params", "param_key", "restrict"]

NEAR_DUPLICATE = 0.05
"""Configurations closer than this (:meth:`ConfigSpace.distance`) count as the same."""


def param_key(value: Any) -> str:
    """A canonical JSON string for a parameter value, to compare and look up values of any type."""
    return json.dumps(value, sort_keys=True, default=str)


class ConfigSpace:
    """Encodes flat conditional configurations (``strategy``, ``mlp.width``, ...) as vectors.

    Built from the parameter distributions seen in the source trials. A numeric parameter becomes its
    position in [0, 1] (on a log scale where the distribution is), -0.5 when inactive; a categorical one
    becomes one indicator per choice, all 0 when inactive.
    """

    def __init__(self, distributions: Iterable[Mapping[str, BaseDistribution]]) -> None:
        self.numeric: dict[str, tuple[float, float, bool]] = {}
        self.choices: dict[str, list[str]] = {}
        self.allowed: dict[str, set[str]] = {}
        for dists in distributions:
            for name, d in dists.items():
                if isinstance(d, CategoricalDistribution) and name not in self.numeric:
                    keys = [param_key(c) for c in d.choices]
                    known = self.choices.setdefault(name, [])
                    known.extend(k for k in keys if k not in known)
                    self.allowed[name] = self.allowed.get(name, set(keys)) & set(keys)
                elif isinstance(d, (FloatDistribution, IntDistribution)) and name not in self.choices:
                    low, high, log = float(d.low), float(d.high), bool(d.log)
                    if name in self.numeric:
                        lo, hi, lg = self.numeric[name]
                        low, high, log = min(lo, low), max(hi, high), lg or log
                    self.numeric[name] = (low, high, log and low > 0)
        self._offsets: dict[str, int] = {}
        width = len(self.numeric)
        for name, keys in self.choices.items():
            self._offsets[name] = width
            width += len(keys)
        self.width = width
        self._num_index = {name: i for i, name in enumerate(self.numeric)}

    def unit(self, name: str, value: Any) -> float | None:
        """A numeric parameter's position in [0, 1], or ``None`` if it is not numeric here."""
        if name not in self.numeric or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        low, high, log = self.numeric[name]
        if high <= low:
            return 0.5
        if log:
            u = (math.log(max(float(value), 1e-300)) - math.log(low)) / (math.log(high) - math.log(low))
        else:
            u = (float(value) - low) / (high - low)
        return min(1.0, max(0.0, u))

    def encode(self, configs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """One row per configuration."""
        X = np.zeros((len(configs), self.width))
        X[:, : len(self.numeric)] = -0.5
        for row, params in enumerate(configs):
            for name, value in params.items():
                if name in self._num_index:
                    u = self.unit(name, value)
                    if u is not None:
                        X[row, self._num_index[name]] = u
                elif name in self.choices:
                    key = param_key(value)
                    if key in self.choices[name]:
                        X[row, self._offsets[name] + self.choices[name].index(key)] = 1.0
        return X

    def distance(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """Mean per-parameter difference in [0, 1]: 1 for a parameter active in one only or a different
        choice, the difference of unit positions for a numeric one."""
        names = set(a) | set(b)
        if not names:
            return 0.0
        total = 0.0
        for name in names:
            if name not in a or name not in b:
                total += 1.0
                continue
            ua, ub = self.unit(name, a[name]), self.unit(name, b[name])
            if ua is not None and ub is not None:
                total += abs(ua - ub)
            else:
                total += float(param_key(a[name]) != param_key(b[name]))
        return total / len(names)


def restrict(
    params: Mapping[str, Any], strategies: Sequence[str] | None, updaters: Sequence[str] | None
) -> dict[str, Any] | None:
    """The configuration's own parameters, or ``None`` if its strategy or updater is not allowed."""
    strategy, updater = params.get("strategy"), params.get("updater")
    if not isinstance(strategy, str) or not isinstance(updater, str):
        return None
    if (strategies is not None and strategy not in strategies) or (
        updaters is not None and updater not in updaters
    ):
        return None
    keep = ("strategy", "updater")
    return {k: v for k, v in params.items() if k in keep or k.startswith((strategy + ".", updater + "."))}


def conform_params(params: Mapping[str, Any], dists: Mapping[str, BaseDistribution]) -> dict[str, Any] | None:
    """Fit ``params`` to the target study's own distributions: numeric values clipped into range;
    ``None`` if a categorical value is not a choice there."""
    out = dict(params)
    for name, value in params.items():
        d = dists.get(name)
        if isinstance(d, CategoricalDistribution):
            if param_key(value) not in {param_key(c) for c in d.choices}:
                return None
        elif isinstance(d, (FloatDistribution, IntDistribution)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            clipped = min(max(value, d.low), d.high)
            out[name] = round(clipped) if isinstance(d, IntDistribution) else float(clipped)
    return out
