"""Study specifications: what to search, read from TOML or built in code, validated before any work.

A spec file looks like this (every key but ``search.name`` and ``tasks`` is optional)::

    [search]
    name = "quickstart"        # names the task-exploration study and prefixes strategy studies
    seed = 0
    n_trials = 20              # strategy trials per task
    timeout = 120              # seconds per task visit (optional)
    strategies = ["linear", "mlp"]               # default: every registered one that fits the task
    updaters = ["gradient_descent", "random_search"]
    plugins = ["my_plugins.py"]                  # local plugin modules or files
    device = "cpu"             # "cpu", "cuda" or "auto"
    threads = 1                # torch threads per worker (0: torch's default)
    trials_per_visit = 0       # 0: each task gets all its trials in one visit
    warm_start = true          # seed new strategy studies from other tasks' history
    warm_start_method = "transfer"  # or "knn" (default: $STRATAGEM_WARM_START, else "transfer")
    mode = "per_task"          # or "cross_task": one study for the best default over all tasks

    [cross_task]               # only for mode = "cross_task"
    first_stage = 0.34         # share of tasks every configuration is evaluated on first

    [sampler]                  # any Optuna sampler keyword arguments besides name
    name = "tpe"               # "tpe", "random", "qmc" or "gp"

    [pruner]                   # default: median; in cross-task mode percentile 33.3 (keep the best third)
    name = "median"            # "median", "percentile", "hyperband", "successive_halving", "none"

    [evaluation]
    classification = "accuracy"
    regression = "r2"
    validation = "holdout"     # or "kfold"
    folds = 5

    [[tasks]]
    source = "sklearn"
    dataset = "iris"

Parsing checks structure and types (:meth:`SearchSpec.from_dict`); :func:`resolve` then checks every
plugin name against the loaded plugins and loads every task's data, so a bad spec fails before the first
trial, with one message per problem naming the file and key.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import SpecError, StratagemError

if TYPE_CHECKING:
    import optuna

    from engine.evaluator import Evaluator
    from engine.plugins import PluginHost
    from engine.strategy import Strategy
    from engine.task import Dataset, TaskKind
    from engine.updater import Updater

__all__ = ["EvaluationSpec", "SearchSpec", "TaskSpec", "load_spec"]

SAMPLERS = ("tpe", "random", "qmc", "gp")
PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "none")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class TaskSpec:
    """One ``[[tasks]]`` entry: a task source and its options."""

    source: str
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None


@dataclass(frozen=True)
class EvaluationSpec:
    """How strategies are judged: one evaluator per task kind, holdout or k-fold validation."""

    classification: str = "accuracy"
    regression: str = "r2"
    validation: str = "holdout"
    folds: int = 5

    def evaluator_for(self, kind: TaskKind) -> str:
        return self.classification if kind == "classification" else self.regression


@dataclass(frozen=True)
class SearchSpec:
    """A whole search: tasks to explore and how to explore strategies on each.

    Build one in code (``SearchSpec(name="demo", tasks=[TaskSpec("sklearn", {"dataset": "iris"})])``)
    or read a TOML file with :func:`load_spec`.
    """

    name: str
    tasks: Sequence[TaskSpec]
    seed: int = 0
    n_trials: int = 20
    timeout: float | None = None
    strategies: Sequence[str] | None = None
    updaters: Sequence[str] | None = None
    plugins: Sequence[str] = ()
    device: str = "cpu"
    threads: int = 1
    trials_per_visit: int = 0
    warm_start: bool = True
    warm_start_method: str | None = None
    mode: str = "per_task"
    first_stage: float = 0.34
    sampler: Mapping[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: Mapping[str, Any] | None = None
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    source: str = "<spec>"
    base_dir: Path = field(default_factory=Path.cwd)

    @property
    def pruner_config(self) -> Mapping[str, Any]:
        """The ``[pruner]`` table, or the mode's default: the median pruner per task; for cross-task
        racing, a percentile pruner that lets only the best third of configurations past each task."""
        if self.pruner is not None:
            return self.pruner
        if self.mode == "cross_task":
            return {"name": "percentile", "percentile": 100 / 3, "n_startup_trials": 3}
        return {"name": "median"}

    def replace(self, **changes: Any) -> SearchSpec:
        """A copy with some fields changed (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, stored with the search."""
        return {
            "search": {
                "name": self.name,
                "seed": self.seed,
                "n_trials": self.n_trials,
                "timeout": self.timeout,
                "strategies": list(self.strategies) if self.strategies is not None else None,
                "updaters": list(self.updaters) if self.updaters is not None else None,
                "plugins": list(self.plugins),
                "device": self.device,
                "threads": self.threads,
                "trials_per_visit": self.trials_per_visit,
                "warm_start": self.warm_start,
                "warm_start_method": self.warm_start_method,
                "mode": self.mode,
            },
            "cross_task": {"first_stage": self.first_stage},
            "sampler": dict(self.sampler),
            "pruner": dict(self.pruner_config),
            "evaluation": dataclasses.asdict(self.evaluation),
            "tasks": [
                {"source": t.source, **({"name": t.name} if t.name else {}), **dict(t.options)}
                for t in self.tasks
            ],
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, source: str = "<spec>", base_dir: Path | None = None
    ) -> SearchSpec:
        """Check a parsed TOML document's structure and types and build the spec.

        Raises:
            SpecError: Listing every problem found, each with its key.
        """
        p = _Problems(source)
        p.unknown(data, {"search", "sampler", "pruner", "evaluation", "tasks", "cross_task"}, "")
        search = p.table(data, "search", required=True)
        p.unknown(search, set(_SEARCH_KEYS), "search.")
        kw: dict[str, Any] = {}
        for key, (types, check, hint) in _SEARCH_KEYS.items():
            if search.get(key) is not None:  # (None only comes from to_dict(), never from TOML)
                value = search[key]
                if not _is(value, types) or (check is not None and not check(value)):
                    p.add(f"search.{key}", f"{hint}; got {value!r}")
                else:
                    kw[key] = tuple(value) if isinstance(value, list) else value
        if "name" not in search:
            p.add("search.name", 'missing; give the search a name, such as name = "my-search"')
        for section, names in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
            table = p.table(data, section)
            if table:
                name = table.get("name", "tpe" if section == "sampler" else "median")
                if name not in names:
                    p.add(f"{section}.name", f"must be one of {', '.join(names)}; got {name!r}")
                kw[section] = {"name": name, **{k: v for k, v in table.items() if k != "name"}}
        cross = p.table(data, "cross_task")
        p.unknown(cross, {"first_stage"}, "cross_task.")
        if "first_stage" in cross:
            fs = cross["first_stage"]
            if _is(fs, (int, float)) and 0 < fs <= 1:
                kw["first_stage"] = float(fs)
            else:
                p.add("cross_task.first_stage", f"must be a number in (0, 1]; got {fs!r}")
        evaluation = p.table(data, "evaluation")
        p.unknown(evaluation, {"classification", "regression", "validation", "folds"}, "evaluation.")
        ev: dict[str, Any] = {}
        for key in ("classification", "regression"):
            if key in evaluation:
                if isinstance(evaluation[key], str):
                    ev[key] = evaluation[key]
                else:
                    p.add(f"evaluation.{key}", f"must be an evaluator name; got {evaluation[key]!r}")
        if "validation" in evaluation:
            if evaluation["validation"] in ("holdout", "kfold"):
                ev["validation"] = evaluation["validation"]
            else:
                p.add(
                    "evaluation.validation", f'must be "holdout" or "kfold"; got {evaluation["validation"]!r}'
                )
        if "folds" in evaluation:
            folds = evaluation["folds"]
            if _is(folds, int) and 2 <= folds <= 20:
                ev["folds"] = folds
            else:
                p.add("evaluation.folds", f"must be an integer from 2 to 20; got {folds!r}")
        tasks_raw = data.get("tasks")
        tasks: list[TaskSpec] = []
        if tasks_raw is None:
            p.add(
                "tasks",
                'missing; add at least one [[tasks]] table, such as source = "sklearn", dataset = "iris"',
            )
        elif not isinstance(tasks_raw, list) or not tasks_raw:
            p.add("tasks", "must be a non-empty array of [[tasks]] tables")
        else:
            for i, entry in enumerate(tasks_raw):
                key = f"tasks[{i}]"
                if not isinstance(entry, Mapping):
                    p.add(key, f"must be a table with a `source` key; got {entry!r}")
                    continue
                src = entry.get("source")
                if not isinstance(src, str):
                    p.add(f"{key}.source", 'missing; name a task source such as "sklearn" or "csv"')
                    continue
                name = entry.get("name")
                if name is not None and not (isinstance(name, str) and NAME_RE.match(name)):
                    p.add(f"{key}.name", f"must be letters, digits, '_', '-' or '.'; got {name!r}")
                    name = None
                options = {k: v for k, v in entry.items() if k not in ("source", "name")}
                tasks.append(TaskSpec(src, options, name))
        p.raise_if_any()
        return cls(
            tasks=tuple(tasks),
            evaluation=EvaluationSpec(**ev),
            source=source,
            base_dir=base_dir or Path.cwd(),
            **kw,
        )


def _is(value: Any, types: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        return False
    return isinstance(value, types)


def _str_list(v: Any) -> bool:
    return all(isinstance(s, str) for s in v)


_SEARCH_KEYS: dict[str, tuple[type | tuple[type, ...], Any, str]] = {
    "name": (str, lambda v: bool(NAME_RE.match(v)), "must be letters, digits, '_', '-' or '.'"),
    "seed": (int, lambda v: v >= 0, "must be a non-negative integer"),
    "n_trials": (int, lambda v: v >= 1, "must be a positive integer"),
    "timeout": ((int, float), lambda v: v > 0, "must be a positive number of seconds"),
    "strategies": (list, lambda v: bool(v) and _str_list(v), "must be a non-empty list of strategy names"),
    "updaters": (list, lambda v: bool(v) and _str_list(v), "must be a non-empty list of updater names"),
    "plugins": (list, _str_list, "must be a list of module paths or .py files"),
    "device": (
        str,
        lambda v: v in ("cpu", "cuda", "auto") or v.startswith("cuda:"),
        "must be cpu, cuda or auto",
    ),
    "threads": (int, lambda v: v >= 0, "must be a non-negative integer (0: torch's default)"),
    "trials_per_visit": (
        int,
        lambda v: v >= 0,
        "must be a non-negative integer (0: all trials in one visit)",
    ),
    "mode": (str, lambda v: v in ("per_task", "cross_task"), 'must be "per_task" or "cross_task"'),
    "warm_start": (bool, None, "must be true or false"),
    "warm_start_method": (str, lambda v: v in ("transfer", "knn"), 'must be "transfer" or "knn"'),
}


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str | None, str]] = []

    def add(self, key: str | None, message: str) -> None:
        self.items.append((key, message))

    def table(self, data: Mapping[str, Any], key: str, required: bool = False) -> Mapping[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                self.add(key, f"missing; add a [{key}] table")
            return {}
        if not isinstance(value, Mapping):
            self.add(key, f"must be a table ([{key}]); got {value!r}")
            return {}
        return value

    def unknown(self, data: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
        for key in data:
            if key not in allowed:
                close = [a for a in sorted(allowed) if a[:3] == key[:3]]
                hint = (
                    f"; did you mean {close[0]!r}?"
                    if close
                    else f"; known keys: {', '.join(sorted(allowed))}"
                )
                self.add(prefix + key, "unknown key" + hint)

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError.many(self.items, source=self.source)


def load_spec(path: str | Path) -> SearchSpec:
    """Read and check a TOML study spec; relative paths inside it resolve against its folder.

    Raises:
        SpecError: The file is missing, is not valid TOML, or has invalid keys or values.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file not found (looked for {path.resolve()})", source=str(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"not valid TOML: {exc}", source=str(path)) from None
    return SearchSpec.from_dict(data, source=str(path), base_dir=path.resolve().parent)


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

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return make_sampler(self.spec.sampler, seed, source=self.spec.source)

    def pruner(self) -> optuna.pruners.BasePruner:
        return make_pruner(self.spec.pruner_config, source=self.spec.source)


def resolve(spec: SearchSpec, host: PluginHost) -> Plan:
    """Check every plugin name in ``spec`` and load every task's data.

    Raises:
        SpecError: Listing every unknown name, bad option and unloadable task, each with its key.
    """
    p = _Problems(spec.source)
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
    if spec.warm_start and spec.warm_start_method is None:
        from engine.warmstart import default_method

        try:
            default_method()
        except ValueError as exc:
            p.add("search.warm_start_method", str(exc))
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
        bad = False
        for opt, value in task.options.items():
            if opt not in source.options:
                allowed = ", ".join(["name", *source.options]) or "name"
                p.add(f"{key}.{opt}", f"unknown option for source {task.source!r}; valid options: {allowed}")
                bad = True
            else:
                option = source.options[opt]
                if not _is(value, option.type) or (option.choices and value not in option.choices):
                    want = f"one of {list(option.choices)}" if option.choices else _type_name(option.type)
                    p.add(f"{key}.{opt}", f"must be {want}; got {value!r}")
                    bad = True
        for opt, option in source.options.items():
            if option.required and opt not in task.options:
                p.add(f"{key}.{opt}", f"missing; source {task.source!r} needs it ({option.help})")
                bad = True
        if bad:
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
    return Plan(spec, tuple(tasks))


def _type_name(t: type | tuple[type, ...]) -> str:
    types = t if isinstance(t, tuple) else (t,)
    names = {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "list": "a list",
    }
    return " or ".join(names.get(x.__name__, x.__name__) for x in types)


def make_sampler(
    config: Mapping[str, Any], seed: int, *, source: str = "<spec>"
) -> optuna.samplers.BaseSampler:
    """Build the Optuna sampler a spec's ``[sampler]`` table describes, seeded with ``seed``."""
    import optuna

    classes = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "qmc": optuna.samplers.QMCSampler,
        "gp": optuna.samplers.GPSampler,
    }
    name = config.get("name", "tpe")
    kwargs = {k: v for k, v in config.items() if k != "name"}
    try:
        sampler: optuna.samplers.BaseSampler = classes[name](seed=seed, **kwargs)
        return sampler
    except (TypeError, ValueError) as exc:
        raise SpecError(
            f"cannot build sampler {name!r} with {kwargs}: {exc}", source=source, key="sampler"
        ) from None


def make_pruner(config: Mapping[str, Any], *, source: str = "<spec>") -> optuna.pruners.BasePruner:
    """Build the Optuna pruner a spec's ``[pruner]`` table describes."""
    import optuna

    classes: dict[str, Any] = {
        "median": optuna.pruners.MedianPruner,
        "percentile": optuna.pruners.PercentilePruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "none": optuna.pruners.NopPruner,
    }
    name = config.get("name", "median")
    kwargs = {k: v for k, v in config.items() if k != "name"}
    try:
        pruner: optuna.pruners.BasePruner = classes[name](**kwargs)
        return pruner
    except (TypeError, ValueError) as exc:
        raise SpecError(
            f"cannot build pruner {name!r} with {kwargs}: {exc}", source=source, key="pruner"
        ) from None
