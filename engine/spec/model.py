"""Study specifications: what to search, read from TOML or built in code, validated before any work.

A spec file looks like this (every key but ``search.name`` and ``tasks`` is optional)::

    [search]
    name = "quickstart"        # names the task-exploration study and prefixes strategy studies
    seed = 0
    n_trials = 20              # strategy trials per task
    timeout = 120              # seconds per task visit (optional)
    trial_timeout = 60         # seconds per trial; a trial running longer is stopped and failed (optional)
    strategies = ["linear", "mlp"]               # default: every registered one that fits the task
    updaters = ["gradient_descent", "random_search"]
    plugins = ["my_plugins.py"]                  # local plugin modules or files
    device = "cpu"             # "cpu", "cuda" or "auto"
    threads = 1                # torch threads per worker (0: torch's default)
    trials_per_visit = 0       # 0: each task gets all its trials in one visit
    warm_start = true          # seed new strategy (and meta) studies from other tasks' history
    warm_start_method = "guided"    # or "transfer", "knn" (default: $STRATAGEM_WARM_START, else "guided")
    mode = "per_task"          # or "cross_task": one study for the best default over all tasks
    keep = "best"              # trained models kept: "best" (current best per task) or "all"
    artifacts = "models/"      # where they go, from the spec's folder (default: $STRATAGEM_ARTIFACTS, else
                               # beside a SQLite file; a PostgreSQL database needs one to keep models)

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
    recheck = 0                # > 1: at the end, re-judge the top N trials by k-fold; the best mean wins

    [[tasks]]
    source = "sklearn"
    dataset = "iris"

Parsing (this module) checks structure and types (:meth:`SearchSpec.from_dict`);
:func:`engine.spec.resolve.resolve` then checks every plugin name against the loaded plugins and loads every
task's data, so a bad spec fails before the first trial, with one message per problem naming the file and
key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import SpecError
from engine.spec.checks import (
    META_KEYS,
    NAME_RE,
    PRUNERS,
    SAMPLERS,
    SEARCH_KEYS,
    Problems,
    is_type,
    plain_fields,
    plain_numbers,
)
from engine.spec.competence import CompetenceSpec, parse_competence

if TYPE_CHECKING:
    from engine.task import TaskKind

__all__ = ["EvaluationSpec", "MetaSpec", "SearchSpec", "TaskSpec", "load_spec"]


@dataclass(frozen=True)
class TaskSpec:
    """One ``[[tasks]]`` entry: a task source and its options."""

    source: str
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self) -> None:
        plain_fields(self)  # NumPy scalars given in code are the Python numbers they hold


@dataclass(frozen=True)
class EvaluationSpec:
    """How strategies are judged: one evaluator per task kind, holdout or k-fold validation."""

    classification: str = "accuracy"
    regression: str = "r2"
    validation: str = "holdout"
    folds: int = 5
    recheck: int = 0

    def __post_init__(self) -> None:
        plain_fields(self)  # NumPy scalars given in code are the Python numbers they hold

    def evaluator_for(self, kind: TaskKind) -> str:
        return self.classification if kind == "classification" else self.regression


@dataclass(frozen=True)
class MetaSpec:
    """The ``[meta]`` table of a meta-mode spec: which meta-strategies to explore and their budgets.

    Attributes:
        strategies: Meta-strategy names (default: every registered one that handles the family).
        updaters: Updaters that meta-train θ (those with ``stochastic_objectives``).
        iterations: Meta-iterations (objective draws) per trial.
        checkpoints: Meta-validations per trial, evenly spaced; the pruner sees each.
        meta_batch: Meta-batch sizes the sampler chooses from.
        val_tasks: Meta-validation tasks scored at each checkpoint.
        test_tasks: Meta-test tasks of the final evaluation (mean ± 95% CI).
        steps: Adaptation steps at which meta-test tasks are scored.
        train_family: Family options that meta-training episodes use instead of ``[family]``'s, e.g.
            ``{"n_way": 20}`` for higher-way episodes (validation and test tasks keep ``[family]``).
        options: Fixed keyword arguments per meta-strategy name, over its defaults, e.g.
            ``{"protonet": {"members": 3}}``; an option fixed here (``inner_lr``, ``inner_steps``,
            ``hidden``) is not sampled.
    """

    strategies: Sequence[str] | None = None
    updaters: Sequence[str] = ("gradient_descent",)
    iterations: int = 200
    checkpoints: int = 4
    meta_batch: Sequence[int] = (4, 8, 16)
    val_tasks: int = 50
    test_tasks: int = 600
    steps: Sequence[int] = (0, 1, 10)
    train_family: Mapping[str, Any] | None = None
    options: Mapping[str, Mapping[str, Any]] | None = None

    def __post_init__(self) -> None:
        plain_fields(self)  # NumPy scalars given in code are the Python numbers they hold


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
    trial_timeout: float | None = None
    strategies: Sequence[str] | None = None
    updaters: Sequence[str] | None = None
    plugins: Sequence[str] = ()
    device: str = "cpu"
    threads: int = 1
    trials_per_visit: int = 0
    warm_start: bool = True
    warm_start_method: str | None = None
    mode: str = "per_task"
    keep: str = "best"
    artifacts: str | None = None
    first_stage: float = 0.34
    sampler: Mapping[str, Any] = field(default_factory=lambda: {"name": "tpe"})
    pruner: Mapping[str, Any] | None = None
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    family: Mapping[str, Any] | None = None
    meta: MetaSpec = field(default_factory=MetaSpec)
    competence: CompetenceSpec | None = None
    source: str = "<spec>"
    base_dir: Path = field(default_factory=Path.cwd)

    def __post_init__(self) -> None:
        plain_fields(self)  # NumPy scalars given in code are the Python numbers they hold

    @property
    def artifacts_dir(self) -> Path | None:
        """``artifacts`` as a path, relative to the spec's folder (``None``: not set, so
        ``$STRATAGEM_ARTIFACTS`` or the folder beside a SQLite file decides)."""
        return self.base_dir / self.artifacts if self.artifacts else None

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
                "trial_timeout": self.trial_timeout,
                "strategies": list(self.strategies) if self.strategies is not None else None,
                "updaters": list(self.updaters) if self.updaters is not None else None,
                "plugins": list(self.plugins),
                "device": self.device,
                "threads": self.threads,
                "trials_per_visit": self.trials_per_visit,
                "warm_start": self.warm_start,
                "warm_start_method": self.warm_start_method,
                "mode": self.mode,
                "keep": self.keep,
                "artifacts": self.artifacts,
            },
            **({"cross_task": {"first_stage": self.first_stage}} if self.mode == "cross_task" else {}),
            "sampler": dict(self.sampler),
            "pruner": dict(self.pruner_config),
            "evaluation": dataclasses.asdict(self.evaluation),
            **({"family": dict(self.family)} if self.family is not None else {}),
            **({"meta": _set(_jsonable(dataclasses.asdict(self.meta)))} if self.mode == "meta" else {}),
            **({"competence": _set(self.competence.to_dict())} if self.competence is not None else {}),
            **(
                {
                    "tasks": [
                        {"source": t.source, **({"name": t.name} if t.name else {}), **dict(t.options)}
                        for t in self.tasks
                    ]
                }
                if self.mode != "meta"
                else {}
            ),
        }

    @classmethod
    def from_stored(
        cls, data: Mapping[str, Any], *, source: str = "<spec>", base_dir: Path | None = None
    ) -> SearchSpec:
        """Read back a spec that :meth:`to_dict` stored with a search, also as earlier versions wrote
        it (a ``cross_task`` table in every mode, null options, an empty task list in meta mode)."""
        data = dict(data)
        mode = dict(data.get("search") or {}).get("mode", "per_task")
        if mode != "cross_task":
            data.pop("cross_task", None)
        if mode == "meta" and not data.get("tasks"):
            data.pop("tasks", None)
        for table in ("meta", "competence"):
            if isinstance(data.get(table), Mapping):
                data[table] = _set(data[table])
        return cls.from_dict(data, source=source, base_dir=base_dir)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, source: str = "<spec>", base_dir: Path | None = None
    ) -> SearchSpec:
        """Check a parsed TOML document's structure and types and build the spec.

        Raises:
            SpecError: Listing every problem found, each with its key.
        """
        p = Problems(source)
        data = plain_numbers(data)  # a dict built in code may hold NumPy scalars: the numbers they are
        p.unknown(
            data,
            {"search", "sampler", "pruner", "evaluation", "tasks", "cross_task", "family", "meta"}
            | {"competence"},
            "",
        )
        search = p.table(data, "search", required=True)
        p.unknown(search, set(SEARCH_KEYS), "search.")
        kw: dict[str, Any] = {}
        for key, (types, check, hint) in SEARCH_KEYS.items():
            if search.get(key) is not None:  # (None only comes from to_dict(), never from TOML)
                value = search[key]
                if not is_type(value, types) or (check is not None and not check(value)):
                    p.add(f"search.{key}", f"{hint}; got {value!r}")
                else:
                    kw[key] = tuple(value) if isinstance(value, list) else value
        if search.get("name") is None:
            p.add("search.name", 'missing; give the search a name, such as name = "my-search"')
        for section, names in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
            table = p.table(data, section)
            if table:
                name = table.get("name", "tpe" if section == "sampler" else "median")
                if name not in names:
                    p.add(f"{section}.name", f"must be one of {', '.join(names)}; got {name!r}")
                kw[section] = {"name": name, **{k: v for k, v in table.items() if k != "name"}}
        cross = p.table(data, "cross_task")
        if "cross_task" in data and kw.get("mode", "per_task") != "cross_task":
            p.add("cross_task", '[cross_task] is only for search.mode = "cross_task"')
        p.unknown(cross, {"first_stage"}, "cross_task.")
        if "first_stage" in cross:
            fs = cross["first_stage"]
            if is_type(fs, (int, float)) and 0 < fs <= 1:
                kw["first_stage"] = float(fs)
            else:
                p.add("cross_task.first_stage", f"must be a number in (0, 1]; got {fs!r}")
        evaluation = p.table(data, "evaluation")
        p.unknown(
            evaluation, {"classification", "regression", "validation", "folds", "recheck"}, "evaluation."
        )
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
            if is_type(folds, int) and 2 <= folds <= 20:
                ev["folds"] = folds
            else:
                p.add("evaluation.folds", f"must be an integer from 2 to 20; got {folds!r}")
        if "recheck" in evaluation:
            recheck = evaluation["recheck"]
            if not (is_type(recheck, int) and (recheck == 0 or 2 <= recheck <= 50)):
                p.add(
                    "evaluation.recheck",
                    f"must be 0 (off) or the number of top trials to recheck, 2 to 50; got {recheck!r}",
                )
            elif recheck and kw.get("mode", "per_task") != "per_task":
                p.add(
                    "evaluation.recheck",
                    f"rechecks the top trials of per-task searches only, not mode {kw.get('mode')!r}: "
                    "remove it",
                )
            else:
                ev["recheck"] = recheck
        family, meta = _meta_tables(data, kw.get("mode") == "meta", p)
        competence = parse_competence(data, kw.get("mode") == "meta", p)
        tasks_raw = data.get("tasks")
        tasks: list[TaskSpec] = []
        if kw.get("mode") == "meta":
            if tasks_raw is not None:
                p.add(
                    "tasks", "a meta-mode search draws its tasks from [family]; remove the [[tasks]] tables"
                )
        elif tasks_raw is None:
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
            family=family,
            meta=meta,
            competence=competence,
            source=source,
            base_dir=base_dir or Path.cwd(),
            **kw,
        )


def _set(table: Mapping[str, Any]) -> dict[str, Any]:
    """A table without its unset (``None``) keys: TOML has no null, and :meth:`SearchSpec.from_dict`
    reads a missing key as its default."""
    return {k: v for k, v in table.items() if v is not None}


def _jsonable(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _meta_tables(
    data: Mapping[str, Any], meta_mode: bool, p: Problems
) -> tuple[dict[str, Any] | None, MetaSpec]:
    """The ``[family]`` table (name plus the family's own options) and the ``[meta]`` table."""
    if not meta_mode:
        for key in ("family", "meta"):
            if key in data:
                p.add(key, f'[{key}] is only for search.mode = "meta"')
        return None, MetaSpec()
    family = dict(p.table(data, "family", required=True))
    if family and not (isinstance(family.get("name"), str) and NAME_RE.match(family["name"])):
        p.add(
            "family.name", f'must name a task family, such as name = "sinusoid"; got {family.get("name")!r}'
        )
    table = p.table(data, "meta")
    p.unknown(table, set(META_KEYS), "meta.")
    kw: dict[str, Any] = {}
    for key, (types, check, hint) in META_KEYS.items():
        if key in table:
            value = table[key]
            if not is_type(value, types) or not check(value):
                p.add(f"meta.{key}", f"{hint}; got {value!r}")
            else:
                kw[key] = tuple(value) if isinstance(value, list) else value
    meta = MetaSpec(**kw)
    if meta.checkpoints > meta.iterations:
        p.add(
            "meta.checkpoints", f"must not exceed meta.iterations = {meta.iterations}; got {meta.checkpoints}"
        )
    return family or None, meta


def load_spec(path: str | Path) -> SearchSpec:
    """Read and check a TOML study spec; relative paths inside it resolve against its folder.

    Raises:
        SpecError: The file is missing, is not valid TOML, or has invalid keys or values.
    """
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, a pipe, a device
        raise SpecError("not a regular file; give the path of a TOML spec file", source=str(path))
    if not path.is_file():
        raise SpecError(f"spec file not found (looked for {path.resolve()})", source=str(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark is no statement
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"not valid TOML: {exc}", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save it as UTF-8",
            source=str(path),
        ) from None
    except OSError as exc:
        raise SpecError(f"cannot read the spec: {exc.strerror or exc}", source=str(path)) from None
    return SearchSpec.from_dict(data, source=str(path), base_dir=path.resolve().parent)
