"""Per-task search: task exploration (visits) over strategy exploration (one study per task).

For a spec named ``S`` with tasks ``a`` and ``b``: Optuna study ``S`` explores tasks, each trial a
*visit* to one task (parameter ``task``) whose value is the competence reached there (the best strategy
value, negated for error-based evaluators so that higher is always better); studies ``S/a`` and ``S/b``
explore strategies (see :mod:`engine.study.objective`). Tasks are visited round-robin until each has
``n_trials`` finished trials, counted over every worker (:mod:`engine.search.trials`); a visit is stored
in ``S`` once it is over (a finished trial, never a running one that a killed worker would leave).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from engine.plugin import PluginHost
from engine.search.progress import ProgressSink
from engine.search.recheck import Replay, final_choice, recheck_timeout, repair, replay_here
from engine.search.recorder import Outcome, StrategyRecorder, tie_loss
from engine.search.register import SearchTask, validation_attrs
from engine.search.trials import TrialsRun, run_trials, set_study_attrs, wait_a_moment
from engine.spec import Plan
from engine.storage import Database
from engine.study import StrategyObjective, resolve_device, search_space
from engine.task import TaskInfo
from engine.trained import KeptModel, ModelKeeper, resolve_artifacts
from engine.transfer import warm_start_study
from engine.transfer.handover import own_trials_pruner
from engine.transfer.warmstart import store_record
from engine.vocabulary import (
    ATTR,
    DONE_STATES,
    FAILURE_ATTR,
    KIND_STRATEGIES,
    KIND_TASKS,
    strategy_study_name,
)
from engine.warmstarter import WarmStarter, WarmStartRecord, WarmTarget

if TYPE_CHECKING:
    from engine.strategy import Strategy
    from engine.updater import Updater

__all__ = ["Visit", "explore_per_task", "open_studies"]

log = logging.getLogger("stratagem")


def explore_per_task(
    plan: Plan,
    host: PluginHost,
    db: Database,
    storage: optuna.storages.BaseStorage,
    tasks: list[SearchTask],
    progress: ProgressSink,
) -> int:
    """Visit tasks round-robin until each has ``n_trials`` finished strategy trials; return trials run."""
    spec = plan.spec
    task_study, studies = open_studies(plan, db, storage, tasks)
    keys = [t.key for t in tasks]
    failures = {t.key: 0 for t in tasks}
    open_tasks = list(tasks)
    trials_run = 0
    while open_tasks:
        waiting = moved = False
        for task in list(open_tasks):
            visit = Visit(plan, host, db, storage, task_study, studies[task.key], task, progress)
            run = visit.run(keys, spec.trials_per_visit or spec.n_trials)
            trials_run += run.attempts
            failures[task.key] += len(run.failures)
            moved = moved or run.attempts > 0
            waiting = waiting or run.status == "wait"
            gave_up = failures[task.key] >= spec.n_trials  # every trial failing: stop, say why
            timed_out = run.status == "timeout" and not spec.trials_per_visit
            if run.status == "done" or gave_up or timed_out:
                open_tasks.remove(task)
        if waiting and not moved:
            wait_a_moment()  # the missing trials run in other workers; one may die and leave them to us
    return trials_run


def open_studies(
    plan: Plan, db: Database, storage: optuna.storages.BaseStorage, tasks: list[SearchTask]
) -> tuple[optuna.Study, dict[str, optuna.Study]]:
    """Create (or load) the task-exploration study and one strategy study per task, once over workers."""
    spec = plan.spec
    with db.lock(f"stratagem.studies:{spec.name}"):  # workers starting together create them once
        task_study = optuna.create_study(
            storage=storage,
            load_if_exists=True,
            study_name=spec.name,
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=spec.seed),
        )
        set_study_attrs(
            task_study, {"kind": KIND_TASKS, "search": spec.name, "tasks": [t.key for t in tasks]}
        )
        studies = {t.key: _strategy_study(plan, storage, t) for t in tasks}
    return task_study, studies


class Visit:
    """One task-exploration trial: ``n`` strategy trials on one task, then its competence.

    :mod:`engine.search.parallel` uses its parts (objective, keeper, warm start, record) for a visit
    whose trials run on Dask workers.
    """

    def __init__(
        self,
        plan: Plan,
        host: PluginHost,
        db: Database,
        storage: optuna.storages.BaseStorage,
        task_study: optuna.Study,
        study: optuna.Study,
        task: SearchTask,
        progress: ProgressSink,
    ) -> None:
        self.plan, self.host, self.db, self.storage = plan, host, db, storage
        self.task_study, self.study, self.task, self.progress = task_study, study, task, progress

    def objective(self, plugin_of: Callable[[str, str], str] | None = None) -> StrategyObjective:
        """The task's strategy objective; ``plugin_of`` names plugins in errors (default: the host)."""
        spec, task = self.plan.spec, self.task
        resolved = task.resolved
        return StrategyObjective(
            task_key=task.key,
            dataset=resolved.dataset,
            split=task.split,
            strategies=resolved.strategies,
            updaters=resolved.updaters,
            evaluator=resolved.evaluator,
            seed=spec.seed,
            validation=spec.evaluation.validation,
            folds=spec.evaluation.folds,
            device=resolve_device(spec.device),
            plugin_of=plugin_of
            or (
                lambda kind, name: (
                    self.host.strategies if kind == "strategy" else self.host.updaters
                ).plugin_of(name)
            ),
        )

    def run(self, keys: list[str], n: int) -> TrialsRun:
        spec, task, study = self.plan.spec, self.task, self.study
        objective = self.objective()
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        recorder = StrategyRecorder(self.db, task.search_task_id, maximize)
        keeper = self.keeper()
        observed = _ObservedObjective(
            objective, recorder, study, lambda: self.progress.trial_finished(task.key), keeper
        )
        self.mend(recorder, keeper)
        self.resume_warm_start(n)  # a study warm-started elsewhere: a guiding starter guides here too
        self.progress.task_started(task.key, spec.n_trials)
        for _ in range(count_done(study)):  # a resumed study's bar starts where it stands
            self.progress.trial_finished(task.key)
        run: TrialsRun | None = None
        try:
            run = run_trials(
                self.db,
                study,
                observed,
                n_trials=spec.n_trials,
                limit=n,
                timeout=spec.timeout,
                trial_timeout=spec.trial_timeout,
                prepare=lambda: self.warm_start(n),
                on_told=lambda _trial: observed.flush(),
            )
        finally:
            observed.flush()
            recorder.finish(study)  # the counts on the best row, also after Ctrl-C or a visit with no work
            if run is not None and run.status == "done":  # else the bar stays where the task stands
                self.progress.task_finished(task.key)
        if keeper is not None:
            keeper.sweep(study)  # a trial failed as stale in this visit may have left a model file
        if run.status == "done":
            limit = recheck_timeout(spec.trial_timeout, spec.evaluation.folds)
            self.final_choice(recorder, objective, replay_here(limit))
        self.record(keys, run, recorder)
        return run

    def final_choice(self, recorder: StrategyRecorder, objective: StrategyObjective, replay: Replay) -> None:
        """With ``[evaluation] recheck``, re-judge the study's top trials by k-fold once it has its
        trials, and make the best mean the task's best (:mod:`engine.search.recheck`)."""
        ev = self.plan.spec.evaluation
        if ev.recheck < 2:
            return
        final_choice(
            db=self.db,
            study=self.study,
            recorder=recorder,
            objective=objective,
            n_trials=self.plan.spec.n_trials,
            top=ev.recheck,
            folds=ev.folds,
            replay=replay,
            keeper=self.keeper(),
            progress=self.progress,
            task_key=self.task.key,
        )

    def record(self, keys: list[str], run: TrialsRun, recorder: StrategyRecorder) -> None:
        """Store the visit (if it ran any trial) in the task-exploration study, with its competence."""
        task, study = self.task, self.study
        resolved = task.resolved
        if run.attempts == 0:
            return
        best = recorder.best_value
        record = {
            "study": study.study_name,
            "fingerprint": task.fingerprint,
            "trials": run.attempts,
            "failed": len(run.failures),
            "evaluator": resolved.evaluator.name,
            "best_value": best,
        }
        attrs: dict[str, Any] = {ATTR: record}
        if best is None:
            attrs[FAILURE_ATTR] = run.failures[-1] if run.failures else "no finished trial"
        self.task_study.add_trial(
            optuna.trial.create_trial(
                params={"task": task.key},
                distributions={"task": CategoricalDistribution(keys)},
                value=None if best is None else (best if resolved.evaluator.basis == "score" else -best),
                state=TrialState.FAIL if best is None else TrialState.COMPLETE,
                user_attrs=attrs,
            )
        )

    def mend(self, recorder: StrategyRecorder, keeper: ModelKeeper | None) -> None:
        """What a worker killed between a trial's end and its records left undone: the best row, then
        the kept model of the best trial (or of every trial, with ``keep = "all"``); and the model files
        of failed trials go."""
        ev = self.plan.spec.evaluation
        repair(recorder, self.study, ev.recheck, ev.folds)
        if keeper is not None:
            keeper.recover(self.study, rechecked=recorder.rechecked())
            keeper.sweep(self.study)

    def keeper(self) -> ModelKeeper | None:
        """Keeps the task's best trained model (or every one), if an artifact directory is configured."""
        spec, task = self.plan.spec, self.task
        location = resolve_artifacts(self.db.url, spec.artifacts_dir)
        if location is None:
            return None
        return ModelKeeper(
            self.db,
            location,
            spec.keep,
            task.search_task_id,
            task.resolved.dataset,
            origin={
                "search": spec.name,
                "task": task.key,
                "study": self.study.study_name,
                "fingerprint": task.fingerprint,
                "evaluator": task.resolved.evaluator.name,
                "direction": task.resolved.evaluator.direction,
            },
            plugin_of=self.host.strategies.plugin_of,
        )

    def warm_start(
        self, n_trials: int, sampled: optuna.Study | None = None
    ) -> list[Callable[[optuna.Study, FrozenTrial], None]]:
        """Seed the new strategy study from other tasks' history; record what was used and why.

        A starter's sampler wrapper replaces the sampler of ``sampled`` (default: the study; the parallel
        driver passes its in-memory mirror, from which it samples)."""
        plan, task = self.plan, self.task
        if plan.warm_starter is None:
            store_record(
                self.db,
                self.study,
                task.search_task_id,
                WarmStartRecord(used=False, reason="warm start turned off"),
            )
            return []
        warm = warm_start_study(**self._warm_args(plan.warm_starter, n_trials), sampled=sampled)
        if not warm.callbacks:
            return []
        starter = plan.warm_starter.name
        return [_StarterCallbacks(starter, self.host.warm_starters.plugin_of(starter), warm.callbacks)]

    def resume_warm_start(self, n_trials: int, sampled: optuna.Study | None = None) -> None:
        """If another worker or an earlier run warm-started the study with the spec's starter, let the
        starter guide the trials sampled here too (``sampled`` as in :meth:`warm_start`)."""
        if self.plan.warm_starter is not None:
            warm_start_study(
                **self._warm_args(self.plan.warm_starter, n_trials), sampled=sampled, resume=True
            )

    def _warm_args(self, starter: WarmStarter, n_trials: int) -> dict[str, Any]:
        task, resolved = self.task, self.task.resolved
        info = resolved.dataset.info()
        target = WarmTarget(
            fingerprint=task.fingerprint,
            kind=resolved.dataset.kind,
            meta_features=task.meta_features,
            evaluator=resolved.evaluator.name,
            strategies=tuple(s.name for s in resolved.strategies),
            updaters=tuple(u.name for u in resolved.updaters),
            info=info,
            space=dict(_target_space(tuple(resolved.strategies), tuple(resolved.updaters), info)),
        )
        return {
            "db": self.db,
            "storage": self.storage,
            "study": self.study,
            "search_task_id": task.search_task_id,
            "target": target,
            "starter": starter,
            "n_trials": n_trials,
            "seed": self.plan.spec.seed,
        }


