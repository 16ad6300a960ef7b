"""Typed registries: what plugins register, and which plugin registered each item."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from engine.errors import DuplicateNameError, UnknownNameError

__all__ = ["Registration", "Registry"]

T = TypeVar("T")


@dataclass(frozen=True)
class Registration(Generic[T]):
    """One registered item and the plugin that supplied it."""

    name: str
    item: T
    plugin: str


ITEM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}\Z")
"""A registered item's name."""


class Registry(Generic[T]):
    """Items of one kind (task sources, strategies, evaluators or updaters), by name.

    Plugins receive a registry in their ``stratagem_register_*`` hook and call :meth:`add`.
    """

    def __init__(self, kind: str, check: Callable[[Any], str | None] | None = None) -> None:
        self.kind = kind
        self._check = check
        self._items: dict[str, Registration[T]] = {}
        self._plugin = "<direct>"

    def add(self, item: T, *, name: str | None = None) -> T:
        """Register ``item`` under ``name`` (default: ``item.name``) and return it.

        Raises:
            DuplicateNameError: Another plugin already registered that name for this kind.
            TypeError: ``item`` is not what this kind registers (a class where an instance goes, an
                evaluator without a valid ``basis``, ...); the message names it and its plugin.
        """
        key = name or getattr(item, "name", None)
        if not isinstance(key, str) or not key:
            raise TypeError(f"a registered {self.kind} needs a non-empty string `name`, got {key!r}")
        problem = self._check(item) if self._check is not None else None
        if problem is not None:
            raise TypeError(f"{self.kind} {key!r} (plugin {self._plugin!r}): {problem}")
        if not ITEM_NAME.match(key):
            raise ValueError(
                f"{self.kind} name {key!r} (plugin {self._plugin!r}): use a letter, then letters, digits, "
                "'_' or '-' (64 at most): specs, study parameters ('<name>.<parameter>') and files use it"
            )
        if key in self._items:
            first = self._items[key].plugin
            raise DuplicateNameError(
                f"{self.kind} {key!r} is registered by both plugin {first!r} and plugin {self._plugin!r}; "
                f"rename one of them or uninstall/unload one plugin"
            )
        self._items[key] = Registration(key, item, self._plugin)
        return item

    def get(self, name: str) -> T:
        """Return the item named ``name``.

        Raises:
            UnknownNameError: No plugin registered it; the message lists the known names.
        """
        try:
            return self._items[name].item
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; registered {self.kind}s: {known}. "
                f"Is the plugin that provides it installed (see `stratagem plugins`)?"
            ) from None

    def plugin_of(self, name: str) -> str:
        """Name of the plugin that registered ``name``."""
        self.get(name)
        return self._items[name].plugin

    def names(self) -> list[str]:
        return list(self._items)

    def registrations(self) -> list[Registration[T]]:
        return list(self._items.values())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return (r.item for r in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def _drop_plugin(self, plugin: str) -> None:
        """Forget everything ``plugin`` registered (it failed part-way)."""
        self._items = {k: r for k, r in self._items.items() if r.plugin != plugin}

    def _as_plugin(self, plugin: str) -> _PluginScope[T]:
        return _PluginScope(self, plugin)


class _PluginScope(Generic[T]):
    """Context manager that attributes registrations to one plugin."""

    def __init__(self, registry: Registry[T], plugin: str) -> None:
        self.registry = registry
        self.plugin = plugin

    def __enter__(self) -> Registry[T]:
        self.registry._plugin = self.plugin
        return self.registry

    def __exit__(self, *exc: Any) -> None:
        self.registry._plugin = "<direct>"
