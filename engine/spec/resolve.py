"""Resolving a spec: every plugin name looked up, every task loaded, before anything is written."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from engine.errors import SpecError, StratagemError
from engine.evaluator import Evaluator
from engine.plugin import PluginHost
from engine.spec.checks import MAX_NAME, NAME_RE, SEARCH_KEYS, Problems
from engine.spec.competence import CompetenceSpec, check_competence
from engine.spec.model import EvaluationSpec, MetaSpec, SearchSpec, TaskSpec
from engine.strategy import Strategy
from engine.study.factories import make_pruner, make_sampler, pruner_problem, sampler_problem
from engine.study.runtime import device_problem
from engine.task import Dataset, TaskKind, fingerprint, magnitude_problems, make_split
from engine.updater import Updater
from engine.vocabulary import RESERVED_TASK_NAMES
from engine.warmstarter import WarmStarter

if TYPE_CHECKING:
    import optuna

    from engine.meta import FamilyInfo, MetaStrategy, TaskFamily

__all__ = ["DEFAULT_WARM_STARTER", "WARM_START_ENV", "Plan", "ResolvedTask", "resolve"]

WARM_START_ENV = "STRATAGEM_WARM_START"
"""Environment variable naming the default warm starter (else :data:`DEFAULT_WARM_STARTER`)."""

DEFAULT_WARM_STARTER = "guided"
"""The warm starter of a spec that names none. ``guided`` lets the other tasks' history choose the trials
of the first half of the budget. On the training group of ``bench/warmstart.py``, paired per task in three
runs, it was ahead of ``transfer`` after the first trial in two (level in the third) and level or ahead
after 5 to 20 trials (docs/benchmarks.md)."""


@dataclass(frozen=True)
class ResolvedTask:
    """A spec's task with its data loaded and its plugins looked up."""

    key: str
    spec: TaskSpec
    dataset: Dataset
    evaluator: Evaluator
    strategies: tuple[type[Strategy], ...]
    updaters: tuple[type[Updater], ...]
    fingerprint: str
    """The dataset's :func:`~engine.task.fingerprint` (computed once, here)."""


@dataclass(frozen=True)
class Plan:
    """A checked spec: every name resolved and every task loaded."""

    spec: SearchSpec
    tasks: tuple[ResolvedTask, ...]
    warm_starter: WarmStarter | None = None
    family: TaskFamily | None = None
    meta_strategies: tuple[type[MetaStrategy], ...] = ()
    meta_updaters: tuple[type[Updater], ...] = ()

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
    _check_as_toml(spec, p)
    p.raise_if_any()  # the checks below read the spec's shapes and values as these made sure they are
    if spec.mode == "meta":
        return _resolve_meta(spec, host, p)
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
    _check_sampler_and_pruner(spec, p)
    problem = device_problem(spec.device)
    if problem is not None:
        p.add("search.device", problem)
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
    same_data: dict[str, tuple[int, str]] = {}
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
        except Exception as exc:  # a plugin's own bug: named, not a traceback
            plugin = host.task_sources.plugin_of(task.source)
            p.add(key, f"task source {task.source!r} (plugin {plugin!r}) raised {type(exc).__name__}: {exc}")
            continue
        if not isinstance(dataset, Dataset):
            plugin = host.task_sources.plugin_of(task.source)
            p.add(
                key,
                f"task source {task.source!r} (plugin {plugin!r}) returned {type(dataset).__name__}, "
                "not an engine.Dataset",
            )
            continue
        name = task.name or source.default_name(task.options)
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
        if not task.name and not NAME_RE.match(name[:MAX_NAME]):
            name = re.sub(r"^[^A-Za-z0-9]+", "", name) or "task"  # from a file name such as "..csv"
        if len(name) > MAX_NAME:
            p.add(f"{key}.name", f"task name {name[:40]!r}... is longer than {MAX_NAME} characters")
            continue
        if name in RESERVED_TASK_NAMES:
            if task.name:
                p.add(
                    f"{key}.name",
                    f"task name {name!r} is reserved (the study {spec.name}/{name} is the search's own); "
                    "choose another name",
                )
                continue
            name += "_task"  # a default name, e.g. from a file meta.csv
        if name in seen:
            p.add(
                f"{key}.name",
                f"task name {name!r} is also used by tasks[{seen[name]}]; give one a distinct name",
            )
            continue
        seen[name] = i
        digest = fingerprint(dataset)
        if digest in same_data:
            first, first_name = same_data[digest]
            p.add(
                key,
                f"holds the same data as tasks[{first}] ({first_name!r}): stored tasks are known by their "
                "data, so it would be searched twice (and count twice in a cross-task mean); list it once",
            )
            continue
        same_data[digest] = (i, name)
        for message in _data_problems(dataset, spec):
            p.add(key, message)
        evaluator_name = spec.evaluation.evaluator_for(dataset.kind)
        if evaluator_name not in host.evaluators:
            continue  # reported above, with its key
        evaluator = host.evaluators.get(evaluator_name)
        fitting = tuple(s for s in strategies if dataset.kind in s.kinds)
        if not fitting:
            p.add(f"{key}", f"no selected strategy supports {dataset.kind} tasks")
            continue
        tasks.append(ResolvedTask(name, task, dataset, evaluator, fitting, updaters, digest))
    p.raise_if_any()
    return Plan(spec, tuple(tasks), warm_starter)


