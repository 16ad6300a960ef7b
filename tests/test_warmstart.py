"""Warm start: seeding a new task's strategy study from other tasks' history, never from its own."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import cli
from engine.errors import SpecError
from engine.results import best
from engine.search import run
from engine.spec import SearchSpec, TaskSpec
from engine.storage import Database, SearchRow
from engine.storage.models import DefaultRow
from engine.storage.optuna_adapter import open_optuna_storage
from engine.transfer.sources import rank_normalise
from engine.transfer.surrogate import _ranking_wins
from engine.transfer.warmstart import warm_start_study
from engine.vocabulary import WARM_START_ATTR
from engine.warmstarter import WarmStartRecord, WarmTarget
from plugins.warm_starters import KnnWarmStarter, TransferWarmStarter

FAST = {"strategies": ("linear",), "updaters": ("gradient_descent",)}
SYNTH = TaskSpec("synthetic", {"n_samples": 120, "n_features": 5, "seed": 3}, name="synth")


def _spec(name: str, tasks: tuple[TaskSpec, ...], **kw: Any) -> SearchSpec:
    options: dict[str, Any] = {"n_trials": 3, "warm_start": False, **FAST}
    options.update(kw)
    return SearchSpec(name=name, tasks=tasks, **options)


def _sk(*names: str) -> tuple[TaskSpec, ...]:
    return tuple(TaskSpec("sklearn", {"dataset": n}) for n in names)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A storage holding finished cold searches of iris and wine (linear and MLP configurations)."""
    path = tmp_path_factory.mktemp("history") / "history.db"
    run(
        _spec("hist", _sk("iris", "wine"), n_trials=4, strategies=("linear", "mlp")),
        storage=f"sqlite:///{path}",
    )
    return path


@pytest.fixture
def storage(history: Path, tmp_path: Path) -> str:
    """A private copy of the history storage."""
    copy = tmp_path / "copy.db"
    with sqlite3.connect(history) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)  # the database may be in WAL mode: copying the file alone would lose data
    return f"sqlite:///{copy}"


def _fingerprint(url: str, search: str, task: str) -> str:
    return next(b.fingerprint for b in best(storage=url, search=search) if b.task == task)


def test_a_task_without_history_of_its_kind_starts_cold(sqlite_url: str) -> None:
    result = run(_spec("first", _sk("iris"), warm_start=True), storage=sqlite_url)

    info = result.best[0].warm_start
    assert info is not None and info.used is False
    assert info.reason == (
        "no finished studies of other classification tasks in this storage (a study counts once it has "
        "two completed trials)"
    )


def test_a_regression_task_does_not_warm_start_from_classification_history(storage: str) -> None:
    result = run(_spec("reg", _sk("diabetes"), warm_start=True), storage=storage)

    info = result.best[0].warm_start
    assert info is not None and info.used is False
    assert "regression" in info.reason


def test_the_tasks_own_studies_never_count_as_a_source(storage: str) -> None:
    iris = _fingerprint(storage, "hist", "iris")
    wine = _fingerprint(storage, "hist", "wine")

    result = run(_spec("again", _sk("iris"), warm_start=True), storage=storage)

    info = result.best[0].warm_start
    assert info is not None and info.used is True
    assert [s.fingerprint for s in info.sources] == [wine]
    assert all(s.fingerprint != iris and s.study != "hist/iris" for s in info.sources)
    # a third search of iris still sees only wine, not the two earlier iris studies
    third = run(_spec("third", _sk("iris"), warm_start=True, n_trials=2), storage=storage).best[0].warm_start
    assert third is not None and {s.fingerprint for s in third.sources} == {wine}


def test_only_own_history_means_cold_start(sqlite_url: str) -> None:
    run(_spec("a", _sk("iris")), storage=sqlite_url)

    info = run(_spec("b", _sk("iris"), warm_start=True), storage=sqlite_url).best[0].warm_start

    assert info is not None and info.used is False
    assert "no finished studies of other classification tasks" in info.reason


def test_warm_start_is_recorded_on_the_study_and_shown_by_best(storage: str) -> None:
    run(_spec("new", (SYNTH,), warm_start=True, n_trials=4), storage=storage)

    study = optuna.load_study(study_name="new/synth", storage=storage)
    on_study = study.user_attrs[WARM_START_ATTR]
    (row,) = best(storage=storage, search="new")
    assert row.warm_start == WarmStartRecord.from_dict(on_study)
    assert on_study["used"] is True and on_study["method"] == "guided"  # the default
    assert on_study["enqueued"] == 2 == on_study["max_warm"]
    assert {s["task"] for s in on_study["sources"]} == {"iris", "wine"}
    assert math.isclose(
        sum(s["weight"] for s in on_study["sources"]) + on_study["target_weight"], 1.0, abs_tol=1e-3
    )
    warm = [t for t in study.trials if "fixed_params" in t.system_attrs]
    assert [t.number for t in warm] == [0, 1]
    shown = CliRunner().invoke(cli, ["best", "--search", "new", "--storage", storage])
    assert shown.exit_code == 0 and "guided: " in shown.output


