"""Settings: the installed version, and the default storage URL read from the environment."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

__all__ = [
    "DEFAULT_STORAGE",
    "HEARTBEAT_ENV",
    "STORAGE_ENV",
    "VERSION",
    "heartbeat_interval",
    "mask_password",
    "resolve_storage",
]

DEFAULT_STORAGE = "sqlite:///stratagem.db"
STORAGE_ENV = "STRATAGEM_STORAGE"
HEARTBEAT_ENV = "STRATAGEM_HEARTBEAT"
DEFAULT_HEARTBEAT = 10


def mask_password(url: str) -> str:
    """``url`` with its password replaced by ``***``, for every message and log line."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if not at or ":" not in user:
        return url
    return f"{head}://{user.split(':', 1)[0]}:***@{host}{slash}{path}"


def heartbeat_interval() -> int:
    """Seconds between a running trial's heartbeats: ``$STRATAGEM_HEARTBEAT`` or 10.

    A trial whose worker has sent none for three intervals (the grace period) counts as dead: the next
    worker to look fails it, with the reason, and runs a trial in its place.
    """
    raw = os.environ.get(HEARTBEAT_ENV, "")
    try:
        return max(1, int(raw)) if raw.strip() else DEFAULT_HEARTBEAT
    except ValueError:
        return DEFAULT_HEARTBEAT


def resolve_storage(storage: str | None) -> str:
    """Return the storage URL to use: the argument, else ``$STRATAGEM_STORAGE``, else the default."""
    if storage:
        return storage
    return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


try:
    VERSION = version("stratagem")
except PackageNotFoundError:  # running from a source tree that is not installed
    VERSION = "0.0.0+unknown"
