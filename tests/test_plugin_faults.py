"""Faults inside plugins and around a trial: the trial fails with its reason, and nothing a failed trial
did becomes a task's best."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import engine
from engine.configuration import plain_params
from engine.errors import SearchFailed, SpecError
from engine.search.task_scale import LOSS_RANGE
from engine.spec import SearchSpec
from engine.trained import ModelKeeper
from engine.vocabulary import FAILURE_ATTR, WARM_START_ATTR
from tests.conftest import tiny_spec

IRIS = {"source": "sklearn", "dataset": "iris"}
WINE = {"source": "sklearn", "dataset": "wine"}


def _plugin_spec(
    folder: Path,
    code: str,
    file: str,
    *,
    name: str,
    n_trials: int,
    tasks: list[dict[str, Any]] | None = None,
    evaluation: dict[str, str] | None = None,
    **search: Any,
) -> SearchSpec:
    """A search that loads ``code`` as the local plugin file ``file``: linear strategy, gradient descent
    and no warm start unless ``search`` says otherwise, on iris unless ``tasks`` says otherwise."""
    plugin = folder / file
    plugin.write_text(code)
    table = {"name": name, "n_trials": n_trials, "strategies": ["linear"], "updaters": ["gradient_descent"]}
    data: dict[str, Any] = {
        "search": table | {"warm_start": False, "plugins": [str(plugin)]} | search,
        "tasks": tasks or [IRIS],
    }
    if evaluation is not None:
        data["evaluation"] = evaluation
    return SearchSpec.from_dict(data)


NUMPY_SUGGEST = """
import numpy as np
import engine
from plugins.strategies import LinearModel

class NumpyLinear(LinearModel):
    name = "nplinear"

    @classmethod
    def suggest(cls, trial, info):
        return {"input_dropout": np.float32(trial.suggest_float("input_dropout", 0.0, 0.5))}

@engine.hookimpl
def stratagem_register_strategies(registry):
    registry.add(NumpyLinear)
"""


def test_a_trial_whose_model_cannot_be_kept_fails_and_never_becomes_the_best(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ModelKeeper, "upload", full_disk)
    with pytest.raises(SearchFailed, match="No space left on device"):
        engine.run(tiny_spec("full", n_trials=2), storage=sqlite_url)
    study = optuna.load_study(study_name="full/iris", storage=sqlite_url)
    assert {t.state for t in study.trials} == {TrialState.FAIL}
    assert engine.best(storage=sqlite_url) == []  # before: a failed trial was stored as the best


def test_numpy_values_from_a_plugins_suggest_are_stored_as_python_values(
    sqlite_url: str, tmp_path: Path
) -> None:
    spec = _plugin_spec(
        tmp_path, NUMPY_SUGGEST, "np_plugin.py", name="np", n_trials=2, strategies=["nplinear"]
    )
    result = engine.run(spec, storage=sqlite_url)  # before: every trial failed, and one was the best
    (best,) = result.best
    assert type(best.strategy_params["input_dropout"]) is float
    study = optuna.load_study(study_name="np/iris", storage=sqlite_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert best.trial in {t.number for t in study.trials}


def test_plain_params_refuses_what_could_not_be_stored() -> None:
    assert plain_params({"d": {"x": np.bool_(True)}}) == {"d": {"x": True}}
    assert plain_params({"a": np.int64(3), "b": (np.float32(0.5), 2), "c": None}) == {
        "a": 3,
        "b": (0.5, 2),
        "c": None,
    }
    with pytest.raises(TypeError, match=r"suggest returned f=.* of type builtin_function_or_method"):
        plain_params({"f": print})
    with pytest.raises(TypeError, match="suggest must return a dict"):
        plain_params([("a", 1)])


BROKEN_SOURCE = """
import engine

class Broken(engine.TaskSource):
    name = "broken"

    def load(self, options, base_dir):
        raise ValueError("cannot reach data server")

class Empty(engine.TaskSource):
    name = "empty"

    def load(self, options, base_dir):
        return None

