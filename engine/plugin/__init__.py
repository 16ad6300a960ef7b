"""The plugin system: hook specifications, typed registries, and the host that loads plugins."""

from __future__ import annotations

from engine.plugin.hookspecs import PROJECT_NAME, hookimpl
from engine.plugin.host import BUILTIN_PLUGINS, LOAD_ENV, PluginHost, PluginInfo, PluginProblem
from engine.plugin.registry import Registration, Registry

__all__ = [
    "BUILTIN_PLUGINS",
    "LOAD_ENV",
    "PROJECT_NAME",
    "PluginHost",
    "PluginInfo",
    "PluginProblem",
    "Registration",
    "Registry",
    "hookimpl",
]
