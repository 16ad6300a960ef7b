"""Checks shared by strategies and updaters: ``suggest`` maps an Optuna trial onto ``__init__``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import optuna
import pytest

from engine.configurable import Configurable
from engine.task import TaskInfo

__all__ = ["SearchSpaceContract", "suggest_from_study"]


def suggest_from_study(cls: Any, info: TaskInfo, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Call ``cls.suggest`` with a real trial of a fresh in-memory study sampled at random.

    Returns:
        The keyword arguments ``suggest`` returned and the trial's parameters (by suggested name).
    """
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trial = study.ask()
    kwargs = cls.suggest(trial, info)
    study.tell(trial, 0.0)
    return kwargs, dict(trial.params)


class SearchSpaceContract:
    """Test cases for any :class:`engine.settings.Configurable` class with a ``suggest`` classmethod.

    Subclasses provide :meth:`configurable_class` and :meth:`search_infos`.
    """

    n_search_trials: ClassVar[int] = 6
    """Trials sampled per task shape when checking the search space."""

    def configurable_class(self) -> type[Configurable]:
        raise NotImplementedError

    def search_infos(self) -> Sequence[TaskInfo]:
        raise NotImplementedError

    def _samples(self) -> list[tuple[TaskInfo, int, dict[str, Any], dict[str, Any]]]:
        cls = self.configurable_class()
        return [
            (info, seed, *suggest_from_study(cls, info, seed))
            for info in self.search_infos()
            for seed in range(self.n_search_trials)
        ]

    def test_suggest_returns_init_keywords(self) -> None:
        cls = self.configurable_class()
        names = set(cls.param_names())
        for info, seed, kwargs, _ in self._samples():
            assert isinstance(kwargs, dict), f"{cls.__name__}.suggest must return a dict, got {type(kwargs)}"
            unknown = set(kwargs) - names
            assert not unknown, (
                f"{cls.__name__}.suggest({info}) with seed {seed} returned {sorted(unknown)}, which are not "
                f"keyword arguments of __init__ ({sorted(names)}); return __init__'s names, unprefixed"
            )

    def test_params_round_trip_through_get_params(self) -> None:
        cls = self.configurable_class()
        for info, _, kwargs, _ in self._samples():
            obj = cls(**kwargs)
            try:
                params = obj.get_params()
            except AttributeError as exc:
                pytest.fail(
                    f"{cls.__name__}.__init__ must store each argument as an attribute of the same "
                    f"name: {exc}"
                )
            for name, value in kwargs.items():
                assert params[name] == value, (
                    f"{cls.__name__}(**{kwargs!r}).get_params()[{name!r}] is {params[name]!r}, not "
                    f"{value!r}; __init__ must store hyperparameters unchanged (check them where they "
                    f"are used) ({info})"
                )
            clone = cls(**params)
            assert clone.get_params() == params, f"{cls.__name__}(**obj.get_params()) must reproduce obj"

    def test_suggest_depends_only_on_trial_values(self) -> None:
        cls = self.configurable_class()
        for info, _, kwargs, trial_params in self._samples():
            replayed = cls.suggest(optuna.trial.FixedTrial(trial_params), info)  # type: ignore[attr-defined]
            assert replayed == kwargs, (
                f"{cls.__name__}.suggest gave {kwargs!r} from a study trial but {replayed!r} from a "
                f"FixedTrial with the same values {trial_params!r}; suggest must be a function of the "
                f"trial's values and the task ({info})"
            )

    def test_same_name_always_same_distribution(self) -> None:
        cls = self.configurable_class()
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        first: dict[str, tuple[optuna.distributions.BaseDistribution, TaskInfo]] = {}
        for info in self.search_infos():
            for _ in range(self.n_search_trials):
                trial = study.ask()
                cls.suggest(trial, info)  # type: ignore[attr-defined]
                study.tell(trial, 0.0)
                for name, dist in trial.distributions.items():
                    seen, where = first.setdefault(name, (dist, info))
                    assert dist == seen, (
                        f"{cls.__name__}.suggest uses {dist} for {name!r} with {info} but {seen} with "
                        f"{where}; one parameter name must always have one distribution (use another "
                        "name for another range)"
                    )