def _check_as_toml(spec: SearchSpec, p: Problems) -> None:
    """A spec built in code, or changed after loading (``run(seed=...)``), checked as a TOML file's is:
    its shapes first (so that reading it back cannot fail), then its dict form read back through
    :meth:`SearchSpec.from_stored`, which applies every check of the TOML path."""
    for key, (types, _, _) in SEARCH_KEYS.items():
        value = getattr(spec, key, None)
        if types is list and isinstance(value, str):
            p.add(f"search.{key}", f"must be a list of names, not the string {value!r}; write [{value!r}]")
    if spec.meta is not None and isinstance(spec.meta.strategies, str):
        value = spec.meta.strategies
        p.add("meta.strategies", f"must be a list of names, not the string {value!r}; write [{value!r}]")
    shapes = (
        ("tasks", spec.tasks, list | tuple, "a list of TaskSpec"),
        ("evaluation", spec.evaluation, EvaluationSpec, "an EvaluationSpec"),
        ("sampler", spec.sampler, Mapping, 'a mapping such as {"name": "tpe"}'),
        ("pruner", spec.pruner, Mapping | None, 'a mapping such as {"name": "median"}, or None'),
        ("meta", spec.meta, MetaSpec | None, "a MetaSpec, or None"),
        ("family", spec.family, Mapping | None, 'a mapping such as {"name": "sinusoid"}, or None'),
        ("competence", spec.competence, CompetenceSpec | None, "a CompetenceSpec, or None"),
    )
    for key, value, kind, what in shapes:
        if not isinstance(value, kind):
            p.add(key, f"must be {what}; got {value!r}")
    if isinstance(spec.tasks, list | tuple):
        for i, task in enumerate(spec.tasks):
            if not isinstance(task, TaskSpec) or not isinstance(task.options, Mapping):
                p.add(f"tasks[{i}]", f"must be a TaskSpec(source, options: mapping, name); got {task!r}")
    if p.items:
        return
    try:
        SearchSpec.from_stored(spec.to_dict(), source=spec.source, base_dir=spec.base_dir)
    except SpecError as exc:
        p.items.extend(exc.problems)


def _check_sampler_and_pruner(spec: SearchSpec, p: Problems) -> None:
    """The ``[sampler]`` and ``[pruner]`` tables built and tried on a few trials in memory, so that
    arguments that fail only on use are refused with their key before anything is written."""
    try:
        problem = sampler_problem(make_sampler(spec.sampler, 0, source=spec.source))
        if problem is not None:
            p.add("sampler", f"the sampler fails on a trial: {problem}")
    except SpecError as exc:
        p.items.extend(exc.problems)
    try:
        problem = pruner_problem(make_pruner(spec.pruner_config, source=spec.source))
        if problem is not None:
            p.add("pruner", f"the pruner fails on a trial: {problem}")
    except SpecError as exc:
        p.items.extend(exc.problems)


