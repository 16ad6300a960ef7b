"""Running a search: task exploration over strategy exploration, all stored in one database.

For a spec named ``S`` with tasks ``a`` and ``b`` the storage ends up holding:

* Optuna study ``S``: task exploration. Each trial is one *visit* to a task (parameter ``task``); its
  value is the competence reached there: the best strategy value, negated for error-based evaluators
  so that higher is always better.
* Optuna studies ``S/a`` and ``S/b``: strategy exploration on each task (see :mod:`engine.objective`).
* The engine's tables (:mod:`engine.storage.models`): the tasks by fingerprint with meta-features and
  split, the search and its spec, and the best strategy per task, kept current as trials finish.

Running the same spec again resumes: each task gets trials only up to ``n_trials`` finished ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.errors import SpecError
from engine.objective import ATTR, StrategyObjective, TrialFailed, split_params
from engine.plugins import PluginHost
from engine.spec import Plan, ResolvedTask, SearchSpec, load_spec, resolve
from engine.storage import BestRow, Database, SearchRow, SearchTaskRow, TaskRow
from engine.storage.database import open_optuna_storage
from engine.task import Split, fingerprint, make_split

if TYPE_CHECKING:
    from engine.results import BestDefault, BestStrategy

__all__ = ["ProgressSink", "SearchResult", "SearchTask", "run", "strategy_study_name"]

log = logging.getLogger("stratagem")

DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
WARM_START_ATTR = "stratagem.warm_start"
"""Strategy-study user attribute recording what warm start used and why (or why it did not run)."""
KIND_TASKS = "task_exploration"
KIND_STRATEGIES = "strategy_exploration"


def strategy_study_name(search: str, task: str) -> str:
    """Name of the Optuna study that explores strategies for ``task`` in ``search``."""
    return f"{search}/{task}"


def _study_name_for(spec: SearchSpec, task: str) -> str:
    """The study a task's results live in: its own, or the cross-task study of a cross-task search."""
    if spec.mode == "cross_task":
        from engine.crosstask import cross_task_study_name

        return cross_task_study_name(spec.name)
    return strategy_study_name(spec.name, task)


@dataclass(frozen=True)
class SearchResult:
    """What :func:`run` did."""

    search: str
    storage: str
    trials_run: int
    seconds: float
    best: list[BestStrategy]
    defaults: list[BestDefault] = field(default_factory=list)


class ProgressSink:
    """Receives progress; the CLI shows it as bars, the Python API ignores it by default."""

    def task_started(self, key: str, total: int) -> None: ...

    def trial_finished(self, key: str) -> None: ...

    def task_finished(self, key: str) -> None: ...


@dataclass(frozen=True)
class SearchTask:
    """A task of a running search, as stored: its data, split, fingerprint and database ids."""

    resolved: ResolvedTask
    row_id: int
    search_task_id: int
    fingerprint: str
    split: Split
    meta_features: dict[str, float]

    @property
    def key(self) -> str:
        return self.resolved.key


