"""Conformance kit for Stratagem plugins, in the manner of ``optuna.testing``.

Subclass a contract in your plugin's test suite, name the subclass ``Test...`` so pytest collects it,
and say what is under test::

    from engine.testing import EvaluatorContract, StrategyContract, UpdaterContract, WarmStarterContract

    class TestMyStrategy(StrategyContract):
        strategy_class = MyStrategy

    class TestMyEvaluator(EvaluatorContract):
        evaluator = MyEvaluator()

    class TestMyUpdater(UpdaterContract):
        updater = MyUpdater(epochs=5)   # settings that keep the fit checks fast

    class TestMyWarmStarter(WarmStarterContract):
        warm_starter = MyWarmStarter()

    class TestMyFamily(TaskFamilyContract):
        family = MyFamily(k_shot=5)
        bad_options = {"k_shot": 10_000}

The contracts train and judge on small real data bundled with scikit-learn (iris, diabetes), through
the same :mod:`engine.study.training` code the engine uses. This package imports ``pytest``, so it needs
the ``test`` extra; ``import engine`` never imports it.
"""

from __future__ import annotations

from engine.testing._data import REFERENCE_INFOS, reference_evaluator, tiny_dataset, tiny_problem
from engine.testing._evaluator import EvaluatorCase, EvaluatorContract, evaluator_cases
from engine.testing._family import TaskFamilyContract
from engine.testing._search_space import SearchSpaceContract, suggest_from_study
from engine.testing._strategy import StrategyContract
from engine.testing._updater import UpdaterContract
from engine.testing._warm_starter import WarmStarterContract, kit_history

__all__ = [
    "REFERENCE_INFOS",
    "EvaluatorCase",
    "EvaluatorContract",
    "SearchSpaceContract",
    "StrategyContract",
    "TaskFamilyContract",
    "UpdaterContract",
    "WarmStarterContract",
    "evaluator_cases",
    "kit_history",
    "reference_evaluator",
    "suggest_from_study",
    "tiny_dataset",
    "tiny_problem",
]