@engine.hookimpl
def stratagem_register_task_sources(registry):
    registry.add(Broken())
    registry.add(Empty())
"""


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("broken", "raised ValueError: cannot reach data server"),
        ("empty", "returned NoneType, not an engine.Dataset"),
    ],
)
def test_a_task_source_that_fails_to_load_is_named_with_its_plugin(
    sqlite_url: str, tmp_path: Path, source: str, words: str
) -> None:
    spec = _plugin_spec(
        tmp_path, BROKEN_SOURCE, "broken.py", name="b", n_trials=1, tasks=[{"source": source}]
    )
    with pytest.raises(SpecError) as caught:
        engine.run(spec, storage=sqlite_url)
    ((key, message),) = caught.value.problems
    assert key == "tasks[0]" and message.startswith(f"task source {source!r} (plugin ") and words in message
    assert engine.searches(storage=sqlite_url) == []


EXITING = """
import sys
import engine
from plugins.strategies import LinearModel

class Exiting(LinearModel):
    name = "exiting"

    def build(self, info):
        sys.exit(0)

@engine.hookimpl
def stratagem_register_strategies(registry):
    registry.add(Exiting)
"""


def test_plugin_code_that_calls_exit_fails_its_trial_and_the_search_goes_on(
    sqlite_url: str, tmp_path: Path
) -> None:
    spec = _plugin_spec(
        tmp_path, EXITING, "exiting.py", name="x", n_trials=2, strategies=["exiting"], tasks=[IRIS, WINE]
    )
    with pytest.raises(SearchFailed, match=r"called exit\(0\) \(.*exiting\.py, line 10\)"):
        engine.run(spec, storage=sqlite_url)  # before: the process ended silently with status 0
    for task in ("iris", "wine"):  # every task was tried: the search did not stop at the first exit
        study = optuna.load_study(study_name=f"x/{task}", storage=sqlite_url)
        assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert [s.status for s in engine.searches(storage=sqlite_url)] == ["failed"]


BROKEN_WARM_STARTER = """
import engine

class Broken(engine.WarmStarter):
    name = "wbad"

    def start(self, context):
        raise RuntimeError("warm starter broke")

@engine.hookimpl
def stratagem_register_warm_starters(registry):
    registry.add(Broken())
"""


def test_a_warm_starter_that_raises_leaves_the_study_cold_with_the_reason(
    sqlite_url: str, tmp_path: Path
) -> None:
    spec = _plugin_spec(
        tmp_path,
        BROKEN_WARM_STARTER,
        "wbad.py",
        name="w",
        n_trials=2,
        warm_start=True,
        warm_start_method="wbad",
    )
    result = engine.run(spec, storage=sqlite_url)  # before: a traceback, exit 1
    assert result.trials_run == 2
    study = optuna.load_study(study_name="w/iris", storage=sqlite_url)
    record = study.user_attrs[WARM_START_ATTR]
    assert record["used"] is False
    assert record["reason"] == (
        "warm starter 'wbad': start() raised RuntimeError: warm starter broke; the study starts cold"
    )


FAULTY_WARM_STARTERS = """
import engine

class Calling(engine.WarmStarter):
    name = "wcall"

    def start(self, context):
        def callback(study, trial):
            raise RuntimeError("callback broke")
        return engine.WarmStart(engine.WarmStartRecord(False, self.name, "callbacks only"), callbacks=[callback])

class BadRecord(engine.WarmStarter):
    name = "wrecord"

    def start(self, context):
        return engine.WarmStart("not a record")

class BadCallbacks(engine.WarmStarter):
    name = "wcallbacks"

    def start(self, context):
        return engine.WarmStart(engine.WarmStartRecord(False, self.name, "x"), callbacks=5)

@engine.hookimpl
def stratagem_register_warm_starters(registry):
    registry.add(Calling())
    registry.add(BadRecord())
    registry.add(BadCallbacks())