def run(
    spec: SearchSpec | str | Path,
    *,
    storage: str | None = None,
    n_trials: int | None = None,
    seed: int | None = None,
    warm_start: bool | None = None,
    plugins: tuple[str, ...] = (),
    progress: ProgressSink | None = None,
) -> SearchResult:
    """Run (or resume) a search and return the best strategy per task.

    Args:
        spec: A :class:`~engine.spec.SearchSpec` or the path of a TOML spec.
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        n_trials: Overrides ``search.n_trials`` (finished strategy trials wanted per task).
        seed: Overrides ``search.seed``.
        warm_start: Overrides ``search.warm_start``.
        plugins: Extra local plugin modules, added to ``search.plugins``.
        progress: Receives progress events.

    Raises:
        SpecError: The spec is invalid (nothing has been written then).
        StorageError: The database cannot be used.
        KeyboardInterrupt: After marking the search interrupted; finished trials stay stored.
    """
    from engine.results import best as query_best
    from engine.results import defaults as query_defaults

    if not isinstance(spec, SearchSpec):
        spec = load_spec(spec)
    spec = spec.replace(
        n_trials=n_trials, seed=seed, warm_start=warm_start, plugins=(*spec.plugins, *plugins) or None
    )
    host = PluginHost.load(tuple(spec.plugins), base_dir=spec.base_dir)
    for problem in host.problems:
        log.warning("plugin %s was not loaded: %s", problem.plugin, problem.message)
    plan = resolve(spec, host)
    db = Database(storage)
    started = time.perf_counter()
    optuna_storage = open_optuna_storage(db.url)
    _check_resumable(plan, optuna_storage)
    search_id, tasks = _register(db, plan)
    trials_run = 0
    try:
        with _quiet_optuna(), _torch_threads(spec.threads):
            if spec.mode == "cross_task":
                from engine.crosstask import explore_cross_task

                trials_run = explore_cross_task(
                    plan, host, db, optuna_storage, tasks, search_id, progress or ProgressSink()
                )
            else:
                trials_run = _explore(plan, host, db, optuna_storage, tasks, progress or ProgressSink())
    except BaseException as exc:
        _set_status(db, search_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    _set_status(db, search_id, "finished")
    return SearchResult(
        search=spec.name,
        storage=db.safe_url,
        trials_run=trials_run,
        seconds=time.perf_counter() - started,
        best=query_best(storage=db.url, search=spec.name),
        defaults=query_defaults(storage=db.url, search=spec.name),
    )


def _check_resumable(plan: Plan, storage: optuna.storages.BaseStorage) -> None:
    """Refuse, before writing anything, to resume a study with other strategy or updater choices.

    Optuna fixes a categorical parameter's choices for the life of a study, so the ``strategy`` and
    ``updater`` lists of a task cannot change under the same search name.
    """
    attrs = {s.study_name: s.user_attrs.get(ATTR, {}) for s in storage.get_all_studies()}
    for task in plan.tasks:
        old = attrs.get(strategy_study_name(plan.spec.name, task.key))
        if not old:
            continue
        for kind, new in (("strategies", task.strategies), ("updaters", task.updaters)):
            names = [x.name for x in new]
            if kind in old and old[kind] != names:
                raise SpecError(
                    f"search {plan.spec.name!r} explored task {task.key!r} with {kind} {old[kind]}; this run "
                    f"asks for {names}. Optuna cannot change a study's choices: keep the list, or rename "
                    "the search to start a new one",
                    source=plan.spec.source,
                    key=f"search.{kind}",
                )


def _register(db: Database, plan: Plan) -> tuple[int, list[SearchTask]]:
    """Store the search and its tasks (reusing tasks by fingerprint); return their ids."""
    from engine.metafeatures import compute_meta_features

    spec = plan.spec
    keys = [t.key for t in plan.tasks]
    prepared: list[tuple[ResolvedTask, str]] = [(t, fingerprint(t.dataset)) for t in plan.tasks]
    with db.session() as s:
        known = {fp: row for fp, row in ((fp, TaskRow.by_fingerprint(s, fp)) for _, fp in prepared) if row}
    new_rows: dict[str, dict[str, Any]] = {}
    for task, fp in prepared:  # compute outside any transaction: it takes a moment
        if fp not in known and fp not in new_rows:
            ds = task.dataset
            split = make_split(ds, seed=int(fp[:8], 16) % (2**31 - 1))
            new_rows[fp] = {
                "name": task.key,
                "kind": ds.kind,
                "source": task.spec.source,
                "options": _jsonable(task.spec.options),
                "n_samples": ds.n_samples,
                "n_features": ds.n_features,
                "n_classes": ds.n_classes,
                "meta_features": compute_meta_features(ds),
                "split": split.to_json(),
            }
    with db.session() as s:
        search = SearchRow.by_name(s, spec.name)
        if search is None:
            search = SearchRow(name=spec.name, spec=spec.to_dict(), status="running")
            s.add(search)
        else:
            old_keys = [t.key for t in search.tasks]
            if old_keys and sorted(old_keys) != sorted(keys):
                raise SpecError(
                    f"search {spec.name!r} already exists in this storage with tasks {sorted(old_keys)}, "
                    f"but this spec has {sorted(keys)}; rename the search (search.name) to start a new one",
                    source=spec.source,
                    key="search.name",
                )
            search.spec = spec.to_dict()
            search.status = "running"
        s.flush()
        out: list[SearchTask] = []
        for task, fp in prepared:
            row = TaskRow.by_fingerprint(s, fp)
            if row is None:
                row = TaskRow(fingerprint=fp, **new_rows[fp])
                s.add(row)
                s.flush()
            link = next((st for st in search.tasks if st.key == task.key), None)
            if link is None:
                link = SearchTaskRow(
                    search=search,
                    task_id=row.id,
                    key=task.key,
                    study_name=_study_name_for(spec, task.key),
                    evaluator=task.evaluator.name,
                    direction=task.evaluator.direction,
                )
                s.add(link)
                s.flush()
            elif link.task_id != row.id:
                raise SpecError(
                    f"task {task.key!r} of search {spec.name!r} had different data when the search was "
                    "first run (its fingerprint changed); give the changed task a new name or the search a "
                    "new name",
                    source=spec.source,
                    key="tasks",
                )
            elif link.evaluator != task.evaluator.name:
                raise SpecError(
                    f"search {spec.name!r} judged task {task.key!r} with evaluator {link.evaluator!r}; "
                    f"resuming it with {task.evaluator.name!r} would mix values. Keep the evaluator or "
                    "rename the search",
                    source=spec.source,
                    key="evaluation",
                )
            out.append(
                SearchTask(task, row.id, link.id, fp, Split.from_json(row.split), dict(row.meta_features))
            )
        return search.id, out


def _jsonable(options: Any) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(options).items()}