def test_warm_start_false_and_the_cli_flag_turn_it_off(storage: str, tmp_path: Path) -> None:
    off = run(_spec("off", (SYNTH,), warm_start=False), storage=storage).best[0].warm_start
    assert off == WarmStartRecord(used=False, reason="warm start turned off")

    spec = tmp_path / "spec.toml"
    spec.write_text(
        '[search]\nname = "cli-off"\nn_trials = 2\nstrategies = ["linear"]\nupdaters = ["gradient_descent"]\n'
        '[[tasks]]\nsource = "sklearn"\ndataset = "breast_cancer"\n'
    )
    result = CliRunner().invoke(cli, ["run", str(spec), "--storage", storage, "--no-warm-start", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = best(storage=storage, search="cli-off")
    assert row.warm_start == WarmStartRecord(used=False, reason="warm start turned off")


def _warm(
    storage: str, method: str, strategies: tuple[str, ...], n_trials: int = 6
) -> tuple[optuna.Study, Any]:
    from engine.task import fingerprint
    from engine.task.metafeatures import compute_meta_features
    from plugins.tasks import SyntheticSource

    dataset = SyntheticSource().load(SYNTH.options, Path.cwd())
    study = optuna.create_study(storage=storage, study_name=f"probe-{method}", direction="maximize")
    target = WarmTarget(
        fingerprint=fingerprint(dataset),
        kind="classification",
        meta_features=compute_meta_features(dataset),
        evaluator="accuracy",
        strategies=strategies,
        updaters=("gradient_descent",),
        info=dataset.info(),
    )
    starter = {"knn": KnnWarmStarter(), "transfer": TransferWarmStarter()}[method]
    warm = warm_start_study(
        db=Database(storage),
        storage=open_optuna_storage(storage),
        study=study,
        search_task_id=None,
        target=target,
        starter=starter,
        n_trials=n_trials,
        seed=0,
    )
    return study, warm


def _assert_valid(params: dict[str, Any], strategies: tuple[str, ...], storage: str) -> None:
    sources = optuna.load_study(study_name="hist/iris", storage=storage).trials
    sources += optuna.load_study(study_name="hist/wine", storage=storage).trials
    dists: dict[str, Any] = {}
    for t in sources:
        dists.update(t.distributions)
    assert params["strategy"] in strategies and params["updater"] == "gradient_descent"
    for name, value in params.items():
        assert name in ("strategy", "updater") or name.startswith(
            (params["strategy"] + ".", "gradient_descent.")
        )
        assert dists[name]._contains(dists[name].to_internal_repr(value))


def test_knn_enqueues_the_best_valid_configuration_of_each_nearest_task(storage: str) -> None:
    study, warm = _warm(storage, "knn", ("linear", "mlp"))

    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert warm.record.used is True and warm.record.method == "knn" and warm.callbacks == ()
    assert warm.record.enqueued == len(waiting) == 2
    for t in waiting:
        _assert_valid(t.system_attrs["fixed_params"], ("linear", "mlp"), storage)
    bests = {
        optuna.load_study(study_name=f"hist/{k}", storage=storage).best_params["strategy"]
        for k in ("iris", "wine")
    }
    assert {t.system_attrs["fixed_params"]["strategy"] for t in waiting} <= bests | {"linear", "mlp"}


def test_transfer_enqueues_only_the_targets_strategies_and_keeps_going_in_a_callback(storage: str) -> None:
    study, warm = _warm(storage, "transfer", ("linear",))
    assert warm.record.used is True and len(warm.callbacks) == 1
    (first,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    _assert_valid(first.system_attrs["fixed_params"], ("linear",), storage)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("strategy", ["linear"])
        lr = trial.suggest_float("gradient_descent.lr", 1e-4, 1e-1, log=True)
        trial.suggest_categorical("updater", ["gradient_descent"])
        return -abs(math.log10(lr) + 2)

    study.optimize(objective, n_trials=6, callbacks=list(warm.callbacks))

    warm_trials = [t for t in study.trials if "fixed_params" in t.system_attrs]
    stored = WarmStartRecord.from_dict(study.user_attrs[WARM_START_ATTR])
    assert len(warm_trials) == 3 == stored.enqueued  # ceil(6 / 2)
    for t in warm_trials:
        _assert_valid(t.system_attrs["fixed_params"], ("linear",), storage)
    assert len({str(sorted(t.system_attrs["fixed_params"].items())) for t in warm_trials}) == 3
    assert stored.stopped is not None
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_the_method_comes_from_the_environment_by_default(
    storage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATAGEM_WARM_START", "knn")
    info = run(_spec("env", (SYNTH,), warm_start=True, n_trials=2), storage=storage).best[0].warm_start
    assert info is not None and info.method == "knn" and info.used is True

    monkeypatch.setenv("STRATAGEM_WARM_START", "magic")
    with pytest.raises(SpecError, match=r"STRATAGEM_WARM_START: unknown warm starter 'magic'; registered: "):
        run(_spec("env-bad", (SYNTH,), warm_start=True, n_trials=2), storage=storage)


def _add_default(db: Database, search: str, covers: int | None, dropout: float) -> None:
    from engine.storage import SearchTaskRow

    u_params = {"optimizer": "adam", "lr": 0.01, "weight_decay": 1e-4, "epochs": 12, "batch_size": 32}
    with db.session() as s:
        row = SearchRow(name=search, spec={}, status="finished")
        s.add(row)
        s.flush()
        if covers is not None:
            s.add(
                SearchTaskRow(
                    search_id=row.id,
                    task_id=covers,
                    key="synth",
                    study_name=f"{search}/synth",
                    evaluator="accuracy",
                    direction="maximize",
                )
            )
        s.add(
            DefaultRow(
                search_id=row.id,
                study_name=search,
                kind="classification",
                trial_number=0,
                strategy="linear",
                strategy_params={"input_dropout": dropout, "bias": True},
                updater="gradient_descent",
                updater_params=u_params,
                loss=0.1,
                per_task={},
                n_trials=1,
                task_evaluations=1,
            )
        )


def test_a_cross_task_default_is_a_candidate_unless_its_search_covered_the_target(sqlite_url: str) -> None:
    from engine.storage import TaskRow

    run(_spec("s", (SYNTH,), n_trials=1), storage=sqlite_url)
    db = Database(sqlite_url)
    with db.session() as s:
        (task_id,) = s.scalars(select(TaskRow.id)).all()
    _add_default(db, "ct-covering", task_id, 0.25)

    covered = run(_spec("s2", (SYNTH,), warm_start=True, n_trials=1), storage=sqlite_url).best[0].warm_start
    assert covered is not None and covered.used is False

    _add_default(db, "ct-free", None, 0.125)
    free = run(_spec("s3", (SYNTH,), warm_start=True, n_trials=1), storage=sqlite_url).best[0].warm_start
    assert free is not None and free.used is True and free.enqueued == 1
    first = optuna.load_study(study_name="s3/synth", storage=sqlite_url).trials[0]
    assert first.params["linear.input_dropout"] == 0.125 and first.params["gradient_descent.epochs"] == 12


def test_rank_normalisation_puts_the_best_value_at_one_whatever_the_direction() -> None:
    assert list(rank_normalise([0.2, 0.9, 0.5], maximize=True)) == [0.0, 1.0, 0.5]
    assert list(rank_normalise([0.2, 0.9, 0.5], maximize=False)) == [1.0, 0.0, 0.5]
    assert list(rank_normalise([1.0, 1.0, 0.0], maximize=True)) == [0.75, 0.75, 0.0]


def test_the_model_that_ranks_the_targets_trials_right_wins_the_weight() -> None:
    y = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    agreeing, reversed_, constant = y * 2 + 1, -y, np.zeros(5)

    wins = _ranking_wins(np.vstack([agreeing, reversed_, constant]), y, np.random.default_rng(0))

    assert wins[0] > 0.9 and wins[1] == 0.0 and math.isclose(wins.sum(), 1.0)


THIRD_PARTY = """
import engine


class FirstSource(engine.WarmStarter):
    name = "first_source"
    description = "enqueue the best trial of the first source that the target can run"

    def start(self, context):
        for source in context.sources:
            for trial in source.ranked():
                if trial.params["strategy"] in context.target.strategies:
                    context.study.enqueue_trial(trial.params)
                    return engine.WarmStart(
                        engine.WarmStartRecord(used=True, method=self.name, reason=source.task, enqueued=1)
                    )
        return engine.WarmStart(engine.WarmStartRecord(used=False, method=self.name, reason="no source"))


@engine.hookimpl
def stratagem_register_warm_starters(registry):
    registry.add(FirstSource())
"""


def test_a_third_party_warm_starter_is_named_in_the_spec_like_a_built_in(
    storage: str, tmp_path: Path
) -> None:
    plugin = tmp_path / "first_source.py"
    plugin.write_text(THIRD_PARTY)
    spec = _spec(
        "third-party", (SYNTH,), warm_start=True, warm_start_method="first_source", plugins=(str(plugin),)
    )

    (row,) = run(spec, storage=storage).best

    assert row.warm_start is not None and row.warm_start.method == "first_source"
    assert row.warm_start.used is True and row.warm_start.reason in {"iris", "wine"}
    first = optuna.load_study(study_name="third-party/synth", storage=storage).trials[0]
    assert first.system_attrs.get("fixed_params") == first.params


def test_an_unknown_warm_starter_is_refused_before_anything_is_written(storage: str) -> None:
    spec = _spec("nope", (SYNTH,), warm_start=True, warm_start_method="magic")

    with pytest.raises(
        SpecError,
        match=r"search.warm_start_method: unknown warm starter 'magic'; registered: guided, transfer, knn",
    ):
        run(spec, storage=storage)

    assert all(b.search != "nope" for b in best(storage=storage))
