"""Where a database's kept model files are, as recorded in its rows and studies.

A SQLite database keeps its models in the directory beside it (``study.db`` -> ``study.db.artifacts/``)
unless a spec or ``$STRATAGEM_ARTIFACTS`` names another. Rows record the directory a model went to, so a
SQLite file copied or moved elsewhere still names the old one: :func:`locate` decides where a recorded
model is read and whether this database may remove it. A meta study records its directory once, in
its own attribute, and each kept θ's id on its trial (:func:`meta_artifacts`).
"""

from __future__ import annotations

from pathlib import Path

import optuna

from engine.storage.database import sqlite_path
from engine.vocabulary import ATTR, META_ARTIFACT_ATTR

__all__ = ["BESIDE", "beside", "locate", "meta_artifacts"]

BESIDE = ".artifacts"
"""Suffix of the directory beside a SQLite database file that keeps its models."""


def beside(storage: str) -> str | None:
    """The directory beside the SQLite database file of ``storage`` (``None`` for a server database)."""
    path = sqlite_path(storage)
    return None if path is None else str(Path(str(path) + BESIDE).expanduser().resolve())


def locate(recorded: str, storage: str, artifact_id: str) -> tuple[str, bool]:
    """Where the database at ``storage`` reads a model recorded in directory ``recorded``, and whether it
    may remove the file there.

    A directory recorded as the one beside another SQLite file (the database was copied or moved) is
    replaced by this database's own when that holds the file (the models were copied or moved along).
    Otherwise the recorded directory is read, and its files are removed only if the database file it
    belongs to no longer exists: a copy never deletes the original's models. Directories given by a
    spec or ``$STRATAGEM_ARTIFACTS`` are shared by design and used as recorded.
    """
    own = beside(storage)
    if own is None or recorded == own or not recorded.endswith(BESIDE):
        return recorded, True
    if (Path(own) / artifact_id).is_file():
        return own, True
    return recorded, not Path(recorded[: -len(BESIDE)]).is_file()


def meta_artifacts(storage: optuna.storages.BaseStorage, name: str) -> list[tuple[str, str]]:
    """The θ files the meta study ``name`` kept (one per trial that was best when it ended), as
    ``(artifact_id, recorded directory)``; none if the study kept no θ."""
    study = optuna.load_study(study_name=name, storage=storage)
    location = study.user_attrs.get(ATTR, {}).get("artifacts")
    if not location:
        return []
    ids = (t.user_attrs.get(META_ARTIFACT_ATTR) for t in study.get_trials(deepcopy=False))
    return [(artifact_id, location) for artifact_id in ids if isinstance(artifact_id, str)]
