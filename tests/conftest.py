"""Shared fixtures: real SQLite files, a real PostgreSQL database, small specs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.spec import SearchSpec, TaskSpec
from engine.storage.database import _engines

POSTGRES_ADMIN_URL = os.environ.get(
    "STRATAGEM_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """The engine trains with one thread per worker (spec key ``threads``); the kit tests do too."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file for one test."""
    return f"sqlite:///{tmp_path / 'study.db'}"


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """Create an empty PostgreSQL database named ``<prefix>_<random>``, yield its URL, drop it after.

    Skips when the server is unreachable, unless ``STRATAGEM_REQUIRE_POSTGRES=1`` (CI sets it).
    """
    sqlalchemy = pytest.importorskip("sqlalchemy")
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        admin.dispose()
        if os.environ.get("STRATAGEM_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        for write in (True, False):
            engine = _engines.pop((url, write), None)
            if engine is not None:
                engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database created for one test module and dropped after it, so that modules do not
    see each other's searches."""
    with fresh_postgres_database("stratagem_test") as url:
        yield url


@pytest.fixture
def make_spec() -> Any:
    """Factory of small, fast specs (see :func:`tiny_spec`)."""
    return tiny_spec


def tiny_spec(name: str = "tiny", datasets: tuple[str, ...] = ("iris",), **kw: Any) -> SearchSpec:
    """A fast search: bundled datasets, the linear strategy, gradient descent, a few trials."""
    defaults: dict[str, Any] = {
        "n_trials": 3,
        "strategies": ("linear",),
        "updaters": ("gradient_descent",),
        "warm_start": False,
    }
    defaults.update(kw)
    return SearchSpec(
        name=name, tasks=tuple(TaskSpec("sklearn", {"dataset": d}) for d in datasets), **defaults
    )
