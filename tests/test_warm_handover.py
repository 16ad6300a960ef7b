"""After a warm start, the study's pruner judges the sampler's trials by each other, not by the enqueued
warm trials (engine/transfer/handover.py, docs/benchmarks.md "Warm-start choices")."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from engine.plugin import PluginHost
from engine.search import run
from engine.search.per_task import open_studies
from engine.search.register import register
from engine.spec import SearchSpec, TaskSpec, resolve
from engine.storage import Database
from engine.storage.optuna_adapter import open_optuna_storage
from engine.task import fingerprint
from engine.task.metafeatures import compute_meta_features
from engine.transfer.handover import OwnTrialsPruner, own_trials_pruner
from engine.transfer.warmstart import warm_start_study
from engine.warmstarter import WarmTarget
from plugins.tasks import SyntheticSource
from plugins.warm_starters import KnnWarmStarter

FAST = {"strategies": ("linear",), "updaters": ("gradient_descent",)}
SYNTH = {"n_samples": 120, "n_features": 5, "seed": 3}


def _curve(trial: optuna.Trial, level: float) -> float:
    """Report ``level`` at steps 1..3 and return it."""
    for step in (1, 2, 3):
        trial.report(level, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return level


def _warm_study(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """A study whose first five trials were enqueued and reached 0.9 at every step."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for i in range(5):
        study.enqueue_trial({"x": 0.5 + i / 1000})
    study.optimize(lambda t: _curve(t, 0.9 + 0 * t.suggest_float("x", 0.0, 1.0)), n_trials=5)
    return study


def test_the_median_pruner_judges_later_trials_by_the_warm_trials_alone() -> None:
    # the mechanism that kept warm-started searches flat: every later trial below the warm trials'
    # median is pruned, so none of them can become the incumbent
    study = _warm_study(optuna.pruners.MedianPruner())
    study.optimize(lambda t: _curve(t, 0.5), n_trials=3)
    assert [t.state for t in study.trials[5:]] == [optuna.trial.TrialState.PRUNED] * 3


def test_warm_trials_are_no_reference_for_the_pruner() -> None:
    study = _warm_study(OwnTrialsPruner(optuna.pruners.MedianPruner()))
    study.optimize(lambda t: _curve(t, 0.5), n_trials=5)  # the pruner's own start-up: 5 of its own
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # from then on the median of the sampler's own trials is the reference, as in a cold search
    study.optimize(lambda t: _curve(t, 0.4), n_trials=1)
    study.optimize(lambda t: _curve(t, 0.6), n_trials=1)
    assert study.trials[10].state == optuna.trial.TrialState.PRUNED
    assert study.trials[11].state == optuna.trial.TrialState.COMPLETE


# ------------------------------------------------------------------------ through warm_start_study


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A storage holding finished cold searches of iris and wine."""
    path = tmp_path_factory.mktemp("handover") / "history.db"
    tasks = tuple(TaskSpec("sklearn", {"dataset": n}) for n in ("iris", "wine"))
    run(
        SearchSpec(name="hist", tasks=tasks, n_trials=3, warm_start=False, **FAST),
        storage=f"sqlite:///{path}",
    )
    return f"sqlite:///{path}"


def _start(storage: str, name: str, n_trials: int) -> optuna.Study:
    dataset = SyntheticSource().load(SYNTH, Path.cwd())
    study = optuna.create_study(  # the strategy study as engine.search.per_task opens it
        storage=storage,
        study_name=name,
        direction="maximize",
        pruner=own_trials_pruner(optuna.pruners.MedianPruner()),
    )
    target = WarmTarget(
        fingerprint=fingerprint(dataset),
        kind="classification",
        meta_features=compute_meta_features(dataset),
        evaluator="accuracy",
        strategies=("linear",),
        updaters=("gradient_descent",),
        info=dataset.info(),
    )
    warm_start_study(
        db=Database(storage),
        storage=open_optuna_storage(storage),
        study=study,
        search_task_id=None,
        target=target,
        starter=KnnWarmStarter(),
        n_trials=n_trials,
        seed=0,
    )
    return study


def test_after_a_warm_start_the_pruner_judges_the_samplers_trials_by_each_other(history: str) -> None:
    study = _start(history, "warm", n_trials=10)
    warm = len(study.get_trials(states=(optuna.trial.TrialState.WAITING,)))
    assert warm == 2  # the best configuration of iris and of wine
    levels = iter([0.5, 0.6, 0.7, 0.65])

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("strategy", ["linear"])
        trial.suggest_float("gradient_descent.lr", 1e-4, 1e-1, log=True)
        trial.suggest_categorical("updater", ["gradient_descent"])
        return _curve(trial, 0.9 if trial.number < warm else next(levels))  # warm trials run first

    study.optimize(objective, n_trials=warm + 4)
    # 5 complete trials, the median pruner's start-up, but only 3 of the sampler's own: the fourth
    # (0.65, below the median 0.7 of all five) is not judged by the warm trials and completes
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * (warm + 4)


def test_every_worker_opens_strategy_studies_whose_pruner_ignores_warm_trials(history: str) -> None:
    # a second worker, or a resumed run, opens the studies the same way: the wrapper is not tied to the
    # worker that ran the warm start
    tasks_ = tuple(TaskSpec("sklearn", {"dataset": n}) for n in ("iris", "wine"))
    spec = SearchSpec(name="hist", tasks=tasks_, n_trials=3, warm_start=False, **FAST)
    plan = resolve(spec, PluginHost.load(()))
    db = Database(history)
    _, tasks = register(db, plan)
    _, studies = open_studies(plan, db, open_optuna_storage(history), tasks)
    pruner = studies[tasks[0].key].pruner
    assert isinstance(pruner, OwnTrialsPruner) and isinstance(pruner.base, optuna.pruners.MedianPruner)
