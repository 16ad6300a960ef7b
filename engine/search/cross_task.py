"""Cross-task search: one configuration judged over many tasks, the "best default" of a task family.

This is the seed's meta-objective ``L(θ) = Σ_i 𝓛(f(θ; x_i, y_i), y_i)``, divided by ``N`` so that it
reads as a mean. For a spec named ``S`` with ``mode = "cross_task"`` the storage holds:

* Optuna study ``S/cross_task`` (:func:`engine.vocabulary.cross_task_study_name`), direction
  minimize. Each trial picks one configuration with the same conditional space and parameter names as
  a strategy study (``strategy``, ``<strategy>.<param>``, ``updater``, ``<updater>.<param>``; see
  :mod:`engine.study.objective`), over the strategies and updaters that fit *every* task; tasks of
  both kinds may be mixed when the strategies support both. The trial's value is the mean normalised
  loss over all tasks.
* Table ``stratagem_defaults``: one row per cross-task search with the best complete trial so far.

**Normalisation.** A task's evaluator value ``v`` becomes a loss ``1 - (v - trivial) / (perfect -
trivial)``, where ``trivial`` is the evaluator's value of a trivial predictor on the rows being judged
(the class priors of the training rows, or the training mean for regression) and ``perfect`` its value
of exact predictions (one-hot probabilities, the true values). The loss is 0 for perfect predictions
and 1 for trivial ones, whether the evaluator is a score or an error, so no task dominates the mean by
its units or difficulty. It is clipped to ``[0, 2]`` (:data:`LOSS_RANGE`): a diverged model costs at
most twice a trivial one; a non-finite value costs 2. See :class:`engine.search.task_scale.TaskScale`.

**Racing.** Tasks are evaluated in one seeded order, fixed for the study (stored in its user attribute
``stratagem`` and reused on resume). Every configuration is evaluated on the first
``ceil(first_stage * N)`` tasks; from the end of that first stage on, the running mean loss is
reported after each task at step = number of tasks evaluated, and the spec's pruner (by default a
percentile pruner that lets only the best third of configurations go on, see
:attr:`engine.spec.SearchSpec.pruner_config`) may stop the trial, so unpromising configurations never
see the remaining tasks. Nothing is reported
inside the first stage on purpose: Optuna's median and percentile pruners compare a trial's *best*
reported value with the others' values at the current step, so a lucky mean over one easy task would
shield a configuration for the rest of the race. Only complete trials (all
``N`` tasks) are candidates for the best default; each trial records its ``task_evaluations``.
Pruning inside a task's training (per epoch) is off here: a task is evaluated whole or not at all.

**Representative task.** A strategy's or updater's ``suggest`` receives a :class:`~engine.task.TaskInfo`.
One configuration must fit all tasks, so it is sampled with :func:`representative_info` (the majority
kind, the median training rows and features, the most classes) and then replayed on each task with
:class:`optuna.trial.FixedTrial` through the task's own :class:`~engine.study.objective.StrategyObjective`,
which builds and trains with that task's real shape. A value outside a task's own range is used as is
(Optuna warns); a parameter the task's space asks for but the sample lacks fails the trial.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import optuna
from optuna.trial import FixedTrial, FrozenTrial, TrialState

from engine.errors import SpecError
from engine.plugin import PluginHost
from engine.search.progress import ProgressSink
from engine.search.recorder import DefaultRecorder, Outcome
from engine.search.register import SearchTask
from engine.search.task_scale import TaskScale, racing_order, representative_info, task_scale
from engine.search.trials import run_trials, set_study_attrs, wait_a_moment
from engine.spec import Plan
from engine.storage import Database
from engine.strategy import Strategy
from engine.study import (
    NotFinitePredictions,
    PrefixedTrial,
    StrategyObjective,
    TrialFailed,
    quiet_optuna,
    resolve_device,
)
from engine.task import TaskInfo
from engine.updater import Updater
from engine.vocabulary import ATTR, DONE_STATES, KIND_CROSS_TASK, cross_task_study_name

__all__ = ["explore_cross_task"]

PROGRESS_KEY = "cross_task"


@dataclass(frozen=True)
class _Member:
    """A task in the race: its objective (replays a configuration) and its two scales."""

    task: SearchTask
    objective: StrategyObjective
    validation: TaskScale
    test: TaskScale


class _CrossTaskObjective:
    """One trial: sample a configuration, then evaluate it task after task until done or pruned."""

    def __init__(
        self,
        members: Sequence[_Member],
        strategies: dict[str, type[Strategy]],
        updaters: dict[str, type[Updater]],
        info: TaskInfo,
        first_stage: int,
        plugin_of: Callable[[str, str], str],
    ) -> None:
        self.members = list(members)
        self.strategies = strategies
        self.updaters = updaters
        self.info = info
        self.first_stage = first_stage
        self.plugin_of = plugin_of

    def _suggest(self, kind: str, names: Sequence[str], trial: optuna.Trial, classes: dict[str, Any]) -> None:
        name = trial.suggest_categorical(kind, list(names))
        try:
            classes[name].suggest(PrefixedTrial(trial, name), self.info)
        except (optuna.TrialPruned, TrialFailed):
            raise
        except Exception as exc:
            raise TrialFailed(
                f"{kind} {name!r} (plugin {self.plugin_of(kind, name)!r}) raised {type(exc).__name__} "
                f"while sampling for the representative task {self.info}: {exc}"
            ) from exc

    def __call__(self, trial: optuna.Trial) -> float:
        self._suggest("strategy", list(self.strategies), trial, self.strategies)
        self._suggest("updater", list(self.updaters), trial, self.updaters)
        params = dict(trial.params)
        record: dict[str, Any] = {
            "kind": KIND_CROSS_TASK,
            "first_stage": self.first_stage,
            "tasks": {},
            "task_evaluations": 0,
        }
        losses: list[float] = []
        try:
            for step, member in enumerate(self.members, start=1):
                key = member.task.key
                record["task_evaluations"] = step
                replay = FixedTrial(params, number=trial.number)
                started = time.perf_counter()
                try:
                    value = member.objective(cast(optuna.Trial, replay))
                except NotFinitePredictions:  # diverged on this task: scored as the worst, not failed
                    value = math.nan
                except TrialFailed:
                    record["failed_task"] = key
                    raise
                attrs = replay.user_attrs.get(ATTR, {})
                test_value = attrs.get("test_value")
                loss = member.validation.loss(value)
                record["tasks"][key] = {
                    "value": value,
                    "loss": loss,
                    "test_value": test_value,
                    "test_loss": member.test.loss(test_value) if test_value is not None else None,
                    "evaluator": member.objective.evaluator.name,
                    "seed": attrs.get("seed"),
                    "seconds": round(time.perf_counter() - started, 6),
                }
                losses.append(loss)
                mean = float(np.mean(losses))
                record["loss"] = mean
                if step < self.first_stage:
                    continue
                trial.report(mean, step)
                if step < len(self.members) and trial.should_prune():
                    record["pruned_after"] = step
                    raise optuna.TrialPruned(
                        f"pruned after {step} of {len(self.members)} tasks, mean loss {mean:.4g}"
                    )
        finally:
            trial.set_user_attr(ATTR, record)
        return float(np.mean(losses))


def explore_cross_task(
    plan: Plan,
    host: PluginHost,
    db: Database,
    storage: optuna.storages.BaseStorage,
    tasks: Sequence[SearchTask],
    search_id: int,
    progress: ProgressSink,
) -> int:
    """Search one configuration for all ``tasks``; keep ``stratagem_defaults`` current.

    Runs trials until the study ``<search>/cross_task`` has ``spec.n_trials`` finished (complete or
    pruned) ones; a second run of the same spec resumes. ``spec.timeout``, if set, bounds this call.

    Args:
        plan: The resolved spec (mode ``cross_task``).
        host: Loaded plugins (for error messages naming the plugin).
        db: The engine's tables.
        storage: Optuna's storage on the same database.
        tasks: The search's tasks as stored (split, fingerprint, ids).
        search_id: Row id of the search (the ``stratagem_defaults`` row is keyed by it).
        progress: Receives ``task_started("cross_task", n)``, ``trial_finished`` and ``task_finished``.

    Returns:
        The number of trials this call ran (complete, pruned or failed).

    Raises:
        SpecError: No strategy or updater fits every task.
    """
    spec = plan.spec
    if not tasks:
        raise SpecError("a cross-task search needs at least one task", source=spec.source, key="tasks")
    strategies = _common([t.resolved.strategies for t in tasks])
    updaters = _common([t.resolved.updaters for t in tasks])
    if not strategies:
        fits = {t.key: [s.name for s in t.resolved.strategies] for t in tasks}
        raise SpecError(
            f"cross_task mode needs a strategy that fits every task, but none does ({fits}); select "
            "strategies that support all task kinds, or split the tasks by kind into separate searches",
            source=spec.source,
            key="search.strategies",
        )
    if not updaters:
        raise SpecError(
            "cross_task mode needs an updater usable on every task", source=spec.source, key="search.updaters"
        )

    def plugin_of(kind: str, name: str) -> str:
        return (host.strategies if kind == "strategy" else host.updaters).plugin_of(name)

    keys = [t.key for t in tasks]
    with db.lock(f"stratagem.studies:{spec.name}"):  # workers starting together create it once
        study = optuna.create_study(
            storage=storage,
            load_if_exists=True,
            study_name=cross_task_study_name(spec.name),
            direction="minimize",
            sampler=plan.sampler(spec.seed),
            pruner=plan.pruner(),
        )
        stored = study.user_attrs.get(ATTR, {}).get("order")
        order = list(stored) if stored and sorted(stored) == sorted(keys) else racing_order(keys, spec.seed)
        kinds = {t.resolved.dataset.kind for t in tasks}
        attrs = {
            "kind": KIND_CROSS_TASK,
            "search": spec.name,
            "tasks": keys,
            "fingerprints": {t.key: t.fingerprint for t in tasks},
            "evaluators": {t.key: t.resolved.evaluator.name for t in tasks},
            "order": order,
            "first_stage": spec.first_stage,
        }
        set_study_attrs(study, attrs)

    by_key = {t.key: t for t in tasks}
    device = resolve_device(spec.device)
    members = [
        _member(by_key[k], spec.seed, spec.evaluation.validation, spec.evaluation.folds, device, plugin_of)
        for k in order
    ]
    first_stage = min(len(members), max(1, math.ceil(spec.first_stage * len(members) - 1e-9)))
    info = representative_info(
        [m.task.resolved.dataset for m in members], [len(m.task.split.train) for m in members]
    )
    objective = _CrossTaskObjective(members, strategies, updaters, info, first_stage, plugin_of)
    recorder = DefaultRecorder(db, search_id, study.study_name, kinds.pop() if len(kinds) == 1 else "mixed")

    recorder.repair(study)  # the row is derived from the study: a killed worker's gap is mended here
    todo = max(0, spec.n_trials - len(study.get_trials(deepcopy=False, states=DONE_STATES)))
    deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
    ran = failures = 0
    progress.task_started(PROGRESS_KEY, todo)
    try:
        with quiet_optuna():
            while failures < spec.n_trials:  # every trial failing: stop and say why
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                run = run_trials(
                    db,
                    study,
                    objective,
                    n_trials=spec.n_trials,
                    limit=spec.n_trials,
                    timeout=left,
                    trial_timeout=spec.trial_timeout,
                    on_told=lambda trial: _record(recorder, study, trial, progress),
                )
                ran, failures = ran + run.attempts, failures + len(run.failures)
                if run.status in ("done", "timeout"):
                    break
                if run.status == "wait":
                    wait_a_moment()  # the missing trials run in other workers
    finally:
        progress.task_finished(PROGRESS_KEY)
        recorder.finish(study)
    return ran


def _common(per_task: Sequence[Sequence[type[Any]]]) -> dict[str, type[Any]]:
    """The plugins (by name, in the first task's order) that every task can use."""
    shared = set.intersection(*({c.name for c in classes} for classes in per_task))
    return {c.name: c for c in per_task[0] if c.name in shared}


def _member(
    task: SearchTask,
    seed: int,
    validation: str,
    folds: int,
    device: str,
    plugin_of: Callable[[str, str], str],
) -> _Member:
    resolved, split = task.resolved, task.split
    objective = StrategyObjective(
        task_key=task.key,
        dataset=resolved.dataset,
        split=split,
        strategies=resolved.strategies,
        updaters=resolved.updaters,
        evaluator=resolved.evaluator,
        seed=seed,
        validation=validation,
        folds=folds,
        device=device,
        plugin_of=plugin_of,
    )
    # k-fold trains on folds of train + validation and scores the test split with the fold ensemble.
    fit_rows = split.train if validation == "holdout" else np.concatenate([split.train, split.validation])
    judged = split.validation if validation == "holdout" else fit_rows
    return _Member(
        task=task,
        objective=objective,
        validation=task_scale(resolved.dataset, resolved.evaluator, fit_rows, judged),
        test=task_scale(resolved.dataset, resolved.evaluator, fit_rows, split.test),
    )


def _record(
    recorder: DefaultRecorder, study: optuna.Study, trial: FrozenTrial, progress: ProgressSink
) -> None:
    """Offer a told trial to ``recorder`` (if complete) and report it."""
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        outcome = Outcome(trial.number, trial.value, dict(trial.params), trial.user_attrs.get(ATTR, {}))
        recorder.offer(outcome, study)
    progress.trial_finished(PROGRESS_KEY)
