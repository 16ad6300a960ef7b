"""The ``guided`` warm starter: the source ensemble and the task's own surrogate choose every trial."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from engine.results import best
from engine.search import run
from engine.spec import SearchSpec, TaskSpec
from engine.testing import kit_history
from engine.transfer import GuidedSampler, SourceEnsemble, ranked_portfolio
from engine.transfer.space import param_key
from engine.vocabulary import WARM_START_ATTR
from engine.warmstarter import Source, WarmStartContext, WarmStartRecord
from plugins.warm_starters import PORTFOLIO_TRIALS, GuidedWarmStarter

FAST = {"strategies": ("linear",), "updaters": ("gradient_descent",)}


def _objective(trial: optuna.Trial) -> float:
    """Best at lr = 1e-2; the kit's sources know nothing of that (their values are random)."""
    trial.suggest_categorical("strategy", ["linear"])
    trial.suggest_float("linear.input_dropout", 0.0, 0.5)
    trial.suggest_categorical("updater", ["gradient_descent"])
    return -abs(math.log10(trial.suggest_float("gradient_descent.lr", 1e-4, 1e-1, log=True)) + 2)


def _ensemble(sources: tuple[Source, ...]) -> SourceEnsemble:
    target, _, _ = kit_history()
    return SourceEnsemble(
        sources, target.meta_features, [s.meta_features for s in sources], strategies=("linear",), seed=0
    )


def _guided(sources: tuple[Source, ...], weights: list[float] | None = None, seed: int = 0) -> optuna.Study:
    def on_choice(_weights: np.ndarray, target_weight: float, _n: int) -> None:
        if weights is not None:
            weights.append(target_weight)

    sampler = GuidedSampler(
        optuna.samplers.TPESampler(seed=seed),
        _ensemble(sources),
        strategies=("linear",),
        updaters=("gradient_descent",),
        on_choice=on_choice,
    )
    return optuna.create_study(direction="maximize", sampler=sampler)


def _knowing(sources: tuple[Source, ...], sign: float = 1.0) -> tuple[Source, ...]:
    """The kit's sources, with ranks that say what the target's objective says (lr = 1e-2 is best), or
    the opposite with ``sign=-1``."""
    out = []
    for src in sources:
        trials = []
        for t in src.trials:
            distance = abs(math.log10(float(t.params["gradient_descent.lr"])) + 2) / 2
            trials.append(dataclasses.replace(t, rank=1.0 - distance if sign > 0 else distance))
        out.append(dataclasses.replace(src, trials=tuple(trials)))
    return tuple(out)


def test_every_trial_gets_a_configuration_inside_the_studys_space_and_none_repeats() -> None:
    _, sources, _ = kit_history()
    study = _guided(sources)
    study.optimize(_objective, n_trials=12)

    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 12
    for i, a in enumerate(trials):
        assert set(a.params) == {"strategy", "linear.input_dropout", "updater", "gradient_descent.lr"}
        assert 1e-4 <= a.params["gradient_descent.lr"] <= 1e-1
        assert 0.0 <= a.params["linear.input_dropout"] <= 0.5
        assert all(a.params != b.params for b in trials[:i])


def test_sources_that_know_the_task_lead_the_first_trials_to_it() -> None:
    _, sources, _ = kit_history()
    guided = _guided(_knowing(sources))
    guided.optimize(_objective, n_trials=3)

    # a log-uniform draw lands within half a decade of 1e-2 one time in three: all three did
    assert all(t.value is not None and t.value > -0.5 for t in guided.trials)


def test_the_tasks_own_model_takes_the_weight_from_sources_that_mislead() -> None:
    _, sources, _ = kit_history()
    weights: list[float] = []
    study = _guided(_knowing(sources, sign=-1.0), weights)  # sources that rank lr = 1e-2 worst
    study.optimize(_objective, n_trials=20)

    assert weights[:3] == [0.0, 0.0, 0.0]  # the prior alone until 3 trials have finished
    assert max(weights) >= 0.5  # then the wrapped sampler alone decides
    assert study.best_value > -0.15


