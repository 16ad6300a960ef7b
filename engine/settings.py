"""Settings: the installed version, and the default storage URL read from the environment."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

__all__ = ["DEFAULT_STORAGE", "STORAGE_ENV", "VERSION", "resolve_storage"]

DEFAULT_STORAGE = "sqlite:///stratagem.db"
STORAGE_ENV = "STRATAGEM_STORAGE"


def resolve_storage(storage: str | None) -> str:
    """Return the storage URL to use: the argument, else ``$STRATAGEM_STORAGE``, else the default."""
    if storage:
        return storage
    return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


try:
    VERSION = version("stratagem")
except PackageNotFoundError:  # running from a source tree that is not installed
    VERSION = "0.0.0+unknown"
