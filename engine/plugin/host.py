"""Loading plugins and collecting what they register.

Plugins come from three places, all registered through :meth:`PluginHost.register_module`:

1. the built-in modules of the ``plugins`` package (:data:`BUILTIN_PLUGINS`);
2. installed packages that declare an entry point in the ``stratagem`` group;
3. local modules named with ``--plugin`` or a spec's ``search.plugins`` (a dotted module path, or a
   path to a ``.py`` file).

Setting ``STRATAGEM_LOAD_PLUGINS`` to a comma-separated list of entry-point names loads only those
installed plugins (an empty value loads none); built-ins always load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from engine.errors import DuplicateNameError, PluginError, UnknownNameError
from engine.evaluator import Evaluator
from engine.plugin import hookspecs
from engine.plugin.registry import Registry
from engine.settings import VERSION
from engine.strategy import Strategy
from engine.task import TASK_KINDS, TaskSource
from engine.updater import Updater
from engine.warmstarter import WarmStarter

if TYPE_CHECKING:
    from engine.meta import MetaStrategy, TaskFamily  # torch: imported by the meta plugins, not here

__all__ = ["BUILTIN_PLUGINS", "PluginHost", "PluginInfo", "PluginProblem"]

BUILTIN_PLUGINS: tuple[str, ...] = (
    "plugins.tasks",
    "plugins.strategies",
    "plugins.evaluators",
    "plugins.updaters",
    "plugins.warm_starters",
    "plugins.meta",
)
LOAD_ENV = "STRATAGEM_LOAD_PLUGINS"

_KINDS = {
    "task_sources": "stratagem_register_task_sources",
    "strategies": "stratagem_register_strategies",
    "evaluators": "stratagem_register_evaluators",
    "updaters": "stratagem_register_updaters",
    "warm_starters": "stratagem_register_warm_starters",
    "task_families": "stratagem_register_task_families",
    "meta_strategies": "stratagem_register_meta_strategies",
}


def _subclass_of(base: type) -> Callable[[Any], str | None]:
    """A registry check: the item is a subclass of ``base`` (a class, not an instance)."""

    def check(item: Any) -> str | None:
        if isinstance(item, type) and issubclass(item, base):
            return None
        return f"register a subclass of engine.{base.__name__} (the class itself), got {item!r:.80}"

    return check


def _instance_of(base: type) -> Callable[[Any], str | None]:
    """A registry check: the item is an instance of ``base`` (not the class)."""

    def check(item: Any) -> str | None:
        if isinstance(item, base):
            return None
        if isinstance(item, type) and issubclass(item, base):
            return f"register an instance, {item.__name__}(), not the class"
        return f"register an instance of engine.{base.__name__}, got {item!r:.80}"

    return check


def _class_with(base: str, *methods: str) -> Callable[[Any], str | None]:
    """A registry check for the meta kinds (their base classes import torch): a class with ``methods``."""

    def check(item: Any) -> str | None:
        if isinstance(item, type) and all(callable(getattr(item, m, None)) for m in methods):
            return None
        return f"register a subclass of engine.{base} (the class itself), got {item!r:.80}"

    return check


def _evaluator_problem(item: Any) -> str | None:
    """An evaluator is an instance whose ``basis`` says which way is better and whose ``kinds`` are task
    kinds: an unknown basis would silently be minimised."""
    problem = _instance_of(Evaluator)(item)
    if problem is not None:
        return problem
    basis = getattr(item, "basis", None)
    if basis not in ("score", "error"):
        return f"basis must be 'score' (higher is better) or 'error' (lower is better), got {basis!r}"
    kinds = getattr(item, "kinds", None)
    if not kinds or not isinstance(kinds, set | frozenset) or not kinds <= set(TASK_KINDS):
        return f"kinds must be a non-empty set of {sorted(TASK_KINDS)}, got {kinds!r}"
    return None


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that could not be used, and why. It is dropped; other plugins work on."""

    plugin: str
    message: str


@dataclass
class PluginInfo:
    """What ``stratagem plugins`` shows for one plugin."""

    name: str
    version: str
    origin: str
    hooks: list[str]
    registers: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "origin": self.origin,
            "hooks": self.hooks,
            "registers": self.registers,
        }


