"""Where trained models are kept: Optuna's file-system artifact store, found the same way by every part.

The location is, in order: a directory the caller gives (spec key ``search.artifacts``, relative to
the spec's folder), ``$STRATAGEM_ARTIFACTS``, or beside a SQLite database file (``study.db`` ->
``study.db.artifacts/``). A server database (PostgreSQL) has no "beside": without a directory given, a
search keeps no models (``stratagem run`` warns), and ``stratagem export`` says how to turn it on.

Every kept model is read through :class:`ModelStore`, which hands out a file only once it is known to
be a safetensors file: a file that is gone or damaged is a :class:`~engine.trained.ModelError` naming
it, for ``stratagem export``, ``predict --search``, ``adapt`` and ``competence`` alike.

Rows record the directory a model went to; :func:`engine.storage.locations.locate` decides where a
recorded model is read and whether this database may remove it (a copied database never removes the
original's).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound

from engine.errors import StorageError
from engine.storage.locations import beside, locate
from engine.trained._format import RERUN, ModelError, weights_metadata

__all__ = ["ARTIFACTS_ENV", "ModelStore", "open_store", "remove_artifact", "resolve_artifacts"]

ARTIFACTS_ENV = "STRATAGEM_ARTIFACTS"


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
    return beside(storage)


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