def _set_status(db: Database, search_id: int, status: str) -> None:
    with db.session() as s:
        row = s.get(SearchRow, search_id)
        if row is not None:
            row.status = status


def _explore(
    plan: Plan,
    host: PluginHost,
    db: Database,
    storage: optuna.storages.BaseStorage,
    tasks: list[SearchTask],
    progress: ProgressSink,
) -> int:
    """Visit tasks round-robin until each has ``n_trials`` finished strategy trials."""
    spec = plan.spec
    task_study = optuna.create_study(
        storage=storage,
        study_name=spec.name,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(seed=spec.seed),
    )
    _set_study_attrs(task_study, {"kind": KIND_TASKS, "search": spec.name, "tasks": [t.key for t in tasks]})
    studies = {t.key: _strategy_study(plan, storage, t) for t in tasks}
    remaining = {t.key: max(0, spec.n_trials - _n_done(studies[t.key])) for t in tasks}
    keys = [t.key for t in tasks]
    trials_run = 0
    while any(remaining.values()):
        for task in tasks:
            todo = remaining[task.key]
            if not todo:
                continue
            n = min(todo, spec.trials_per_visit or todo)
            remaining[task.key] -= n
            trials_run += _visit(plan, host, db, task_study, studies[task.key], task, keys, n, progress)
    return trials_run


def _visit(
    plan: Plan,
    host: PluginHost,
    db: Database,
    task_study: optuna.Study,
    study: optuna.Study,
    task: SearchTask,
    keys: list[str],
    n: int,
    progress: ProgressSink,
) -> int:
    """One task-exploration trial: ``n`` strategy trials on ``task``, then record its competence."""
    spec = plan.spec
    resolved = task.resolved
    task_study.enqueue_trial({"task": task.key}, skip_if_exists=False)
    visit = task_study.ask()
    visit.suggest_categorical("task", keys)
    objective = StrategyObjective(
        task_key=task.key,
        dataset=resolved.dataset,
        split=task.split,
        strategies=resolved.strategies,
        updaters=resolved.updaters,
        evaluator=resolved.evaluator,
        seed=spec.seed,
        validation=spec.evaluation.validation,
        folds=spec.evaluation.folds,
        device=_device(spec.device),
        plugin_of=lambda kind, name: (host.strategies if kind == "strategy" else host.updaters).plugin_of(
            name
        ),
    )
    observed = _ObservedObjective(
        objective, db, task.search_task_id, study, lambda: progress.trial_finished(task.key)
    )
    before = len(study.get_trials(deepcopy=False))
    callbacks = _warm_start(plan, db, study, task, n) if before == 0 else []
    progress.task_started(task.key, n)
    try:
        study.optimize(
            observed, n_trials=n, timeout=spec.timeout, catch=(TrialFailed,), callbacks=callbacks or None
        )
    except BaseException:
        task_study.tell(visit, state=TrialState.FAIL)
        raise
    finally:
        observed.flush()
        progress.task_finished(task.key)
    observed.finish(study)
    ran = len(study.get_trials(deepcopy=False)) - before
    best = observed.best_value
    visit.set_user_attr(
        ATTR,
        {
            "study": study.study_name,
            "fingerprint": task.fingerprint,
            "trials": ran,
            "evaluator": resolved.evaluator.name,
            "best_value": best,
        },
    )
    if best is None:
        task_study.tell(visit, state=TrialState.FAIL)
    else:
        task_study.tell(visit, best if resolved.evaluator.basis == "score" else -best)
    return ran


def _warm_start(
    plan: Plan, db: Database, study: optuna.Study, task: SearchTask, n_trials: int
) -> list[Callable[[optuna.Study, FrozenTrial], None]]:
    """Seed a new strategy study from other tasks' history; record what was used and why."""
    resolved = task.resolved
    if plan.spec.warm_start:
        from engine.warmstart import WarmTarget, warm_start_study

        target = WarmTarget(
            fingerprint=task.fingerprint,
            kind=resolved.dataset.kind,
            meta_features=task.meta_features,
            evaluator=resolved.evaluator.name,
            strategies=tuple(s.name for s in resolved.strategies),
            updaters=tuple(u.name for u in resolved.updaters),
            info=resolved.dataset.info(),
            method=plan.spec.warm_start_method,
        )
        warm = warm_start_study(db=db, study=study, target=target, n_trials=n_trials, seed=plan.spec.seed)
        info, callbacks = warm.info, list(warm.callbacks)
    else:
        info, callbacks = {"used": False, "reason": "warm start turned off"}, []
    with db.session() as s:
        link = s.get(SearchTaskRow, task.search_task_id)
        if link is not None:
            link.warm_start = info
    study.set_user_attr(WARM_START_ATTR, info)
    return callbacks