def count_done(study: optuna.Study) -> int:
    """The finished (complete or pruned) trials of ``study``, over every worker."""
    return len(study.get_trials(deepcopy=False, states=DONE_STATES))


@functools.lru_cache(maxsize=256)
def _target_space(
    strategies: tuple[type[Strategy], ...], updaters: tuple[type[Updater], ...], info: TaskInfo
) -> Mapping[str, BaseDistribution]:
    """The task's parameter space as its plugins give it (:func:`search_space`), asked once per process
    rather than at every visit."""
    return MappingProxyType(search_space(strategies, updaters, info))


def _strategy_study(plan: Plan, storage: optuna.storages.BaseStorage, task: SearchTask) -> optuna.Study:
    spec = plan.spec
    seed = (spec.seed * 7_919 + int(task.fingerprint[:8], 16)) % (2**31 - 1)
    study = optuna.create_study(
        storage=storage,
        load_if_exists=True,
        study_name=strategy_study_name(spec.name, task.key),
        direction=task.resolved.evaluator.direction,
        sampler=plan.sampler(seed),
        pruner=own_trials_pruner(plan.pruner()),  # warm trials are no yardstick, in every worker
    )
    set_study_attrs(
        study,
        {
            "kind": KIND_STRATEGIES,
            "search": spec.name,
            "task": task.key,
            "fingerprint": task.fingerprint,
            "evaluator": task.resolved.evaluator.name,
            "strategies": [x.name for x in task.resolved.strategies],
            "updaters": [x.name for x in task.resolved.updaters],
            **validation_attrs(spec),
        },
    )
    return study