def _resolve_meta(spec: SearchSpec, host: PluginHost, p: Problems) -> Plan:
    """A meta-mode spec: its family built and checked by drawing one episode per pool, its names looked up."""
    _check_sampler_and_pruner(spec, p)
    options = dict(spec.family or {})
    name = options.pop("name", None)
    family: TaskFamily | None = None
    if name not in host.task_families:
        p.add(
            "family.name",
            f"unknown task family {name!r}; registered: {', '.join(host.task_families.names())}",
        )
    else:
        family_cls = host.task_families.get(name)
        for option in family_cls.path_options:  # relative to the spec's folder, as a source's paths are
            value = options.get(option)
            if isinstance(value, str | os.PathLike) and not Path(value).is_absolute():
                options[option] = str(spec.base_dir / value)
        try:
            family = family_cls(**options)
        except TypeError as exc:
            p.add("family", f"bad options for task family {name!r}: {exc}")
        if family is not None:
            try:
                family.info()
                for pool in ("meta_train", "meta_val", "meta_test"):
                    family.sample(pool, 1, _generator())
            except (StratagemError, ValueError) as exc:
                key = getattr(exc, "key", None)
                p.add(f"family.{key}" if key else "family", str(exc))
                family = None
            except Exception as exc:  # a plugin's own bug: named, not a traceback
                plugin = host.task_families.plugin_of(name)
                p.add(
                    "family", f"task family {name!r} (plugin {plugin!r}) raised {type(exc).__name__}: {exc}"
                )
                family = None
    meta = spec.meta
    if family is not None and meta.train_family:
        try:
            trainer = family.with_options(meta.train_family)
            trainer.info()
            trainer.sample("meta_train", 1, _generator())
        except TypeError as exc:
            p.add("meta.train_family", f"bad options for task family {name!r}: {exc}")
        except (StratagemError, ValueError) as exc:
            key = getattr(exc, "key", None)
            p.add(f"meta.train_family.{key}" if key else "meta.train_family", str(exc))
    strategies: list[type[MetaStrategy]] = []
    for s_name in meta.strategies or host.meta_strategies.names():
        if s_name not in host.meta_strategies:
            known = ", ".join(host.meta_strategies.names())
            p.add("meta.strategies", f"unknown meta-strategy {s_name!r}; registered: {known}")
            continue
        cls = host.meta_strategies.get(s_name)
        if family is not None and family.info().kind not in cls.kinds:
            if meta.strategies:
                p.add(
                    "meta.strategies",
                    f"meta-strategy {s_name!r} does not handle {family.info().kind} families",
                )
            continue
        if family is not None and s_name not in (meta.options or {}):  # those with options: below
            problem = _build_problem(cls, family, meta.train_family)
            if problem is not None:
                if meta.strategies:
                    p.add(
                        "meta.strategies",
                        f"meta-strategy {s_name!r} cannot build θ for family {family.name!r} with its "
                        f"default options: {problem}; give it options in [meta] options = "
                        f"{{ {s_name} = {{ ... }} }}, or leave it out",
                    )
                continue
        strategies.append(cls)
    updaters: list[type[Updater]] = []
    for u_name in meta.updaters:
        if u_name not in host.updaters:
            p.add(
                "meta.updaters", f"unknown updater {u_name!r}; registered: {', '.join(host.updaters.names())}"
            )
        elif not host.updaters.get(u_name).stochastic_objectives:
            p.add("meta.updaters", f"updater {u_name!r} cannot train stochastic objectives (meta-training)")
        else:
            updaters.append(host.updaters.get(u_name))
    if family is not None and not strategies:
        p.add("meta.strategies", "no meta-strategy handles this family")
    _check_meta_options(meta.options or {}, strategies, family, meta.train_family, p)
    if family is not None and spec.competence is not None:
        check_competence(spec.competence, family, p)
    p.raise_if_any()
    return Plan(spec, (), None, family, tuple(strategies), tuple(updaters))


MAX_WIDTH = 4096
"""Widest hidden layer ``[meta] options`` may ask of a meta-strategy."""

MAX_PARAMETERS = 50_000_000
"""Most parameters a θ built with ``[meta] options`` may have (200 MB of float32, before the updater's
state)."""


def _check_meta_options(
    options: Mapping[str, Mapping[str, Any]],
    strategies: list[type[MetaStrategy]],
    family: TaskFamily | None,
    train_family: Mapping[str, Any] | None,
    p: Problems,
) -> None:
    """``[meta] options``: each names a selected meta-strategy, and each builds θ for the family."""
    classes = {cls.name: cls for cls in strategies}
    for s_name, opts in options.items():
        key = f"meta.options.{s_name}"
        if s_name not in classes:
            p.add(
                key,
                f"{s_name!r} is not one of this search's meta-strategies ({', '.join(classes)}); "
                "add it to meta.strategies or remove its options",
            )
            continue
        hidden = opts.get("hidden")
        if hidden is not None and not (
            isinstance(hidden, list | tuple)
            and 1 <= len(hidden) <= 8
            and all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= MAX_WIDTH for h in hidden)
        ):
            p.add(f"{key}.hidden", f"must be a list of 1 to 8 widths from 1 to {MAX_WIDTH}; got {hidden!r}")
            continue
        defaults = classes[s_name]().get_params()
        wrong = _option_problem(opts, defaults)
        if wrong is not None:
            p.add(f"{key}.{wrong[0]}", wrong[1])
            continue
        try:
            strategy = classes[s_name](**{**defaults, **opts})
        except TypeError as exc:
            p.add(key, f"bad options for meta-strategy {s_name!r}: {exc}")
            continue
        if family is None:
            continue
        size = _theta_size_for(strategy, family, train_family)
        if isinstance(size, str):
            p.add(key, f"meta-strategy {s_name!r} cannot build θ with these options: {size}")
            continue
        if size > MAX_PARAMETERS:
            p.add(
                key,
                f"θ would have {size:,} parameters, more than {MAX_PARAMETERS:,}; lower hidden or members",
            )


