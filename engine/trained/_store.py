"""Where trained models are kept: Optuna's file-system artifact store, found the same way by every part.

The location is, in order: a directory the caller gives (spec key ``search.artifacts``, or
``--artifacts`` on the command line), ``$STRATAGEM_ARTIFACTS``, or beside a SQLite database file
(``study.db`` -> ``study.db.artifacts/``). A server database (PostgreSQL) has no "beside": without a
directory given, a search keeps no models, and ``stratagem export`` says how to turn it on.

Every kept model is read through :class:`ModelStore`, which hands out a file only once it is known to
be a safetensors file: a file that is gone or damaged is a :class:`~engine.trained.ModelError` naming
it, for ``stratagem export``, ``predict --search``, ``adapt`` and ``competence`` alike.

Rows record the directory a model went to. A SQLite file copied or moved elsewhere still holds the old
directory's path, so :func:`locate` decides where a recorded model is read and whether this database may
remove it: a copy reads its own ``.artifacts`` directory when that holds the file, and never removes a
model from the directory beside another database file that still exists.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound

from engine.errors import StorageError
from engine.trained._format import RERUN, ModelError, weights_metadata

__all__ = ["ARTIFACTS_ENV", "ModelStore", "locate", "open_store", "remove_artifact", "resolve_artifacts"]

ARTIFACTS_ENV = "STRATAGEM_ARTIFACTS"
BESIDE = ".artifacts"
"""Suffix of the directory beside a SQLite database file that keeps its models."""


def resolve_artifacts(storage: str, artifacts: str | Path | None = None) -> str | None:
    """The artifact directory for ``storage`` (a resolved URL), or ``None`` when none is configured.

    Args:
        storage: The storage URL.
        artifacts: A directory given by the spec or the command line; wins over the rest.
    """
    if artifacts:
        return str(Path(artifacts).expanduser().resolve())
    if os.environ.get(ARTIFACTS_ENV):
        return str(Path(os.environ[ARTIFACTS_ENV]).expanduser().resolve())
    return _beside(storage)


def _beside(storage: str) -> str | None:
    """The directory beside the SQLite database file of ``storage`` (``None`` for a server database)."""
    if storage.startswith("sqlite:///"):
        path = storage[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:":
            return str(Path(path + BESIDE).expanduser().resolve())
    return None


def locate(recorded: str, storage: str, artifact_id: str) -> tuple[str, bool]:
    """Where the database at ``storage`` reads a model recorded in directory ``recorded``, and whether it
    may remove the file there.

    A directory recorded as the one beside another SQLite file (the database was copied or moved) is
    replaced by this database's own when that holds the file (the models were copied or moved along).
    Otherwise the recorded directory is read, and its files are removed only if the database file it
    belongs to no longer exists: a copy never deletes the original's models. Directories given by a
    spec or ``$STRATAGEM_ARTIFACTS`` are shared by design and used as recorded.
    """
    own = _beside(storage)
    if own is None or recorded == own or not recorded.endswith(BESIDE):
        return recorded, True
    if (Path(own) / artifact_id).is_file():
        return own, True
    return recorded, not Path(recorded[: -len(BESIDE)]).is_file()


class ModelStore(FileSystemArtifactStore):
    """Optuna's file-system artifact store at ``location``, whose reader checks a model before handing
    it out.

    Raises (from :meth:`open_reader`):
        ModelError: The file is gone, or corrupted (not a safetensors file, or cut short).
    """

    def __init__(self, location: str | Path) -> None:
        super().__init__(location)
        self.location = str(location)

    def open_reader(self, artifact_id: str) -> BinaryIO:
        path = Path(self.location) / artifact_id
        try:
            reader = super().open_reader(artifact_id)
        except ArtifactNotFound:
            raise ModelError(
                f"the kept model file {str(path)!r} is gone (was the artifact directory moved or "
                f"cleaned?); {RERUN}"
            ) from None
        except OSError as exc:
            raise ModelError(f"cannot read the kept model file {str(path)!r}: {exc}; {RERUN}") from None
        try:
            weights_metadata(path, RERUN)
        except ModelError:
            reader.close()
            raise
        return reader


def open_store(location: str) -> ModelStore:
    """Optuna's file-system artifact store at ``location``, created if missing.

    Raises:
        StorageError: The directory cannot be created.
    """
    try:
        Path(location).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the artifact directory {location!r} for trained models: {exc}; set "
            f"search.artifacts or ${ARTIFACTS_ENV} to a writable directory"
        ) from None
    return ModelStore(location)


def remove_artifact(location: str, artifact_id: str, storage: str) -> bool:
    """Remove one artifact's file recorded in ``location`` by the database at ``storage``; ``False`` if
    it was already gone (another worker removed it) or is not this database's to remove (:func:`locate`)."""
    location, owned = locate(location, storage, artifact_id)
    if not owned:
        return False
    try:
        FileSystemArtifactStore(location).remove(artifact_id)
    except (ArtifactNotFound, FileNotFoundError):
        return False
    return True