class _ObservedObjective:
    """Wraps a study's objective to keep ``stratagem_best`` current and report progress.

    Each trial's outcome is recorded when the next trial starts (Optuna has stored it by then) and once
    more after ``optimize`` returns or raises. Doing it here rather than in an Optuna callback matters:
    any callback makes Optuna read every finished trial back from storage.
    """

    def __init__(
        self,
        objective: StrategyObjective,
        recorder: StrategyRecorder,
        study: optuna.Study,
        on_trial: Callable[[], None],
        keeper: ModelKeeper | None = None,
    ) -> None:
        self.objective = objective
        self.recorder = recorder
        self.study = study
        self.on_trial = on_trial
        self.keeper = keeper
        self._pending: Outcome | None = None
        self._kept: KeptModel | None = None
        self._started = False

    def __call__(self, trial: optuna.Trial) -> float:
        self.flush()
        self._started = True
        value = self.objective(trial)
        trained = self.objective.last_trained
        if self.keeper is not None and trained is not None and math.isfinite(value):
            improves = self.recorder.improves(value, tie_loss(self.objective.last_record))
            if self.keeper.wants(improves):  # uploaded now: Optuna links artifacts to running trials only
                self._kept = self.keeper.upload(
                    trial, trial.number, dict(trial.params), trained, value, self.objective.last_record
                )
        # Only now: a trial whose model could not be kept fails, and a failed trial is never offered.
        self._pending = Outcome(trial.number, value, dict(trial.params), self.objective.last_record)
        return value

    def flush(self) -> None:
        """Record the last trial's outcome, if not done yet."""
        outcome, self._pending = self._pending, None
        kept, self._kept = self._kept, None
        started, self._started = self._started, False
        if outcome is not None:
            self.recorder.offer(outcome, self.study)
        if kept is not None and self.keeper is not None:
            self.keeper.settle(kept)  # kept if it is the stored best (or keep = "all"); others dropped
        if started:
            self.on_trial()


class _StarterCallbacks:
    """A warm starter's callbacks, called after each trial that the run tells.

    Once one raises, the starter's callbacks stop for the rest of the run, with one warning naming the
    starter, its plugin and the error, and the search goes on: a warm start only saves trials (as when
    its ``start`` raises, :func:`engine.transfer.warm_start_study`), and the trial is stored already.
    """

    def __init__(
        self, starter: str, plugin: str, callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]]
    ) -> None:
        self.starter, self.plugin, self.callbacks = starter, plugin, tuple(callbacks)
        self.failed = False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.failed:
            return
        for callback in self.callbacks:
            try:
                callback(study, trial)
            except Exception as exc:
                self.failed = True
                log.warning(
                    "warm starter %r (plugin %r): its callback raised %s: %s after trial %d of %s; its "
                    "callbacks stop, the search goes on",
                    self.starter,
                    self.plugin,
                    type(exc).__name__,
                    exc,
                    trial.number,
                    study.study_name,
                )
                return