def _theta_size_for(
    strategy: MetaStrategy, family: TaskFamily, train_family: Mapping[str, Any] | None
) -> int | str:
    """The parameters of θ that ``strategy`` builds for the family it meta-trains on (``family``, with
    ``train_family`` over its options), or why it cannot build one."""
    try:
        trainer = family
        if train_family and strategy.meta_trained:
            trainer = family.with_options(train_family)
        return _theta_size(strategy, trainer.info())
    except (StratagemError, ValueError, TypeError) as exc:
        return str(exc)
    except Exception as exc:  # a plugin's build that fails otherwise
        return f"{type(exc).__name__}: {exc}"


def _build_problem(
    cls: type[MetaStrategy], family: TaskFamily, train_family: Mapping[str, Any] | None
) -> str | None:
    """Why ``cls`` with its default options cannot build θ for ``family`` (``None`` if it can)."""
    try:
        strategy = cls()
    except Exception as exc:  # a plugin's class that needs arguments, or fails to start
        return f"{cls.__name__}() raised {type(exc).__name__}: {exc}"
    size = _theta_size_for(strategy, family, train_family)
    return size if isinstance(size, str) else None


def _option_problem(opts: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first option whose value cannot be meant (a type other than its default's, or an
    ``inner_lr`` / ``inner_steps`` outside what a meta-strategy can run), as ``(name, message)``."""
    for name, value in opts.items():
        if name not in defaults:
            return name, f"unknown option; this meta-strategy takes {', '.join(defaults)}"
        default = defaults[name]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(default, bool) and not isinstance(value, bool):
            return name, f"must be true or false; got {value!r}"
        if (
            isinstance(default, int)
            and not isinstance(default, bool)
            and not (number and value == int(value))
        ):
            return name, f"must be an integer; got {value!r}"
        if isinstance(default, float) and not (number and math.isfinite(value)):
            return name, f"must be a finite number; got {value!r}"
        if isinstance(default, str) and not isinstance(value, str):
            return name, f"must be a string; got {value!r}"
        if isinstance(default, tuple | list) and not isinstance(value, tuple | list):
            return name, f"must be a list; got {value!r}"
    if "inner_lr" in opts and not 0 < opts["inner_lr"] <= 10:
        return "inner_lr", f"must be in (0, 10]; got {opts['inner_lr']!r}"
    if "inner_steps" in opts and not 0 <= opts["inner_steps"] <= 100:
        return "inner_steps", f"must be from 0 to 100; got {opts['inner_steps']!r}"
    return None


def _theta_size(strategy: MetaStrategy, info: FamilyInfo) -> int:
    """Parameters of the θ ``strategy`` builds for ``info``, built on the meta device (no memory) when
    the strategy allows it."""
    try:
        with torch.device("meta"):
            model = strategy.build(info, _generator())
    except (RuntimeError, NotImplementedError):  # a plugin's build that needs real tensors
        model = strategy.build(info, _generator())
    return sum(p.numel() for p in model.parameters())


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _data_problems(dataset: Dataset, spec: SearchSpec) -> list[str]:
    """Problems of a loaded task that its source cannot know: huge values, too few rows for the folds."""
    out = magnitude_problems(dataset)
    kfold = spec.evaluation.validation == "kfold" or spec.evaluation.recheck > 0
    if kfold and not out:
        split = make_split(dataset, seed=0)
        rows = len(split.train) + len(split.validation)
        if rows < spec.evaluation.folds:
            fix = 'use validation = "holdout"' if spec.evaluation.recheck == 0 else "set recheck = 0"
            out.append(
                f"evaluation.folds = {spec.evaluation.folds} needs at least that many training rows; this "
                f"task has {rows}: lower folds or {fix}"
            )
    return out


def _warm_starter(spec: SearchSpec, host: PluginHost, p: Problems) -> WarmStarter | None:
    """The warm starter the spec names, else ``$STRATAGEM_WARM_START``'s, else the default one."""
    if not spec.warm_start:
        return None
    name, key = spec.warm_start_method, "search.warm_start_method"
    if name is None:
        name, key = os.environ.get(WARM_START_ENV, "").strip() or DEFAULT_WARM_STARTER, f"${WARM_START_ENV}"
    if name not in host.warm_starters:
        known = ", ".join(host.warm_starters.names()) or "none"
        p.add(key, f"unknown warm starter {name!r}; registered: {known}")
        return None
    return host.warm_starters.get(name)
