"""scikit-learn's estimator contract for hyperparameters, shared by strategies and updaters."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["Configurable"]


class Configurable:
    """scikit-learn's estimator contract for hyperparameters.

    ``__init__`` only stores its keyword arguments as attributes of the same name; ``get_params``
    reads them back by inspecting the signature, so a configuration round-trips through
    ``type(obj)(**obj.get_params())`` and through an Optuna trial's parameters.
    """

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the hyperparameters ``__init__`` accepts."""
        init = cls.__init__
        if init is object.__init__:
            return []
        params = inspect.signature(init).parameters.values()
        return [
            p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """Return the hyperparameters as a dict that ``__init__`` accepts."""
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params: Any) -> Configurable:
        """Set hyperparameters by name and return ``self``."""
        valid = set(self.param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no hyperparameter {name!r}; valid ones: {sorted(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