"""


def test_a_warm_starters_callback_that_raises_is_named_once_and_the_search_goes_on(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _plugin_spec(
        tmp_path,
        FAULTY_WARM_STARTERS,
        "wfaulty.py",
        name="wc",
        n_trials=3,
        warm_start=True,
        warm_start_method="wcall",
    )
    assert engine.run(spec, storage=sqlite_url).trials_run == 3  # before: a traceback after the first trial
    trials = optuna.load_study(study_name="wc/iris", storage=sqlite_url).get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    lines = [r.getMessage() for r in caplog.records if "callback" in r.getMessage()]
    assert lines == [
        f"warm starter 'wcall' (plugin {str(tmp_path / 'wfaulty.py')!r}): its callback raised RuntimeError: "
        "callback broke after trial 0 of wc/iris; its callbacks stop, the search goes on"
    ]


@pytest.mark.parametrize(
    ("method", "problem"),
    [
        ("wrecord", "returned a record of type str, not a WarmStartRecord"),
        ("wcallbacks", "returned callbacks of type int, not a list of callables"),
    ],
)
def test_a_warm_starters_malformed_answer_leaves_the_study_cold_with_the_reason(
    sqlite_url: str, tmp_path: Path, method: str, problem: str
) -> None:
    spec = _plugin_spec(
        tmp_path,
        FAULTY_WARM_STARTERS,
        "wfaulty.py",
        name="wm",
        n_trials=2,
        warm_start=True,
        warm_start_method=method,
    )
    assert engine.run(spec, storage=sqlite_url).trials_run == 2  # before: a traceback, nothing run
    record = optuna.load_study(study_name="wm/iris", storage=sqlite_url).user_attrs[WARM_START_ATTR]
    assert record == {
        "used": False,
        "method": method,
        "reason": f"warm starter {method!r}: start() {problem}; the study starts cold",
        "sources": [],
        "enqueued": 0,
    }


BROKEN_META = """
import engine
from plugins.meta import MAML, Sinusoid

class BrokenMaml(MAML):
    name = "brokenmaml"

    def meta_loss(self, model, batch):
        raise RuntimeError("meta loss broke")

class BrokenFamily(Sinusoid):
    name = "brokenfamily"
    draws = 0

    def sample(self, *args, **kwargs):
        BrokenFamily.draws += 1
        if BrokenFamily.draws > 3:  # resolving the spec draws one episode per pool
            raise KeyError("no such episode")
        return super().sample(*args, **kwargs)

@engine.hookimpl
def stratagem_register_meta_strategies(registry):
    registry.add(BrokenMaml)

@engine.hookimpl
def stratagem_register_task_families(registry):
    registry.add(BrokenFamily)
"""


@pytest.mark.parametrize(
    ("family", "strategy", "reason"),
    [
        (
            "sinusoid",
            "brokenmaml",
            "meta-strategy 'brokenmaml' (plugin {plugin!r}) raised RuntimeError: meta loss broke",
        ),
        (
            "brokenfamily",
            "maml",
            "task family 'brokenfamily' (plugin {plugin!r}) raised KeyError: 'no such episode'",
        ),
    ],
)
def test_a_meta_trial_that_fails_in_a_plugin_names_the_plugin(
    sqlite_url: str, tmp_path: Path, family: str, strategy: str, reason: str
) -> None:
    plugin = tmp_path / "broken_meta.py"
    plugin.write_text(BROKEN_META)
    spec = SearchSpec.from_dict(
        {
            "search": {"name": "m", "mode": "meta", "n_trials": 1, "plugins": [str(plugin)]},
            "family": {"name": family, "k_shot": 5, "k_query": 5},
            "meta": {
                "strategies": [strategy],
                "iterations": 4,
                "checkpoints": 2,
                "meta_batch": [2],
                "val_tasks": 4,
                "test_tasks": 4,
                "steps": [0, 1],
            },
        }
    )
    expected = reason.format(plugin=str(plugin))
    with pytest.raises(SearchFailed, match=re.escape(expected)):
        engine.run(spec, storage=sqlite_url)  # before: "RuntimeError: meta loss broke", no plugin named
    (trial,) = optuna.load_study(study_name="m/meta", storage=sqlite_url).get_trials(deepcopy=False)
    assert trial.state == TrialState.FAIL and trial.user_attrs[FAILURE_ATTR] == expected


PEARSON = """
import numpy as np
import engine

