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
    "heartbeat_problem",
    "mask_password",
    "resolve_storage",
]

DEFAULT_STORAGE = "sqlite:///stratagem.db"
STORAGE_ENV = "STRATAGEM_STORAGE"
HEARTBEAT_ENV = "STRATAGEM_HEARTBEAT"
DEFAULT_HEARTBEAT = 10
MAX_HEARTBEAT = 3600


def mask_password(url: str) -> str:
    """``url`` with its password replaced by ``***``, for every message and log line."""
    head, sep, rest = url.partition("://")
    if not sep:
        return url
    # the credentials end at the last '@' (a host holds none); a password may hold '/' or '@'
    user, at, host = rest.rpartition("@")
    if not at or ":" not in user or "/" in user.split(":", 1)[0]:
        return url
    return f"{head}://{user.split(':', 1)[0]}:***@{host}"


def heartbeat_interval() -> int:
    """Seconds between a running trial's heartbeats: ``$STRATAGEM_HEARTBEAT`` or 10.

    A trial whose worker has sent none for three intervals (the grace period) counts as dead: the next
    worker to look fails it, with the reason, and runs a trial in its place.
    """
    return (
        DEFAULT_HEARTBEAT
        if heartbeat_problem()
        else int(os.environ.get(HEARTBEAT_ENV, "").strip() or DEFAULT_HEARTBEAT)
    )


def heartbeat_problem() -> str | None:
    """What is wrong with ``$STRATAGEM_HEARTBEAT`` (commands that run trials refuse to start), or ``None``."""
    raw = os.environ.get(HEARTBEAT_ENV, "").strip()
    if not raw or (raw.isdigit() and 1 <= int(raw) <= MAX_HEARTBEAT):
        return None
    return (
        f"{HEARTBEAT_ENV}={raw!r}: give a whole number of seconds from 1 to {MAX_HEARTBEAT}, or unset it "
        f"for the default {DEFAULT_HEARTBEAT}"
    )


def resolve_storage(storage: str | None) -> str:
    """Return the storage URL to use: the argument, else ``$STRATAGEM_STORAGE``, else the default."""
    if storage:
        return storage
    return os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


try:
    VERSION = version("stratagem")
except PackageNotFoundError:  # running from a source tree that is not installed
    VERSION = "0.0.0+unknown"
