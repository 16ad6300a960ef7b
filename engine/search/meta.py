"""Meta mode: strategy exploration over a task family, in one Optuna study ``<search>/meta``.

Each trial picks a meta-strategy (``strategy``) with its meta-hyperparameters (``<strategy>.inner_lr``,
``.inner_steps``, ``.width``), an updater with its parameters (``<updater>.lr`` is the meta learning
rate; the budget keys are fixed by ``[meta]``) and a ``meta_batch``; builds
:func:`engine.meta.meta_problem`, trains θ with the updater (each report is a meta-validation value the
pruner sees), and evaluates θ on meta-test tasks with :func:`engine.meta.evaluate_adaptation`. The
trial's value is the meta-validation value; the meta-test curve (mean ± 95% CI per step count) is in its
``stratagem`` user attribute, never used to choose. A new meta study is warm-started from other
searches' meta studies on the nearest families (:mod:`engine.search.meta_warm`). θ of a trial that is
the best so far is kept as a safetensors file in Optuna's artifact store (the same store as per-task
models), its id in :data:`~engine.vocabulary.META_ARTIFACT_ATTR`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.artifacts import upload_artifact

from engine.errors import ModelStoreError, SpecError, StratagemError
from engine.meta import (
    FamilyInfo,
    MetaModel,
    MetaStrategy,
    TaskFamily,
    evaluate_adaptation,
    meta_problem,
    save_meta_learner,
)
from engine.plugin import PluginHost
from engine.search.blame import Part, plugin_fault
from engine.search.competence import check_competence_resumable, explore_competence
from engine.search.meta_warm import warm_start_meta
from engine.search.progress import ProgressSink
from engine.search.trials import run_study, set_study_attrs
from engine.spec import Plan
from engine.storage import Database
from engine.study import PrefixedTrial, trial_seed
from engine.trained import open_store, resolve_artifacts
from engine.updater import Updater
from engine.vocabulary import ATTR, KIND_META, META_ARTIFACT_ATTR, meta_study_name

__all__ = [
    "MetaObjective",
    "check_meta_resumable",
    "explore_meta",
    "suggest_meta_strategy",
    "training_family",
]

WIDTHS = (20, 40, 64)
"""Hidden widths the sampler chooses from (every hidden layer gets the same width)."""


def check_meta_resumable(plan: Plan, storage: optuna.storages.BaseStorage) -> None:
    """Refuse, before writing anything, to resume a meta study with another family or other choices
    (or a competence map that cannot run or resume: :func:`check_competence_resumable`)."""
    name = meta_study_name(plan.spec.name)
    old: dict[str, Any] = next(
        (s.user_attrs.get(ATTR, {}) for s in storage.get_all_studies() if s.study_name == name), {}
    )
    family = plan.family
    assert family is not None, "a meta-mode plan has a family"
    for key, value in _choices(plan).items():
        if key == "family":  # where its files lie may change: their data is compared, as "data"
            value, before = (_without(v, family.path_options) for v in (value, old.get(key)))
        else:
            before = old.get(key)
        if key in old and before != value:
            if key == "data":
                options = plan.spec.family or {}
                raise SpecError(
                    f"the data of family {options.get('name')!r} changed since search {plan.spec.name!r} "
                    f"meta-trained on it (digest {old[key]}, now {value}); restore it, or rename the "
                    "search to start a new one on the new data",
                    source=plan.spec.source,
                    key="family.path" if "path" in options else "family",
                )
            raise SpecError(
                f"search {plan.spec.name!r} explored {key} {before}; this run asks for {value}. Keep them, "
                "or rename the search to start a new one",
                source=plan.spec.source,
                key="family" if key == "family" else f"meta.{key}",
            )
    check_competence_resumable(plan, storage)


def _without(options: Any, keys: Sequence[str]) -> Any:
    """``options`` (a mapping) without ``keys``; anything else as it is."""
    return {k: v for k, v in options.items() if k not in keys} if isinstance(options, Mapping) else options


def _choices(plan: Plan) -> dict[str, Any]:
    """What a meta study keeps from the spec and its family, and a resumed run must not change: the
    family's options and data, the meta-strategies, updaters, their options and the meta-batch sizes."""
    family = plan.family
    assert family is not None, "a meta-mode plan has a family"
    return {
        "family": {"name": family.name, **_jsonable(family.get_params())},
        "data": family.data_fingerprint(),
        "strategies": [s.name for s in plan.meta_strategies],
        "updaters": [u.name for u in plan.meta_updaters],
        "options": _jsonable(dict(plan.spec.meta.options or {})),
        "meta_batch": list(plan.spec.meta.meta_batch),
    }