class PluginHost:
    """The plugin manager plus one typed registry per kind of item.

    Use :meth:`load` to get a host with built-in, installed and extra plugins.
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.task_sources: Registry[TaskSource] = Registry("task source", _instance_of(TaskSource))
        self.strategies: Registry[type[Strategy]] = Registry("strategy", _subclass_of(Strategy))
        self.evaluators: Registry[Evaluator] = Registry("evaluator", _evaluator_problem)
        self.updaters: Registry[type[Updater]] = Registry("updater", _subclass_of(Updater))
        self.warm_starters: Registry[WarmStarter] = Registry("warm starter", _instance_of(WarmStarter))
        self.task_families: Registry[type[TaskFamily]] = Registry(
            "task family", _class_with("TaskFamily", "info", "sample")
        )
        self.meta_strategies: Registry[type[MetaStrategy]] = Registry(
            "meta-strategy", _class_with("MetaStrategy", "build", "adapt")
        )
        self.problems: list[PluginProblem] = []
        self._meta: dict[str, tuple[str, str]] = {}  # plugin name -> (version, origin)

    @classmethod
    def load(
        cls,
        extra: Sequence[str] = (),
        *,
        entry_points: bool = True,
        base_dir: Path | None = None,
    ) -> PluginHost:
        """Load built-in plugins, installed entry points and ``extra`` local modules, then collect.

        Args:
            extra: Local plugin modules: dotted module paths or ``.py`` file paths.
            entry_points: Whether to load installed packages' entry points.
            base_dir: Folder that relative ``.py`` paths and module imports are resolved from
                (default: the current directory).

        Raises:
            PluginError: An ``extra`` module cannot be imported (it was asked for by name, so it is
                an error rather than a reported problem).
            DuplicateNameError: Two plugins register the same name for one kind.
        """
        host = cls()
        for module_name in BUILTIN_PLUGINS:
            host.register_module(importlib.import_module(module_name), module_name, VERSION, "builtin")
        if entry_points:
            host._load_entry_points()
        for spec in extra:
            module = _import_local(spec, base_dir or Path.cwd())
            host.register_module(module, spec, getattr(module, "__version__", "local"), "local")
            if host.pm.is_registered(module) and not host.pm.get_hookcallers(module):
                host.pm.unregister(module)
                raise PluginError(
                    f"plugin {spec!r} implements no Stratagem hook (a folder, or a module without "
                    "@hookimpl functions such as stratagem_register_strategies); name the .py file or "
                    "module that holds them"
                )
        host.collect()
        return host

    def register_module(self, plugin: object, name: str, version: str, origin: str) -> bool:
        """Register one plugin object; report and drop it if its hooks are malformed."""
        if self.pm.get_plugin(name) is not None or self.pm.is_registered(plugin):
            return False
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self.problems.append(PluginProblem(name, f"invalid hook implementation: {exc}"))
            return False
        self._meta[name] = (version, origin)
        return True

    def _load_entry_points(self) -> None:
        allowed = os.environ.get(LOAD_ENV)
        allow = None if allowed is None else {s.strip() for s in allowed.split(",") if s.strip()}
        installed = importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME)
        for unknown in sorted((allow or set()) - {ep.name for ep in installed}):
            known = ", ".join(sorted(ep.name for ep in installed)) or "none"
            problem = f"no installed plugin has that name (installed: {known}); check ${LOAD_ENV}"
            self.problems.append(PluginProblem(unknown, problem))
        for ep in installed:
            if allow is not None and ep.name not in allow:
                continue
            version = ep.dist.version if ep.dist is not None else "unknown"
            try:
                plugin = ep.load()
            except (Exception, SystemExit) as exc:
                problem = f"failed to import {ep.value}: {_import_problem(exc)}"
                self.problems.append(PluginProblem(ep.name, problem))
                continue
            self.register_module(plugin, ep.name, version, f"entry point {ep.value}")

    def collect(self) -> None:
        """Call every registration hook, one plugin at a time, so each item knows its plugin.

        A plugin whose hook raises is reported in :attr:`problems` and dropped whole: unregistered,
        with everything it had registered removed. Duplicate names raise.
        """
        failed: set[str] = set()
        for kind, hook_name in _KINDS.items():
            registry: Registry[Any] = getattr(self, kind)
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                plugin_name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
                if plugin_name in failed:
                    continue
                with registry._as_plugin(plugin_name):
                    try:
                        impl.function(registry=registry)
                    except DuplicateNameError:
                        raise
                    except Exception as exc:
                        failed.add(plugin_name)
                        self.problems.append(
                            PluginProblem(plugin_name, f"{hook_name} raised {type(exc).__name__}: {exc}")
                        )
        for plugin_name in failed:
            for kind in _KINDS:
                getattr(self, kind)._drop_plugin(plugin_name)
            self.pm.unregister(name=plugin_name)
            self._meta.pop(plugin_name, None)
        for name in sorted(set(self.strategies.names()) & set(self.updaters.names())):
            raise DuplicateNameError(
                f"strategy {name!r} (plugin {self.strategies.plugin_of(name)!r}) has the name of updater "
                f"{name!r} (plugin {self.updaters.plugin_of(name)!r}): a study would mix their parameters "
                f"('{name}.<parameter>'); rename one of them or unload one plugin"
            )

    def plugin_of(self, kind: str, name: str) -> str:
        """The plugin that registered ``name`` in the registry of ``kind`` (its kind as messages say
        it: ``"strategy"``, ``"meta-strategy"``, ``"task family"``, ...).

        Raises:
            UnknownNameError: No such kind, or no such name of that kind.
        """
        for attr in _KINDS:
            registry: Registry[Any] = getattr(self, attr)
            if registry.kind == kind:
                return registry.plugin_of(name)
        raise UnknownNameError(f"no kind of plugin item is called {kind!r}")

    def plugin_infos(self) -> list[PluginInfo]:
        """Name, version, origin, hooks and registered items of every loaded plugin."""
        infos: dict[str, PluginInfo] = {}
        for name, plugin in self.pm.list_name_plugin():
            version, origin = self._meta.get(name, ("unknown", "unknown"))
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            infos[name] = PluginInfo(name, version, origin, hooks)
        for kind in _KINDS:
            registry: Registry[Any] = getattr(self, kind)
            for reg in registry.registrations():
                if reg.plugin in infos:
                    infos[reg.plugin].registers.setdefault(kind, []).append(reg.name)
        return list(infos.values())


def _import_local(spec: str, base_dir: Path) -> ModuleType:
    """Import a local plugin given as ``pkg.module`` or ``path/to/file.py``."""
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        path = Path(spec)
        if not path.is_absolute():
            path = base_dir / path
        if not path.is_file():
            raise PluginError(
                f"plugin file {str(path)!r} does not exist; check the path in --plugin / plugins"
            )
        mod_name = f"stratagem_local_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise PluginError(f"cannot import plugin file {str(path)!r}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # a plugin's exit() must not end the command silently
            del sys.modules[mod_name]
            raise PluginError(f"plugin file {str(path)!r} failed on import: {_import_problem(exc)}") from exc
        return module
    for folder in (str(base_dir), os.getcwd()):
        if folder not in sys.path:
            sys.path.append(folder)  # after installed packages: a rich.py beside the spec shadows nothing
    try:
        return importlib.import_module(spec)
    except ImportError as exc:
        raise PluginError(
            f"cannot import plugin module {spec!r}: {exc}. Give a dotted module path importable from "
            f"{base_dir} or a path to a .py file"
        ) from exc
    except (Exception, SystemExit) as exc:
        raise PluginError(f"plugin module {spec!r} failed on import: {_import_problem(exc)}") from exc


def _import_problem(exc: BaseException) -> str:
    """What went wrong importing a plugin, in one line (a syntax error with its file and line)."""
    if isinstance(exc, SyntaxError):
        where = f"{Path(exc.filename).name} line {exc.lineno}" if exc.filename else f"line {exc.lineno}"
        return f"{where}: {exc.msg}"
    if isinstance(exc, SystemExit):
        return f"it called exit({exc.code!r})"
    return f"{type(exc).__name__}: {exc}"