def test_the_nearest_tasks_bests_are_each_sources_best_and_pick_keeps_to_them() -> None:
    _, sources, _ = kit_history()
    ens = _ensemble(sources)
    bests = ens.neighbour_bests(2)
    assert [s for s, _ in bests] == [0, 1]  # the two nearest sources, nearest first
    for s, i in bests:  # each one's best configuration the target can run (its strategy is linear)
        runnable = [t for t in ens.sources[s].trials if t.complete and t.params["strategy"] == "linear"]
        assert ens.candidates[i].rank == max(t.rank for t in runnable)
    among = {i for _, i in bests}
    chosen = ens.pick(ens.scores(ens.prior), [], top=5, among=among)
    assert sorted(chosen) == sorted(among)
    assert ens.pick(ens.scores(ens.prior), [ens.candidates[i].params for i in among], among=among) == []


def test_guided_starts_with_the_zero_shot_portfolios_top_configurations() -> None:
    target, sources, defaults = kit_history()
    study = optuna.create_study(direction="maximize")
    context = WarmStartContext(
        target=target,
        study=study,
        n_trials=10,
        seed=0,
        sources=sources,
        defaults=defaults,
        population=[s.meta_features for s in sources],
        planned=lambda: [],
        persist=lambda record: None,
    )
    warm = GuidedWarmStarter().start(context)

    # before any trial has run, the portfolio's top 3 wait in order (the nearest tasks' bests come later)
    waiting = [t.system_attrs["fixed_params"] for t in study.get_trials(states=(TrialState.WAITING,))]
    ensemble = SourceEnsemble(
        sources,
        target.meta_features,
        [s.meta_features for s in sources],
        extra=defaults,
        strategies=target.strategies,
        updaters=target.updaters,
        seed=0,
        space=target.space,
    )
    top, _ = ranked_portfolio(ensemble, target.meta_features, top=PORTFOLIO_TRIALS)
    assert PORTFOLIO_TRIALS == 3 and warm.record.enqueued == len(waiting) == 3
    assert all(_same(w, ensemble.candidates[i].params) for w, i in zip(waiting, top, strict=True))


def test_an_enqueued_trial_runs_what_it_was_given() -> None:
    _, sources, _ = kit_history()
    study = _guided(sources)
    given = {"strategy": "linear", "linear.input_dropout": 0.25, "updater": "gradient_descent"}
    study.enqueue_trial({**given, "gradient_descent.lr": 0.001})
    study.optimize(_objective, n_trials=1)

    assert study.trials[0].params == {**given, "gradient_descent.lr": 0.001}


def test_a_guided_choice_reads_the_studys_trials_once_for_all_its_proposals() -> None:
    # TPE (constant_liar, Optuna's default) reads every trial from storage for each value it draws: the
    # 16 proposals before a trial draw 64 values here, which cost a guided search most of its time
    _, sources, _ = kit_history()
    sampler = GuidedSampler(
        optuna.samplers.TPESampler(seed=0, n_startup_trials=2),
        _ensemble(sources),
        strategies=("linear",),
        updaters=("gradient_descent",),
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=6)
    reads: list[int] = []
    get_all_trials = study._storage.get_all_trials

    def counted(*args: Any, **kwargs: Any) -> list[optuna.trial.FrozenTrial]:
        reads.append(1)
        return get_all_trials(*args, **kwargs)

    study._storage.get_all_trials = counted  # type: ignore[method-assign]
    trial = study.ask()  # trial 6, chosen by the sources and the task's model
    assert trial.number in sampler._chosen
    assert len(reads) < sampler.proposals