def explore_meta(
    plan: Plan, host: PluginHost, db: Database, storage: optuna.storages.BaseStorage, progress: ProgressSink
) -> int:
    """Run the meta study until it has ``n_trials`` finished trials (over every worker), then the
    competence map of its best θ if the spec asks for one; return the trials run."""
    spec, family = plan.spec, plan.family
    assert family is not None, "a meta-mode plan has a family"
    kind = family.info().kind
    location = resolve_artifacts(db.url, spec.artifacts_dir)
    name = meta_study_name(spec.name)
    with db.lock(f"stratagem.studies:{spec.name}"):
        study = optuna.create_study(
            storage=storage,
            load_if_exists=True,
            study_name=name,
            direction="maximize" if kind == "classification" else "minimize",
            sampler=plan.sampler(spec.seed),
            pruner=plan.pruner(),
        )
        choices = _choices(plan)
        attrs = {
            "kind": KIND_META,
            "search": spec.name,
            "metric": "accuracy" if kind == "classification" else "mse",
            "artifacts": location,
            **choices,
        }
        set_study_attrs(study, attrs)
        if spec.warm_start and not study.get_trials(deepcopy=False):
            warm_start_meta(db, storage, study, plan, choices["family"])
    objective = MetaObjective(plan, study, location, host.plugin_of)
    trials_run = run_study(
        db,
        study,
        objective,
        n_trials=spec.n_trials,
        timeout=spec.timeout,
        trial_timeout=spec.trial_timeout,
        progress=progress,
    )
    return trials_run + explore_competence(plan, host, db, storage, progress)


def training_family(plan: Plan) -> TaskFamily:
    """The family of meta-training episodes: ``[family]`` with ``[meta] train_family``'s options over
    it (say 20-way episodes for a 5-way family); validation and test tasks keep ``[family]``."""
    family = plan.family
    assert family is not None, "a meta-mode plan has a family"
    extra = plan.spec.meta.train_family
    return family.with_options(extra) if extra else family


