"""Hook specifications: the ways a plugin extends Stratagem.

A plugin is a module or object with functions marked ``@engine.hookimpl`` whose names match the
specifications below. Built-in plugins (the ``plugins`` package) use exactly the same hooks as
installed packages (entry-point group ``stratagem``) and local modules loaded with ``--plugin``.

Example::

    import engine

    @engine.hookimpl
    def stratagem_register_strategies(registry):
        registry.add(MyStrategy)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from engine.evaluator import Evaluator
    from engine.meta import MetaStrategy, TaskFamily
    from engine.plugin.registry import Registry
    from engine.strategy import Strategy
    from engine.task import TaskSource
    from engine.updater import Updater
    from engine.warmstarter import WarmStarter

PROJECT_NAME = "stratagem"
"""The pluggy project name, which is also the entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def stratagem_register_task_sources(registry: Registry[TaskSource]) -> None:
    """Register task sources: ``registry.add(MySource())``.

    Args:
        registry: Registry of :class:`engine.TaskSource` instances, keyed by their ``name``.
    """


@hookspec
def stratagem_register_strategies(registry: Registry[type[Strategy]]) -> None:
    """Register strategies: ``registry.add(MyStrategy)`` (the class, not an instance).

    Args:
        registry: Registry of :class:`engine.Strategy` subclasses, keyed by their ``name``.
    """


@hookspec
def stratagem_register_evaluators(registry: Registry[Evaluator]) -> None:
    """Register evaluators: ``registry.add(MyEvaluator())``.

    Args:
        registry: Registry of :class:`engine.Evaluator` instances, keyed by their ``name``.
    """


@hookspec
def stratagem_register_updaters(registry: Registry[type[Updater]]) -> None:
    """Register updaters: ``registry.add(MyUpdater)`` (the class, not an instance).

    Args:
        registry: Registry of :class:`engine.Updater` subclasses, keyed by their ``name``.
    """


@hookspec
def stratagem_register_warm_starters(registry: Registry[WarmStarter]) -> None:
    """Register warm-start methods: ``registry.add(MyWarmStarter())``.

    A spec picks one with ``search.warm_start_method``; it seeds each new strategy study from other
    tasks' history (see :class:`engine.WarmStarter`).

    Args:
        registry: Registry of :class:`engine.WarmStarter` instances, keyed by their ``name``.
    """


@hookspec
def stratagem_register_task_families(registry: Registry[type[TaskFamily]]) -> None:
    """Register task families for meta-learning: ``registry.add(MyFamily)`` (the class, not an instance).

    A meta-mode spec names one in its ``[family]`` table; the rest of that table is the class's keyword
    arguments (see :class:`engine.TaskFamily`).

    Args:
        registry: Registry of :class:`engine.TaskFamily` subclasses, keyed by their ``name``.
    """


@hookspec
def stratagem_register_meta_strategies(registry: Registry[type[MetaStrategy]]) -> None:
    """Register meta-strategies: ``registry.add(MyMetaStrategy)`` (the class, not an instance).

    A meta-mode spec lists them in ``meta.strategies``; the engine meta-trains each through the updater
    plugins (see :class:`engine.MetaStrategy` and :func:`engine.meta_problem`).

    Args:
        registry: Registry of :class:`engine.MetaStrategy` subclasses, keyed by their ``name``.
    """
