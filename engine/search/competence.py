"""Task exploration at the meta level: the competence map of a meta-mode search's best θ.

After the meta study, a spec with a ``[competence]`` table gets a second Optuna study,
``<search>/competence`` (kind :data:`~engine.vocabulary.KIND_COMPETENCE`). Each trial picks values of
the family's own parameters (``[competence.parameters]``, within what the family declares explorable),
draws held-out meta-test tasks from the family with them, adapts the best meta trial's θ (reloaded from
its safetensors artifact) for the map's adaptation steps and records the query score, mean ± 95% CI.
The sampler spreads the points over the box (scrambled Sobol points, or uniform random ones); the study
is not an optimiser, so its direction only tells tools which way is better.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import optuna

from engine.errors import SpecError, StratagemError
from engine.meta import FamilyInfo, MetaModel, MetaStrategy, TaskFamily, evaluate_adaptation
from engine.plugin import PluginHost
from engine.results import BestMeta, meta_best
from engine.search.adapt import best_steps, load_theta
from engine.search.blame import Part, plugin_fault
from engine.search.progress import ProgressSink
from engine.search.trials import run_study, set_study_attrs
from engine.spec import CompetenceSpec, Plan
from engine.storage import Database
from engine.trained import resolve_artifacts
from engine.vocabulary import ATTR, KIND_COMPETENCE, competence_study_name

__all__ = ["CompetenceObjective", "check_competence_resumable", "explore_competence"]


def check_competence_resumable(plan: Plan, storage: optuna.storages.BaseStorage) -> None:
    """Refuse, before anything is written, a ``[competence]`` table that cannot run or resume.

    θ must be kept (an artifact directory), and a competence study already stored must have explored
    the same parameters and bounds (Optuna fixes a study's distributions).
    """
    spec, comp = plan.spec, plan.spec.competence
    if comp is None:
        return
    url = str(getattr(storage, "url", ""))
    if resolve_artifacts(url, spec.artifacts_dir) is None:
        raise SpecError(
            "a competence map reloads the best θ from the artifact store, and this storage has none: set "
            "search.artifacts (or $STRATAGEM_ARTIFACTS) to a directory",
            source=spec.source,
            key="competence",
        )
    name = competence_study_name(spec.name)
    old: dict[str, Any] = next(
        (s.user_attrs.get(ATTR, {}) for s in storage.get_all_studies() if s.study_name == name), {}
    )
    new = {k: list(v) for k, v in comp.parameters.items()}
    if "parameters" in old and old["parameters"] != new:
        raise SpecError(
            f"search {spec.name!r} mapped competence over {old['parameters']}; this run asks for {new}. "
            "Keep them, or rename the search to start a new one",
            source=spec.source,
            key="competence.parameters",
        )


def explore_competence(
    plan: Plan, host: PluginHost, db: Database, storage: optuna.storages.BaseStorage, progress: ProgressSink
) -> int:
    """Run the competence study until it has ``n_trials`` finished trials; return the trials run here.

    Does nothing (returns 0) when the spec has no ``[competence]`` table or the meta study has no
    finished trial yet (the run then reports that failure).

    Raises:
        StratagemError: The best θ was not kept or cannot be rebuilt.
    """
    spec, comp, family = plan.spec, plan.spec.competence, plan.family
    if comp is None or family is None:
        return 0
    found = meta_best(storage=db.url, search=spec.name)
    if not found:
        return 0
    best = found[0]
    classes = {cls.name: cls for cls in plan.meta_strategies}
    strategy, model, trained = load_theta(best, classes, db.url)
    steps = best_steps(best) if comp.steps is None else comp.steps
    kind = trained.kind
    name = competence_study_name(spec.name)
    with db.lock(f"stratagem.studies:{spec.name}"):
        study = optuna.create_study(
            storage=storage,
            load_if_exists=True,
            study_name=name,
            direction="maximize" if kind == "classification" else "minimize",
            sampler=_sampler(comp, spec.seed),
        )
        attrs = {
            "kind": KIND_COMPETENCE,
            "search": spec.name,
            "family": dict(best.family),
            "strategy": best.strategy,
            "theta_trial": best.trial,
            "metric": "accuracy" if kind == "classification" else "mse",
            "steps": steps,
            "tasks": comp.tasks,
            "parameters": {k: list(v) for k, v in comp.parameters.items()},
            "threshold": comp.threshold,
            "sampler": comp.sampler,
        }
        set_study_attrs(study, attrs)
    objective = CompetenceObjective(
        comp, family, strategy, model, trained, best, steps, spec.seed, host.plugin_of
    )
    trials_run = run_study(
        db,
        study,
        objective,
        n_trials=comp.n_trials,
        timeout=spec.timeout,
        trial_timeout=spec.trial_timeout,
        progress=progress,
    )
    return trials_run


def _sampler(comp: CompetenceSpec, seed: int) -> optuna.samplers.BaseSampler:
    if comp.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # QMCSampler is marked experimental since Optuna 3.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(
            qmc_type="sobol",
            scramble=True,
            seed=seed,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
            warn_asynchronous_seeding=False,
        )


@dataclasses.dataclass
class CompetenceObjective:
    """One point of the map: family parameters sampled, θ adapted on meta-test tasks drawn with them."""

    comp: CompetenceSpec
    family: TaskFamily
    strategy: MetaStrategy
    model: MetaModel
    trained: FamilyInfo
    best: BestMeta
    steps: int
    seed: int
    plugin_of: Callable[[str, str], str] | None = None
    """The plugin that registered the family or the meta-strategy (failure reasons name it)."""

    def __call__(self, trial: optuna.Trial) -> float:
        parts: list[Part] = [
            ("meta-strategy", self.strategy.name, type(self.strategy)),
            ("task family", self.family.name, type(self.family)),
        ]
        try:
            return self._run(trial)
        except (optuna.TrialPruned, StratagemError):
            raise
        except Exception as exc:  # name the plugin whose code raised, as a per-task trial's reason does
            raise plugin_fault(exc, parts, self.plugin_of, ("task family", self.family.name)) from exc

    def _run(self, trial: optuna.Trial) -> float:
        bounds = self.family.explorable()
        values: dict[str, float | int] = {}
        for key, (low, high) in self.comp.parameters.items():
            b = bounds[key]
            if b.integer:
                values[key] = trial.suggest_int(key, int(low), int(high), log=b.log)
            else:
                values[key] = trial.suggest_float(key, float(low), float(high), log=b.log)
        variant = self.family.explore(values)
        reason = self.strategy.cannot_adapt(self.trained, variant.info())
        if reason is not None:
            raise StratagemError(f"at {values}: {reason}")
        curve = evaluate_adaptation(
            self.strategy,
            self.model,
            variant,
            steps=sorted({0, self.steps}),
            n_tasks=self.comp.tasks,
            pool="meta_test",
            query_size=self.comp.query_size,
            seed=self.seed,
        )
        point = curve.at(self.steps)
        trial.set_user_attr(
            ATTR,
            {
                "mean": point.mean,
                "ci95": point.ci95,
                "n_tasks": point.n_tasks,
                "steps": self.steps,
                "zero_steps": curve.at(0).mean,
                "metric": curve.metric,
                "theta_trial": self.best.trial,
            },
        )
        return point.mean