class Pearson(engine.Evaluator):
    name = "pearson"
    basis = "score"
    kinds = frozenset({"regression"})

    def __call__(self, y, out):
        out = np.asarray(out, dtype=float).reshape(-1)
        return float("nan") if np.ptp(out) == 0 else float(np.corrcoef(y, out)[0, 1])

@engine.hookimpl
def stratagem_register_evaluators(registry):
    registry.add(Pearson())
"""


def test_a_cross_task_search_refuses_an_evaluator_without_finite_reference_values(
    sqlite_url: str, tmp_path: Path
) -> None:
    spec = _plugin_spec(
        tmp_path,
        PEARSON,
        "pearson.py",
        name="ct",
        mode="cross_task",
        n_trials=2,
        evaluation={"regression": "pearson"},
        tasks=[{"source": "sklearn", "dataset": "diabetes"}],
    )
    with pytest.raises(engine.StratagemError, match=r"evaluator 'pearson' gives nan for a trivial predictor"):
        engine.run(spec, storage=sqlite_url)  # before: every configuration scored a perfect loss of 0
    assert engine.defaults(storage=sqlite_url) == []


OUT_OF_SPACE_WARM_STARTER = """
import engine

class Wild(engine.WarmStarter):
    name = "wild"

    def start(self, context):
        context.study.enqueue_trial(
            {"strategy": "linear", "updater": "gradient_descent", "gradient_descent.epochs": 500}
        )
        return engine.WarmStart(engine.WarmStartRecord(True, self.name, "one configuration"))

@engine.hookimpl
def stratagem_register_warm_starters(registry):
    registry.add(Wild())
"""


def test_an_enqueued_configuration_outside_the_space_fails_its_trial_and_does_not_train(
    sqlite_url: str, tmp_path: Path
) -> None:
    spec = _plugin_spec(
        tmp_path,
        OUT_OF_SPACE_WARM_STARTER,
        "wild.py",
        name="wild",
        n_trials=2,
        warm_start=True,
        warm_start_method="wild",
    )
    engine.run(spec, storage=sqlite_url)
    trials = optuna.load_study(study_name="wild/iris", storage=sqlite_url).get_trials(deepcopy=False)
    assert trials[0].state == TrialState.FAIL  # before: trained 500 epochs (the space allows 10 to 50)
    assert (
        "sets gradient_descent.epochs = 500, outside its search space [" in trials[0].user_attrs[FAILURE_ATTR]
    )
    finished = [t for t in trials[1:] if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 2  # the search went on to its n_trials


RAISING_SAMPLER = """
import engine

def broken_sampler(base):
    class Broken(type(base)):
        def sample_independent(self, study, trial, name, distribution):
            raise RuntimeError("sampler broke")
    return Broken()

class Guiding(engine.WarmStarter):
    name = "guiding"

    def start(self, context):
        record = engine.WarmStartRecord(False, self.name, "guides the sampling only")
        return engine.WarmStart(record, sampler=broken_sampler)

@engine.hookimpl
def stratagem_register_warm_starters(registry):
    registry.add(Guiding())
"""


def test_a_warm_starters_sampler_that_raises_hands_over_to_the_studys_own(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _plugin_spec(
        tmp_path,
        RAISING_SAMPLER,
        "guiding.py",
        name="g",
        n_trials=3,
        warm_start=True,
        warm_start_method="guiding",
    )
    assert engine.run(spec, storage=sqlite_url).trials_run == 3  # before: a traceback at the first trial
    trials = optuna.load_study(study_name="g/iris", storage=sqlite_url).get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert "warm starter 'guiding': its sampler raised RuntimeError in sample_independent" in caplog.text


RAISING_EVALUATOR = """
import engine

