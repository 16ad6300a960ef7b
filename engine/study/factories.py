"""Optuna samplers and pruners built from a spec's ``[sampler]`` and ``[pruner]`` tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from engine.errors import SpecError

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "SAMPLER_DEFAULTS",
    "make_pruner",
    "make_sampler",
    "pruner_problem",
    "sampler_problem",
]


SAMPLERS: dict[str, Any] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "qmc": optuna.samplers.QMCSampler,
    "gp": optuna.samplers.GPSampler,
}
"""The samplers a spec's ``[sampler] name`` may give (``tpe`` by default)."""

SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {"tpe": {"n_startup_trials": 5}}
"""Options the engine gives a sampler unless the spec's ``[sampler]`` table sets them.

TPE starts model-based search after 5 random trials instead of Optuna's 10: on the training group of
``bench/warmstart.py`` (16 tasks, 20 trials, the conditional strategy / updater space) it cut the mean
regret after 20 trials from 0.101 to 0.030 in one run and from 0.117 to 0.042 in another, more than
``multivariate`` with ``group`` did; on the held-out group it made no difference (docs/benchmarks.md).
"""

PRUNERS: dict[str, Any] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "none": optuna.pruners.NopPruner,
}
"""The pruners a spec's ``[pruner] name`` may give (``median`` by default)."""


def make_sampler(
    config: Mapping[str, Any], seed: int, *, source: str = "<spec>"
) -> optuna.samplers.BaseSampler:
    """Build the Optuna sampler a spec's ``[sampler]`` table describes, seeded with ``seed``; options it
    leaves unset come from :data:`SAMPLER_DEFAULTS`."""
    name = config.get("name", "tpe")
    config = {**SAMPLER_DEFAULTS.get(name, {}), **config} if isinstance(name, str) else config
    sampler: optuna.samplers.BaseSampler = _build("sampler", SAMPLERS, "tpe", config, source, seed=seed)
    return sampler


def sampler_problem(sampler: optuna.samplers.BaseSampler) -> str | None:
    """Why ``sampler`` cannot sample (arguments of the wrong type fail only then), or ``None``.

    Runs a few trials of a float and a categorical parameter in memory, so that a bad ``[sampler]``
    table is refused with its key before anything is written, not trial after trial.
    """
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study = optuna.create_study(sampler=sampler, storage=optuna.storages.InMemoryStorage())
        for _ in range(3):
            trial = study.ask()
            x = trial.suggest_float("x", 0.0, 1.0)
            trial.suggest_categorical("c", ["a", "b"])
            study.tell(trial, x)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        optuna.logging.set_verbosity(level)
    return None


def pruner_problem(pruner: optuna.pruners.BasePruner) -> str | None:
    """Why ``pruner`` cannot judge trials (some arguments fail only then, such as Hyperband's
    ``reduction_factor = 1``), or ``None``: runs a few trials that report values, in memory."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study = optuna.create_study(
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=pruner,
            storage=optuna.storages.InMemoryStorage(),
        )
        for i in range(6):
            trial = study.ask()
            for step in range(1, 5):
                trial.report(float((i * 7 + step) % 5), step)
                if trial.should_prune():
                    break
            study.tell(trial, float(i % 3))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        optuna.logging.set_verbosity(level)
    return None


def make_pruner(config: Mapping[str, Any], *, source: str = "<spec>") -> optuna.pruners.BasePruner:
    """Build the Optuna pruner a spec's ``[pruner]`` table describes."""
    pruner: optuna.pruners.BasePruner = _build("pruner", PRUNERS, "median", config, source)
    return pruner


def _build(
    section: str,
    classes: Mapping[str, Any],
    default: str,
    config: Mapping[str, Any],
    source: str,
    **fixed: Any,
) -> Any:
    name = config.get("name", default)
    kwargs = {k: v for k, v in config.items() if k != "name"}
    try:
        return classes[name](**fixed, **kwargs)
    except (TypeError, ValueError) as exc:
        raise SpecError(
            f"cannot build {section} {name!r} with {kwargs}: {exc}", source=source, key=section
        ) from None
