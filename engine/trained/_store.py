"""Where trained models are kept: Optuna's file-system artifact store, found the same way by every part.

The location is, in order: a directory the caller gives (spec key ``search.artifacts``, or
``--artifacts`` on the command line), ``$STRATAGEM_ARTIFACTS``, or beside a SQLite database file
(``study.db`` -> ``study.db.artifacts/``). A server database (PostgreSQL) has no "beside": without a
directory given, a search keeps no models, and ``stratagem export`` says how to turn it on.
"""

from __future__ import annotations

import os
from pathlib import Path

from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound

from engine.errors import StorageError

__all__ = ["ARTIFACTS_ENV", "open_store", "remove_artifact", "resolve_artifacts"]

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
    if storage.startswith("sqlite:///"):
        path = storage[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:":
            return str(Path(path + ".artifacts").expanduser().resolve())
    return None


def open_store(location: str) -> FileSystemArtifactStore:
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
    return FileSystemArtifactStore(location)


def remove_artifact(location: str, artifact_id: str) -> bool:
    """Remove one artifact's file; ``False`` if it was already gone (another worker removed it)."""
    try:
        FileSystemArtifactStore(location).remove(artifact_id)
    except (ArtifactNotFound, FileNotFoundError):
        return False
    return True