class Exploding(engine.Evaluator):
    name = "exploding"
    basis = "score"
    kinds = frozenset({"classification"})

    def __call__(self, y, out):
        raise ValueError("evaluator exploded")

@engine.hookimpl
def stratagem_register_evaluators(registry):
    registry.add(Exploding())
"""


def test_an_evaluator_that_raises_is_named_as_the_evaluator(sqlite_url: str, tmp_path: Path) -> None:
    spec = _plugin_spec(
        tmp_path,
        RAISING_EVALUATOR,
        "exploding.py",
        name="e",
        n_trials=1,
        evaluation={"classification": "exploding"},
    )
    with pytest.raises(SearchFailed, match="evaluator 'exploding' raised ValueError: evaluator exploded"):
        engine.run(spec, storage=sqlite_url)  # before: "updater 'gradient_descent' ... raised ValueError"
    (trial,) = optuna.load_study(study_name="e/iris", storage=sqlite_url).get_trials(deepcopy=False)
    assert trial.user_attrs[FAILURE_ATTR] == "evaluator 'exploding' raised ValueError: evaluator exploded"


NAN_MODEL = """
import torch
import engine
from plugins.strategies import LinearModel

class NanModel(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) * float("nan")

class Diverging(LinearModel):
    name = "diverging"

    def build(self, info):
        return NanModel(super().build(info))

@engine.hookimpl
def stratagem_register_strategies(registry):
    registry.add(Diverging)
"""


def test_a_model_predicting_nan_fails_its_trial_naming_strategy_and_updater(
    sqlite_url: str, tmp_path: Path
) -> None:
    spec = _plugin_spec(tmp_path, NAN_MODEL, "nan.py", name="n", n_trials=1, strategies=["diverging"])
    with pytest.raises(SearchFailed):
        engine.run(spec, storage=sqlite_url)
    (trial,) = optuna.load_study(study_name="n/iris", storage=sqlite_url).get_trials(deepcopy=False)
    reason = trial.user_attrs[FAILURE_ATTR]  # before: "the objective's value is -inf, not a finite number"
    assert (
        reason.startswith("strategy 'diverging' (plugin ")
        and "trained by updater 'gradient_descent'" in reason
    )
    assert "predicts NaN or infinite values on the validation rows" in reason


def test_in_a_cross_task_search_a_diverged_task_scores_the_worst_loss(
    sqlite_url: str, tmp_path: Path
) -> None:
    spec = _plugin_spec(
        tmp_path, NAN_MODEL, "nan.py", name="cn", mode="cross_task", n_trials=1, strategies=["diverging"]
    )
    engine.run(spec, storage=sqlite_url)  # the configuration is judged (the worst), not failed
    (trial,) = optuna.load_study(study_name="cn/cross_task", storage=sqlite_url).get_trials(deepcopy=False)
    assert trial.state == TrialState.COMPLETE and trial.value == LOSS_RANGE[1]


SWALLOWING_UPDATER = """
import engine
from plugins.updaters import GradientDescent

class Stubborn(GradientDescent):
    name = "stubborn"

    def fit(self, model, problem, report):
        def ignoring(step, value):
            try:
                report(step, value)
            except Exception:
                pass  # the pruner's stop, swallowed

        return super().fit(model, problem, ignoring)

@engine.hookimpl
def stratagem_register_updaters(registry):
    registry.add(Stubborn)
"""


def test_a_trial_whose_updater_swallows_the_pruners_stop_is_pruned_all_the_same(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)  # the pruner says stop
    spec = _plugin_spec(
        tmp_path, SWALLOWING_UPDATER, "stubborn.py", name="p", n_trials=2, updaters=["stubborn"]
    )
    with pytest.raises(SearchFailed):  # every trial pruned: no successful one
        engine.run(spec, storage=sqlite_url)
    trials = optuna.load_study(study_name="p/iris", storage=sqlite_url).get_trials(deepcopy=False)
    assert {t.state for t in trials} == {TrialState.PRUNED}  # before: COMPLETE, the stop ignored
