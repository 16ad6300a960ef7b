"""Reading many studies' finished trials at once, from Optuna's own tables.

Transfer reads every other task's strategy study (:mod:`engine.transfer.sources`). Through Optuna's public
storage API that is a study-id lookup, a directions read and a ``get_all_trials`` per study, each a
session of several queries that builds every trial whole (system attributes, intermediate values, every
user attribute). Here the studies carrying one user attribute are listed in one query, and the trials of
many studies in a few more: per chunk of :data:`CHUNK` studies, one query each for the trials, their
parameters, their values, the asked-for user attributes and the studies' directions. What comes back is
what Optuna's ``_build_frozen_trial_from_trial_model`` would build from the same rows (parameters in the
external representation, in the order they were set; values through
``TrialValueModel.stored_repr_to_value``, which restores infinities), less what was not asked for. Like
:mod:`engine.storage.optuna_adapter` and :mod:`engine.storage.optuna_batch`, it is the place to mend after
an Optuna upgrade.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.study import StudyDirection
from optuna.trial import TrialState

__all__ = ["CHUNK", "StoredStudy", "StoredTrial", "StudyTrials", "read_trials", "studies_with_user_attr"]

CHUNK = 500
"""Studies per query: far below the bound-parameter limits of SQLite (999 before 3.32) and PostgreSQL."""


@dataclass(frozen=True)
class StoredStudy:
    """A study that has the user attribute asked for, and that attribute's value."""

    study_id: int
    name: str
    attr: Any


@dataclass(frozen=True)
class StoredTrial:
    """A trial as :class:`optuna.trial.FrozenTrial` would give it, less what was not read.

    Attributes:
        number: The trial's number in its study.
        state: Its state.
        params: Parameter values (external representation), in the order they were set.
        distributions: Their distributions.
        values: Objective values (infinities restored), or ``None`` when it has none.
        user_attrs: Those of its user attributes that were asked for.
    """

    number: int
    state: TrialState
    params: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    values: list[float] | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        """The single objective's value, as :attr:`optuna.trial.FrozenTrial.value` (which raises alike
        for a multi-objective trial)."""
        if self.values is None:
            return None
        if len(self.values) > 1:
            raise RuntimeError("This attribute is not available during multi-objective optimization.")
        return self.values[0]


@dataclass(frozen=True)
class StudyTrials:
    """A study's directions and its trials of the states asked for, in the order Optuna lists them."""

    directions: list[StudyDirection]
    trials: list[StoredTrial]


def studies_with_user_attr(storage: optuna.storages.RDBStorage, key: str) -> list[StoredStudy]:
    """Every study with the user attribute ``key``, by study id, in one query."""
    with _create_scoped_session(storage.scoped_session) as session:
        rows = (
            session.query(
                models.StudyModel.study_id,
                models.StudyModel.study_name,
                models.StudyUserAttributeModel.value_json,
            )
            .join(
                models.StudyUserAttributeModel,
                models.StudyUserAttributeModel.study_id == models.StudyModel.study_id,
            )
            .filter(models.StudyUserAttributeModel.key == key)
            .order_by(models.StudyModel.study_id)
            .all()
        )
    return [StoredStudy(int(sid), str(name), json.loads(value)) for sid, name, value in rows]


def read_trials(
    storage: optuna.storages.RDBStorage,
    study_ids: Iterable[int],
    *,
    states: Collection[TrialState],
    user_attrs: Collection[str],
) -> dict[int, StudyTrials]:
    """The directions and the trials in ``states`` of each of ``study_ids`` (missing ids are left out).

    Trials are ordered by id, as ``get_all_trials`` lists them; of their user attributes only the keys in
    ``user_attrs`` are read. Each chunk of studies is read in one session; a trial that reached one of
    ``states`` while it was being read is left to the next read.
    """
    out: dict[int, StudyTrials] = {}
    parsed: dict[str, BaseDistribution] = {}  # one object per distinct JSON: trials share their spaces
    for chunk in _chunks(sorted(set(study_ids)), CHUNK):
        with _create_scoped_session(storage.scoped_session) as session:
            out.update(_read_chunk(session, chunk, list(states), list(user_attrs), parsed))
    return out


def _read_chunk(
    session: Any,
    chunk: Sequence[int],
    states: list[TrialState],
    keys: list[str],
    parsed: dict[str, BaseDistribution],
) -> dict[int, StudyTrials]:
    T = models.TrialModel
    D = models.StudyDirectionModel
    directions: dict[int, dict[int, StudyDirection]] = {}
    for sid, objective, direction in session.query(D.study_id, D.objective, D.direction).filter(
        D.study_id.in_(chunk)
    ):
        directions.setdefault(int(sid), {})[int(objective)] = direction

    listed: list[tuple[int, int, int, TrialState]] = [
        (int(trial_id), int(sid), int(number), TrialState(state))
        for trial_id, sid, number, state in session.query(T.trial_id, T.study_id, T.number, T.state)
        .filter(T.study_id.in_(chunk), T.state.in_(states))
        .order_by(T.trial_id)
    ]
    params: dict[int, dict[str, Any]] = {trial_id: {} for trial_id, *_ in listed}
    dists: dict[int, dict[str, BaseDistribution]] = {trial_id: {} for trial_id, *_ in listed}
    values: dict[int, dict[int, float]] = {}
    attrs: dict[int, dict[str, Any]] = {trial_id: {} for trial_id, *_ in listed}

    def rows(*columns: Any) -> Any:
        """``columns`` (of one trial-owned table) of the chunk's trials in ``states``."""
        return (
            session.query(*columns)
            .join(T, columns[0] == T.trial_id)
            .filter(T.study_id.in_(chunk), T.state.in_(states))
        )

    P = models.TrialParamModel
    for trial_id, name, internal, dist_json in rows(
        P.trial_id, P.param_name, P.param_value, P.distribution_json
    ).order_by(P.param_id):
        if int(trial_id) not in params:
            continue  # it reached one of ``states`` after the trials were listed
        dist = parsed.get(dist_json)
        if dist is None:
            dist = parsed[dist_json] = json_to_distribution(dist_json)
        params[int(trial_id)][name] = dist.to_external_repr(internal)
        dists[int(trial_id)][name] = dist

    V = models.TrialValueModel
    for trial_id, objective, value, value_type in rows(V.trial_id, V.objective, V.value, V.value_type):
        values.setdefault(int(trial_id), {})[int(objective)] = V.stored_repr_to_value(value, value_type)

    if keys:
        U = models.TrialUserAttributeModel
        for trial_id, key, value_json in rows(U.trial_id, U.key, U.value_json).filter(U.key.in_(keys)):
            if int(trial_id) in attrs:
                attrs[int(trial_id)][key] = json.loads(value_json)

    found = {
        sid: StudyTrials([by_objective[k] for k in sorted(by_objective)], [])
        for sid, by_objective in directions.items()
    }
    for trial_id, sid, number, state in listed:
        by_objective = values.get(trial_id)
        if sid in found:
            found[sid].trials.append(
                StoredTrial(
                    number,
                    state,
                    params[trial_id],
                    dists[trial_id],
                    None if by_objective is None else _in_objective_order(by_objective),
                    attrs[trial_id],
                )
            )
    return found


def _in_objective_order(by_objective: dict[int, float]) -> list[float]:
    """As Optuna builds a trial's values: a list as long as its stored values, each at its objective."""
    out: list[float] = [0.0] * len(by_objective)
    for objective, value in by_objective.items():
        out[objective] = value
    return out


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