def suggest_meta_strategy(
    trial: Any, cls: type[MetaStrategy], fixed: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A meta-strategy's keyword arguments: its defaults with ``fixed`` (``[meta] options``) over them,
    and ``inner_lr``, ``inner_steps`` and the hidden width sampled when it has them and ``fixed`` does
    not set them (``trial`` is already prefixed with the strategy's name)."""
    fixed = dict(fixed or {})
    params = {**cls().get_params(), **fixed}
    if "inner_lr" in params and "inner_lr" not in fixed:
        params["inner_lr"] = trial.suggest_float("inner_lr", 1e-3, 1.0, log=True)
    if "inner_steps" in params and "inner_steps" not in fixed:
        params["inner_steps"] = trial.suggest_int("inner_steps", 1, 5)
    if params.get("hidden") and "hidden" not in fixed:
        width = trial.suggest_categorical("width", list(WIDTHS))
        params["hidden"] = (width,) * len(params["hidden"])
    return params


class _BudgetTrial:
    """A prefixed trial whose budget parameters (``epochs``, ``iterations``, ``batch_size``) are fixed."""

    def __init__(self, trial: PrefixedTrial, fixed: dict[str, Any]) -> None:
        self._trial, self._fixed = trial, fixed

    def suggest_float(self, name: str, low: float, high: float, **kw: Any) -> Any:
        return self._fixed[name] if name in self._fixed else self._trial.suggest_float(name, low, high, **kw)

    def suggest_int(self, name: str, low: int, high: int, **kw: Any) -> Any:
        return self._fixed[name] if name in self._fixed else self._trial.suggest_int(name, low, high, **kw)

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._fixed[name] if name in self._fixed else self._trial.suggest_categorical(name, choices)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


@dataclasses.dataclass
class MetaObjective:
    """The objective of the meta study: meta-train one sampled meta-strategy, score it, keep θ if best."""

    plan: Plan
    study: optuna.Study
    location: str | None
    plugin_of: Callable[[str, str], str] | None = None
    """The plugin that registered a part of a trial, by kind and name (failure reasons name it)."""

    def __call__(self, trial: optuna.Trial) -> float:
        family = self.plan.family
        assert family is not None
        strategies = {s.name: s for s in self.plan.meta_strategies}
        updaters = {u.name: u for u in self.plan.meta_updaters}
        name = trial.suggest_categorical("strategy", list(strategies))
        parts: list[Part] = [
            ("meta-strategy", name, strategies[name]),
            ("task family", family.name, type(family)),
        ]
        try:
            value, record, theta = self._run(trial, strategies[name], updaters, parts)
        except (optuna.TrialPruned, StratagemError):
            raise
        except Exception as exc:  # name the plugin whose code raised, as a per-task trial's reason does
            raise plugin_fault(exc, parts, self.plugin_of, ("meta-strategy", name)) from exc
        trial.set_user_attr(ATTR, record)
        if self.location is not None and self._improves(value):
            self._keep(trial, self.location, *theta)
        return value

    def _keep(
        self,
        trial: optuna.Trial,
        location: str,
        strategy: MetaStrategy,
        model: MetaModel,
        built_for: FamilyInfo,
    ) -> None:
        """Keep θ of a trial that is the best so far, as a safetensors file in the model store.

        Raises:
            ModelStoreError: The store cannot take it (a full disk, a read-only folder): every later θ
                would fail the same way, so the search stops, as a per-task search does.
        """
        try:
            with tempfile.TemporaryDirectory(prefix="stratagem-meta-") as tmp:
                path = Path(tmp) / "meta_learner.safetensors"
                save_meta_learner(path, strategy, model, built_for)
                artifact_id = upload_artifact(
                    artifact_store=open_store(location), file_path=str(path), study_or_trial=trial
                )
        except OSError as exc:
            at = f" ({exc.filename})" if exc.filename else ""
            raise ModelStoreError(
                f"cannot keep trial {trial.number}'s θ in the model store {location}: "
                f"{exc.strerror or exc}{at}; free space there (or make it writable) and run the same "
                "command again: the trials finished before are kept"
            ) from exc
        trial.set_user_attr(META_ARTIFACT_ATTR, artifact_id)

    def _run(
        self,
        trial: optuna.Trial,
        cls: type[MetaStrategy],
        updaters: dict[str, type[Updater]],
        parts: list[Part],
    ) -> tuple[float, dict[str, Any], tuple[MetaStrategy, MetaModel, FamilyInfo]]:
        """Meta-train and score one meta-strategy; return its value, its record and θ with its shape."""
        spec, meta = self.plan.spec, self.plan.spec.meta
        family = self.plan.family
        assert family is not None
        name = cls.name
        fixed = (meta.options or {}).get(name)
        strategy = cls(**suggest_meta_strategy(PrefixedTrial(trial, name), cls, fixed))
        seed = trial_seed(spec.seed, "meta", trial.number)
        torch.manual_seed(seed)
        trainer = training_family(self.plan) if strategy.meta_trained else family
        built_for = trainer.info()  # θ's shape: a head as wide as the training episodes' classes
        model = strategy.build(built_for, torch.Generator().manual_seed(seed))
        record: dict[str, Any] = {"strategy": name, "strategy_params": _jsonable(strategy.get_params())}
        val_steps = int(getattr(strategy, "inner_steps", 0))
        if strategy.meta_trained:
            value = self._train(trial, strategy, trainer, model, updaters, record, parts)
        else:
            curve = evaluate_adaptation(
                strategy,
                model,
                family,
                steps=[val_steps],
                n_tasks=meta.val_tasks,
                pool="meta_val",
                seed=spec.seed,
            )
            value = curve.points[0].mean
        curve = evaluate_adaptation(
            strategy, model, family, steps=meta.steps, n_tasks=meta.test_tasks, seed=spec.seed
        )
        record["metric"] = curve.metric
        record["validation"] = {"steps": val_steps, "value": value}
        record["test"] = [dataclasses.asdict(p) for p in curve.points]
        return value, record, (strategy, model, built_for)

    def _train(
        self,
        trial: optuna.Trial,
        strategy: MetaStrategy,
        family: TaskFamily,
        model: torch.nn.Module,
        updaters: dict[str, type[Updater]],
        record: dict[str, Any],
        parts: list[Part],
    ) -> float:
        meta = self.plan.spec.meta
        u_name = trial.suggest_categorical("updater", list(updaters))
        parts.append(("updater", u_name, updaters[u_name]))
        meta_batch = trial.suggest_categorical("meta_batch", list(meta.meta_batch))
        problem = meta_problem(
            strategy,
            family,
            meta_batch=meta_batch,
            draws_per_epoch=max(1, meta.iterations // meta.checkpoints),
            val_tasks=meta.val_tasks,
            seed=self.plan.spec.seed,
            val_family=self.plan.family,
        )
        fixed = {"epochs": meta.checkpoints, "iterations": meta.iterations, "batch_size": None}
        params = updaters[u_name].suggest(_BudgetTrial(PrefixedTrial(trial, u_name), fixed), problem.info)  # type: ignore[arg-type]
        record.update(updater=u_name, updater_params=_jsonable(params), meta_batch=meta_batch)

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at checkpoint {step} (meta-validation {value:.4g})")

        updaters[u_name](**params).fit(model, problem, report)
        return problem.validate(model)

    def _improves(self, value: float) -> bool:
        """Whether ``value`` is at least as good as every finished trial's (so the best trial has θ kept)."""
        done = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        values = [t.value for t in done if t.value is not None]
        if not values:
            return True
        maximize = self.study.direction == optuna.study.StudyDirection.MAXIMIZE
        return value >= max(values) if maximize else value <= min(values)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
