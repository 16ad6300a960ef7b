"""Resolving a spec: every plugin name looked up, every task loaded, before anything is written."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.errors import SpecError, StratagemError
from engine.evaluator import Evaluator
from engine.plugin import PluginHost
from engine.spec.checks import Problems
from engine.spec.model import SearchSpec, TaskSpec
from engine.strategy import Strategy
from engine.study.factories import make_pruner, make_sampler
from engine.task import Dataset, TaskKind
from engine.updater import Updater
from engine.warmstarter import WarmStarter

if TYPE_CHECKING:
    import optuna

__all__ = ["WARM_START_ENV", "Plan", "ResolvedTask", "resolve"]

WARM_START_ENV = "STRATAGEM_WARM_START"
"""Environment variable naming the default warm starter (default ``transfer``)."""


@dataclass(frozen=True)
class ResolvedTask:
    """A spec's task with its data loaded and its plugins looked up."""

    key: str
    spec: TaskSpec
    dataset: Dataset
    evaluator: Evaluator
    strategies: tuple[type[Strategy], ...]
    updaters: tuple[type[Updater], ...]


@dataclass(frozen=True)
class Plan:
    """A checked spec: every name resolved and every task loaded."""

    spec: SearchSpec
    tasks: tuple[ResolvedTask, ...]
    warm_starter: WarmStarter | None = None

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return make_sampler(self.spec.sampler, seed, source=self.spec.source)

    def pruner(self) -> optuna.pruners.BasePruner:
        return make_pruner(self.spec.pruner_config, source=self.spec.source)


def resolve(spec: SearchSpec, host: PluginHost) -> Plan:
    """Check every plugin name in ``spec`` and load every task's data.

    Raises:
        SpecError: Listing every unknown name, bad option and unloadable task, each with its key.
    """
    p = Problems(spec.source)
    for key, names, registry in (
        ("search.strategies", spec.strategies, host.strategies),
        ("search.updaters", spec.updaters, host.updaters),
    ):
        for name in names or ():
            if name not in registry:
                p.add(
                    key,
                    f"unknown {registry.kind} {name!r}; registered: {', '.join(registry.names()) or 'none'}",
                )
    kinds: tuple[TaskKind, ...] = ("classification", "regression")
    for kind in kinds:
        name = spec.evaluation.evaluator_for(kind)
        if name not in host.evaluators:
            p.add(
                f"evaluation.{kind}",
                f"unknown evaluator {name!r}; registered: {', '.join(host.evaluators.names())}",
            )
        elif kind not in host.evaluators.get(name).kinds:
            p.add(f"evaluation.{kind}", f"evaluator {name!r} does not apply to {kind} tasks")
    try:
        make_sampler(spec.sampler, 0, source=spec.source)
    except SpecError as exc:
        p.items.extend(exc.problems)
    try:
        make_pruner(spec.pruner_config, source=spec.source)
    except SpecError as exc:
        p.items.extend(exc.problems)
    warm_starter = _warm_starter(spec, host, p)
    strategies = [
        host.strategies.get(n) for n in (spec.strategies or host.strategies.names()) if n in host.strategies
    ]
    updaters = tuple(
        host.updaters.get(n) for n in (spec.updaters or host.updaters.names()) if n in host.updaters
    )
    if not updaters and not spec.updaters:
        p.add("search.updaters", "no updater is available; install or load a plugin that registers one")
    tasks: list[ResolvedTask] = []
    seen: dict[str, int] = {}
    for i, task in enumerate(spec.tasks):
        key = f"tasks[{i}]"
        if task.source not in host.task_sources:
            known = ", ".join(host.task_sources.names())
            p.add(f"{key}.source", f"unknown task source {task.source!r}; registered: {known}")
            continue
        source = host.task_sources.get(task.source)
        problems = source.check_options(task.options)
        for opt, message in problems:
            p.add(f"{key}.{opt}", message)
        if problems:
            continue
        try:
            dataset = source.load(task.options, spec.base_dir)
        except StratagemError as exc:
            p.add(key, str(exc))
            continue
        name = task.name or source.default_name(task.options)
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
        if name in seen:
            p.add(
                f"{key}.name",
                f"task name {name!r} is also used by tasks[{seen[name]}]; give one a distinct name",
            )
            continue
        seen[name] = i
        evaluator = host.evaluators.get(spec.evaluation.evaluator_for(dataset.kind))
        fitting = tuple(s for s in strategies if dataset.kind in s.kinds)
        if not fitting:
            p.add(f"{key}", f"no selected strategy supports {dataset.kind} tasks")
            continue
        tasks.append(ResolvedTask(name, task, dataset, evaluator, fitting, updaters))
    p.raise_if_any()
    return Plan(spec, tuple(tasks), warm_starter)


def _warm_starter(spec: SearchSpec, host: PluginHost, p: Problems) -> WarmStarter | None:
    """The warm starter the spec names, else ``$STRATAGEM_WARM_START``'s, else ``transfer``."""
    if not spec.warm_start:
        return None
    name, key = spec.warm_start_method, "search.warm_start_method"
    if name is None:
        name, key = os.environ.get(WARM_START_ENV, "").strip() or "transfer", f"${WARM_START_ENV}"
    if name not in host.warm_starters:
        known = ", ".join(host.warm_starters.names()) or "none"
        p.add(key, f"unknown warm starter {name!r}; registered: {known}")
        return None
    return host.warm_starters.get(name)
