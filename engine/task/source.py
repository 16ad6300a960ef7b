"""Task sources: the plugin kind that turns a spec's ``[[tasks]]`` entry into a :class:`Dataset`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from engine.task.dataset import Dataset

__all__ = ["Option", "TaskSource", "is_type", "type_name"]


@dataclass(frozen=True)
class Option:
    """One option a task source accepts in a spec's ``[[tasks]]`` entry."""

    type: type | tuple[type, ...]
    required: bool = False
    help: str = ""
    choices: tuple[Any, ...] = ()


class TaskSource(ABC):
    """A plugin-supplied way of loading tasks (bundled datasets, CSV files, generators, ...).

    Subclasses set :attr:`name` and :attr:`options`; the engine checks a spec entry's keys and value
    types against :attr:`options` before calling :meth:`load`.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Option]] = {}

    @abstractmethod
    def load(self, options: Mapping[str, Any], base_dir: Path) -> Dataset:
        """Load one dataset.

        Args:
            options: The spec entry's keys other than ``source`` (already checked against
                :attr:`options`).
            base_dir: Directory that relative paths in ``options`` are relative to (the spec's folder).

        Raises:
            TaskDataError: The data cannot be used; the message says why and how to fix it.
        """

    def default_name(self, options: Mapping[str, Any]) -> str:
        """Name a task gets when the spec entry has no ``name``."""
        return str(options.get("dataset") or self.name)

    def check_options(self, options: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems with a spec entry's options, as ``(option, message)`` pairs; empty when all is well.

        Checks that every option is known, has the declared type (and is one of the choices, where
        given), and that every required option is there.
        """
        problems: list[tuple[str, str]] = []
        for opt, value in options.items():
            if opt not in self.options:
                allowed = ", ".join(["name", *self.options])
                problems.append((opt, f"unknown option for source {self.name!r}; valid options: {allowed}"))
                continue
            option = self.options[opt]
            if not is_type(value, option.type) or (option.choices and value not in option.choices):
                want = f"one of {list(option.choices)}" if option.choices else type_name(option.type)
                problems.append((opt, f"must be {want}; got {value!r}"))
        for opt, option in self.options.items():
            if option.required and opt not in options:
                problems.append((opt, f"missing; source {self.name!r} needs it ({option.help})"))
        return problems


def is_type(value: Any, types: type | tuple[type, ...]) -> bool:
    """``isinstance`` as a spec means it: ``true`` is not an integer."""
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        return False
    return isinstance(value, types)


def type_name(t: type | tuple[type, ...]) -> str:
    """How a spec error names a type: "an integer", "a string or a number"."""
    types = t if isinstance(t, tuple) else (t,)
    names = {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "list": "a list",
    }
    return " or ".join(names.get(x.__name__, x.__name__) for x in types)
