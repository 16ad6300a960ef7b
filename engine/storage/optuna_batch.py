"""Claiming many trials of a study at once: one count, then RUNNING rows in one transaction.

The parallel driver (:mod:`engine.search.parallel`) claims a batch of trials at a time. Through Optuna's
public storage API each RUNNING trial with its parameters is its own transaction of a dozen round trips
(Optuna locks the study row, and checks every parameter's distribution against the study's history), and
counting a study's trials reads them all. Here a count is one ``GROUP BY`` and a batch of trials one
transaction, written into Optuna's own tables through its models, exactly as ``create_new_trial`` with a
template would (the same numbering under the same study-row lock, the same distribution check, once per
parameter name), with each trial's first heartbeat in the same transaction, so that no trial exists
without one. Like :mod:`engine.storage.optuna_adapter`, it is the place to mend after an Optuna upgrade.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import TrialState
from sqlalchemy import func

__all__ = ["Planned", "complete_trial", "count_trials", "create_running_trials"]

Planned = tuple[Mapping[str, Any], Mapping[str, BaseDistribution]]
"""A trial to create: its parameters (external values) and their distributions."""


def count_trials(storage: optuna.storages.RDBStorage, study_id: int) -> dict[TrialState, int]:
    """The study's trials by state, in one query."""
    with _create_scoped_session(storage.scoped_session) as session:
        rows = (
            session.query(models.TrialModel.state, func.count(models.TrialModel.trial_id))
            .filter(models.TrialModel.study_id == study_id)
            .group_by(models.TrialModel.state)
            .all()
        )
    return {TrialState(state): int(n) for state, n in rows}


def create_running_trials(
    storage: optuna.storages.RDBStorage, study_id: int, planned: Sequence[Planned]
) -> list[tuple[int, int]]:
    """Create one RUNNING trial per ``planned`` entry, with a first heartbeat; return (id, number) each.

    Raises:
        ValueError: A parameter's distribution is incompatible with the study's earlier trials.
    """
    if not planned:
        return []
    with _create_scoped_session(storage.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        first = (
            session.query(func.count(models.TrialModel.trial_id))
            .filter(models.TrialModel.study_id == study_id)
            .scalar()
        )
        now = datetime.now()
        trials = [
            models.TrialModel(
                study_id=study_id, number=first + k, state=TrialState.RUNNING, datetime_start=now
            )
            for k in range(len(planned))
        ]
        session.add_all(trials)
        session.flush()
        checked: dict[str, BaseDistribution] = {}
        for trial, (values, dists) in zip(trials, planned, strict=True):
            for name, dist in dists.items():
                if name not in checked:
                    previous = _previous_distribution(session, study_id, name)
                    if previous is not None:
                        check_distribution_compatibility(previous, dist)
                    checked[name] = dist
                else:
                    check_distribution_compatibility(checked[name], dist)
                session.add(
                    models.TrialParamModel(
                        trial_id=trial.trial_id,
                        param_name=name,
                        param_value=dist.to_internal_repr(values[name]),
                        distribution_json=distribution_to_json(dist),
                    )
                )
            session.add(models.TrialHeartbeatModel(trial_id=trial.trial_id))
        created = [(int(t.trial_id), int(t.number)) for t in trials]
    return created


def complete_trial(
    storage: optuna.storages.RDBStorage,
    trial_id: int,
    value: float,
    *,
    intermediate: Mapping[int, float],
    user_attrs: Mapping[str, Any],
) -> bool:
    """Store a RUNNING trial's intermediate values, user attributes and value, and complete it, in one
    transaction (through Optuna's public API that is one per call); ``False`` if it had already finished
    (another worker failed it)."""
    with _create_scoped_session(storage.scoped_session) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
        if trial.state.is_finished():
            return False
        for step, inter in sorted(intermediate.items()):
            stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(inter)
            old = models.TrialIntermediateValueModel.find_by_trial_and_step(trial, step, session)
            if old is None:
                session.add(
                    models.TrialIntermediateValueModel(
                        trial_id=trial_id, step=step, intermediate_value=stored, intermediate_value_type=kind
                    )
                )
            else:
                old.intermediate_value, old.intermediate_value_type = stored, kind
        for key, attr in user_attrs.items():
            row = models.TrialUserAttributeModel.find_by_trial_and_key(trial, key, session)
            if row is None:
                session.add(
                    models.TrialUserAttributeModel(trial_id=trial_id, key=key, value_json=json.dumps(attr))
                )
            else:
                row.value_json = json.dumps(attr)
        stored_value, value_type = models.TrialValueModel.value_to_stored_repr(value)
        session.add(
            models.TrialValueModel(trial_id=trial_id, objective=0, value=stored_value, value_type=value_type)
        )
        trial.state = TrialState.COMPLETE
        trial.datetime_complete = datetime.now()
    return True


def _previous_distribution(session: Any, study_id: int, name: str) -> BaseDistribution | None:
    record = (
        session.query(models.TrialParamModel)
        .join(models.TrialModel)
        .filter(models.TrialModel.study_id == study_id)
        .filter(models.TrialParamModel.param_name == name)
        .first()
    )
    return None if record is None else json_to_distribution(record.distribution_json)