def _device(device: str) -> str:
    from engine.training import resolve_device

    return resolve_device(device)


def _strategy_study(plan: Plan, storage: optuna.storages.BaseStorage, task: SearchTask) -> optuna.Study:
    spec = plan.spec
    seed = (spec.seed * 7_919 + int(task.fingerprint[:8], 16)) % (2**31 - 1)
    study = optuna.create_study(
        storage=storage,
        study_name=strategy_study_name(spec.name, task.key),
        direction=task.resolved.evaluator.direction,
        load_if_exists=True,
        sampler=plan.sampler(seed),
        pruner=plan.pruner(),
    )
    _set_study_attrs(
        study,
        {
            "kind": KIND_STRATEGIES,
            "search": spec.name,
            "task": task.key,
            "fingerprint": task.fingerprint,
            "evaluator": task.resolved.evaluator.name,
            "strategies": [x.name for x in task.resolved.strategies],
            "updaters": [x.name for x in task.resolved.updaters],
        },
    )
    return study


def _set_study_attrs(study: optuna.Study, attrs: dict[str, Any]) -> None:
    if study.user_attrs.get(ATTR) != attrs:
        study.set_user_attr(ATTR, attrs)


def _n_done(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=DONE_STATES))


@dataclass(frozen=True)
class _Outcome:
    number: int
    value: float | None  # None: pruned, failed or interrupted
    params: dict[str, Any]
    record: dict[str, Any]


class _ObservedObjective:
    """Wraps a study's objective to keep ``stratagem_best`` current and report progress.

    Each trial's outcome is recorded when the next trial starts (Optuna has stored it by then) and once
    more after ``optimize`` returns or raises. Doing it here rather than in an Optuna callback matters:
    any callback makes Optuna read every finished trial back from storage.
    """

    def __init__(
        self,
        objective: StrategyObjective,
        db: Database,
        search_task_id: int,
        study: optuna.Study,
        on_trial: Callable[[], None],
    ) -> None:
        self.objective = objective
        self.db = db
        self.search_task_id = search_task_id
        self.on_trial = on_trial
        self.maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        self.best_value: float | None = None
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.value is not None:
                self._improves(t.value)
        self._pending: _Outcome | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        self.flush()
        self._pending = _Outcome(trial.number, None, {}, {})
        value = self.objective(trial)
        self._pending = _Outcome(trial.number, value, dict(trial.params), self.objective.last_record)
        return value

    def flush(self) -> None:
        """Record the last trial's outcome, if not done yet."""
        outcome, self._pending = self._pending, None
        if outcome is None:
            return
        if outcome.value is not None and self._improves(outcome.value):
            self._write(outcome)
        self.on_trial()

    def _improves(self, value: float) -> bool:
        if value != value:  # NaN: Optuna fails the trial
            return False
        if self.best_value is None or _better(value, self.best_value, self.maximize):
            self.best_value = value
            return True
        return False

    def finish(self, study: optuna.Study) -> None:
        """Refresh the finished-trial count on the stored best row."""
        done = _n_done(study)
        with self.db.session() as s:
            row = s.query(BestRow).filter_by(search_task_id=self.search_task_id).one_or_none()
            if row is not None:
                row.n_trials = done

    def _write(self, outcome: _Outcome) -> None:
        assert outcome.value is not None
        strategy, s_params, updater, u_params = split_params(outcome.params)
        with self.db.session() as s:
            row = s.query(BestRow).filter_by(search_task_id=self.search_task_id).one_or_none()
            if row is not None and not _better(outcome.value, row.value, self.maximize):
                self.best_value = row.value  # another worker found a better one
                return
            if row is None:
                row = BestRow(search_task_id=self.search_task_id)
                s.add(row)
            row.trial_number = outcome.number
            row.strategy, row.strategy_params = strategy, s_params
            row.updater, row.updater_params = updater, u_params
            row.value = outcome.value
            row.test_value = outcome.record.get("test_value")
            row.n_trials = outcome.number + 1


def _better(a: float, b: float, maximize: bool) -> bool:
    return a > b if maximize else a < b


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Tabular models are small: one intra-op thread per worker is fastest; scale with workers."""
    if n <= 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO; the engine reports progress its own way."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(level, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