def test_the_sampler_chooses_every_trial_of_the_guided_phase_and_none_after_it() -> None:
    _, sources, _ = kit_history()
    weights: list[float] = []
    sampler = GuidedSampler(
        optuna.samplers.TPESampler(seed=0),
        _ensemble(sources),
        strategies=("linear",),
        updaters=("gradient_descent",),
        until=5,
        on_choice=lambda _w, target_weight, _n: weights.append(target_weight),
    )
    chosen: list[bool] = []
    before = sampler.before_trial

    def noting(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        before(study, trial)
        chosen.append(trial.number in sampler._chosen)

    sampler.before_trial = noting  # type: ignore[method-assign]
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective, n_trials=9)

    # the task's own model holds at most n / (n + 5) < 1/2 of the weight before trial 5: every trial up
    # to there is the sampler's choice; from there on TPE decides alone, and no model is fitted for it
    assert chosen == [True] * 5 + [False] * 4
    assert len(weights) == 5


def test_the_source_surrogates_predict_each_configuration_once() -> None:
    _, sources, _ = kit_history()
    ens = _ensemble(sources)
    configs = [dict(t.params) for t in sources[0].trials[:5]] + [ens.candidates[-1].params]
    calls: list[int] = []
    for model in ens.models:
        predict = model.predict

        def counted(X: np.ndarray, predict: Any = predict) -> np.ndarray:
            calls.append(len(X))
            return predict(X)

        model.predict = counted

    first = ens.predict(configs)
    assert 0 < sum(calls) <= len(configs) * len(ens.models)  # the candidates' were predicted on building
    calls.clear()
    again = ens.predict(configs[::-1])
    assert calls == [] and np.array_equal(again, first[:, ::-1])
    fresh = ens.space.encode(configs)
    raw = np.array([m.predict(fresh) for m in ens.models])  # observed ranks replace a source's own configs
    for i, known in enumerate(ens._known):
        for j, c in enumerate(configs):
            assert first[i, j] == known.get(param_key(c), raw[i, j])


# ----------------------------------------------------------------------------- through the engine


def _spec(name: str, tasks: tuple[TaskSpec, ...], **kw: Any) -> SearchSpec:
    options: dict[str, Any] = {"n_trials": 4, "warm_start": False, **FAST}
    options.update(kw)
    return SearchSpec(name=name, tasks=tasks, **options)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A storage holding finished cold searches of iris and wine."""
    path = tmp_path_factory.mktemp("guided") / "history.db"
    tasks = tuple(TaskSpec("sklearn", {"dataset": n}) for n in ("iris", "wine"))
    run(_spec("hist", tasks), storage=f"sqlite:///{path}")
    return f"sqlite:///{path}"


def test_a_search_with_guided_warm_start_records_it_and_runs_its_budget(history: str) -> None:
    task = TaskSpec("synthetic", {"n_samples": 120, "n_features": 5, "seed": 3}, name="synth")
    spec = _spec("guided", (task,), warm_start=True, warm_start_method="guided", n_trials=10)
    result = run(spec, storage=history)

    info = result.best[0].warm_start
    assert info is not None and info.used and info.method == "guided" and info.max_warm == 5
    assert {s.task for s in info.sources} == {"iris", "wine"}
    study = optuna.load_study(study_name="guided/synth", storage=history)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    assert len(trials) == 10
    warm = [t.system_attrs["fixed_params"] for t in study.trials if "fixed_params" in t.system_attrs]
    # the portfolio's first 3 (distinct configurations of the sources), then the nearest tasks' bests
    # (iris and wine; one already run is not run again); the rest sampled
    assert PORTFOLIO_TRIALS <= len(warm) == info.enqueued <= 5
    tried = [dict(t.params) for name in ("iris", "wine") for t in _trials(history, f"hist/{name}")]
    portfolio = warm[:PORTFOLIO_TRIALS]
    assert all(any(_same(w, c) for c in tried) for w in portfolio)
    assert not any(_same(a, b) for i, a in enumerate(portfolio) for b in portfolio[:i])
    bests = [p for name in ("iris", "wine") for p in _best_params(history, f"hist/{name}")]
    assert all(any(_same(w, b) for b in bests) for w in warm[PORTFOLIO_TRIALS:])
    stored = WarmStartRecord.from_dict(study.user_attrs[WARM_START_ATTR])
    assert stored.target_weight is not None and 0.0 <= stored.target_weight <= 1.0
    assert next(b.warm_start for b in best(storage=history, search="guided")) == stored


def _trials(storage: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)


def _best_params(storage: str, study_name: str) -> list[dict[str, Any]]:
    """The configurations of the study's trials of its best value (there may be ties)."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    return [dict(t.params) for t in study.trials if t.value == study.best_value]


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(
        math.isclose(v, b[k]) if isinstance(v, float) else v == b[k] for k, v in a.items()
    )


