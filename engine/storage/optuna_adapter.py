"""The one place that reaches into Optuna beyond its everyday API.

Everything here uses public Optuna interfaces (``optuna.storages.RDBStorage``, ``BaseStorage`` methods);
it is kept in one module so that an Optuna upgrade that changes them is mended in one place:

* :func:`open_optuna_storage`: Optuna's relational storage on the engine's own database, with the same
  SQLite settings as the engine's connections.
* :func:`study_id`: the storage-level id of a study by name (``BaseStorage.get_study_id_from_name``),
  for reading trials through the storage without loading a :class:`optuna.Study` per source.
* :func:`planned_params`: a trial's parameters, including those of a waiting trial, which Optuna keeps
  in the ``fixed_params`` system attribute that ``enqueue_trial`` writes (there is no public accessor).
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial

from engine.storage.database import tune_sqlite

__all__ = ["open_optuna_storage", "planned_params", "study_id"]


def open_optuna_storage(url: str, *, create: bool = True) -> optuna.storages.RDBStorage:
    """Optuna's storage on the same database as the engine's tables, SQLite tuned alike.

    Args:
        url: The SQLAlchemy URL.
        create: Whether to create Optuna's tables if missing (readers pass ``False``).
    """
    kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_table_creation=not create)
    tune_sqlite(storage.engine)
    return storage


def study_id(storage: optuna.storages.BaseStorage, name: str) -> int:
    """The storage's id of the study called ``name``."""
    return storage.get_study_id_from_name(name)


def planned_params(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's parameters; for a waiting (enqueued) trial, the ones it was enqueued with."""
    return dict(trial.params) or dict(trial.system_attrs.get("fixed_params", {}))