def test_the_ensemble_judges_the_tasks_model_out_of_fold_on_few_folds_as_on_one_out() -> None:
    _, sources, _ = kit_history()
    ens = _ensemble(_knowing(sources, sign=-1.0))  # sources that rank the task's trials wrongly
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(_objective, n_trials=12)
    trials = study.get_trials()

    w_loo, t_loo, m_loo = ens.target_model(trials, True)
    w_k, t_k, m_k = ens.target_model(trials, True, folds=5)
    assert m_loo is not None and m_k is not None
    assert math.isclose(float(np.sum(w_loo)) + t_loo, 1.0) and math.isclose(float(np.sum(w_k)) + t_k, 1.0)
    assert t_loo > 0.3 and t_k > 0.3  # on both counts the task's own model ranks its trials best


def test_a_resumed_run_and_the_parallel_driver_are_guided_too(
    history: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    chosen: list[int] = []
    choose = GuidedSampler._choose

    def counting(self: GuidedSampler, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        chosen.append(trial.number)
        return choose(self, study, trial)

    monkeypatch.setattr(GuidedSampler, "_choose", counting)
    task = TaskSpec("synthetic", {"n_samples": 120, "n_features": 5, "seed": 4}, name="synth")
    spec = _spec("guided-par", (task,), warm_start=True, warm_start_method="guided", n_trials=3)
    run(spec, storage=history, n_jobs=2)  # the driver samples from its mirror: the mirror is guided
    first = WarmStartRecord.from_dict(
        optuna.load_study(study_name="guided-par/synth", storage=history).user_attrs[WARM_START_ATTR]
    )
    assert first.enqueued is not None and first.enqueued >= 1
    assert len(chosen) == 3 - first.enqueued  # every trial but the enqueued ones
    run(dataclasses.replace(spec, n_trials=5), storage=history)  # a second visit, in another "worker"
    assert len(chosen) == 5 - first.enqueued
    study = optuna.load_study(study_name="guided-par/synth", storage=history)
    assert sum("fixed_params" in t.system_attrs for t in study.trials) == first.enqueued  # none again
    again = WarmStartRecord.from_dict(study.user_attrs[WARM_START_ATTR])
    assert again.enqueued == first.enqueued
    assert {s.fingerprint for s in again.sources} == {s.fingerprint for s in first.sources}
    # the record follows the weights of the latest choice: the sources' and the task's own add up to 1
    assert math.isclose(sum(s.weight for s in again.sources) + again.target_weight, 1.0, abs_tol=1e-3)


def test_a_guided_warm_started_search_run_alone_is_reproducible(history: str, tmp_path: Path) -> None:
    task = TaskSpec("synthetic", {"n_samples": 120, "n_features": 5, "seed": 3}, name="synth")
    spec = _spec("again", (task,), warm_start=True, warm_start_method="guided", n_trials=5)
    runs = []
    for copy in ("a.db", "b.db"):
        with sqlite3.connect(history.removeprefix("sqlite:///")) as a, sqlite3.connect(tmp_path / copy) as b:
            a.backup(b)  # the file may be in WAL mode: copy it consistently
        url = f"sqlite:///{tmp_path / copy}"
        run(spec, storage=url)
        runs.append([t.params for t in optuna.load_study(study_name="again/synth", storage=url).trials])
    assert runs[0] == runs[1]
