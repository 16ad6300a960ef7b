"""Databases the engine must not write into: another program's file, Optuna-named tables that are not
Optuna's, an SQLite database in memory. Each is refused with the fix, and nothing is added to it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from click.testing import CliRunner

from engine.cli import cli
from engine.errors import StorageError
from engine.search import run
from engine.search.join import stored_search_spec
from engine.storage import Database
from tests.conftest import fresh_postgres_database, tiny_spec


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as c:
        return sorted(r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


@pytest.mark.parametrize("table", ["studies (id, foo)", "invoices (id, total)"])
def test_another_programs_sqlite_file_is_refused_and_left_as_it_was(tmp_path: Path, table: str) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as c:
        c.execute(f"CREATE TABLE {table}")
        c.execute(f"INSERT INTO {table.split()[0]} VALUES (1, 2)")
    before, data = _tables(path), path.read_bytes()
    with pytest.raises(StorageError, match=r"tables of another program.*new file"):
        run(tiny_spec("x"), storage=f"sqlite:///{path}")
    assert _tables(path) == before
    assert path.read_bytes() == data  # not a byte changed: not even its journal mode (WAL) was set
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    with sqlite3.connect(path) as c:
        assert c.execute(f"SELECT * FROM {table.split()[0]}").fetchall() == [(1, 2)]


def test_a_file_that_optuna_made_is_used(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(study_name="theirs", storage=url).optimize(lambda t: t.suggest_float("x", 0, 1), 1)
    assert run(tiny_spec("mine", n_trials=1), storage=url).trials_run == 1
    assert len(optuna.load_study(study_name="theirs", storage=url).trials) == 1


@pytest.mark.postgres
def test_on_postgres_other_tables_are_fine_but_a_studies_table_that_is_not_optunas_is_refused() -> None:
    with fresh_postgres_database("stratagem_foreign") as url:
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE invoices (id int)")
        Database(url)  # a shared database: tables of its own beside the others
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE studies (id int, foo int)")
        with pytest.raises(StorageError, match="tables of another program"):
            run(tiny_spec("x", n_trials=1), storage=url)
        engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///"])
def test_an_sqlite_database_in_memory_is_refused_with_the_fix(url: str) -> None:
    with pytest.raises(StorageError, match=r"in memory.*sqlite:///stratagem\.db"):
        run(tiny_spec("x", n_trials=1), storage=url)
    with pytest.raises(StorageError, match=r"in memory.*sqlite:///stratagem\.db"):  # `stratagem worker`
        stored_search_spec("x", storage=url)


def test_a_damaged_database_is_one_line_that_names_the_database_s_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    url = f"sqlite:///{path}"
    run(tiny_spec("small"), storage=url)
    with sqlite3.connect(path) as c:  # the first page of each of Optuna's trial tables
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself, none in the WAL
        page = c.execute("PRAGMA page_size").fetchone()[0]
        roots = [r for (r,) in c.execute("SELECT rootpage FROM sqlite_master WHERE name LIKE 'trial%'")]
    with path.open("r+b") as f:  # garbage over them: Optuna's reads fail, the engine's own tables are whole
        for root in roots:
            f.seek((root - 1) * page)
            f.write(bytes(range(256)) * (page // 256))
    for command in (
        ["best"],
        ["report", "--out", str(tmp_path / "r.html")],
        ["delete", "--search", "small", "--yes"],
    ):
        result = CliRunner().invoke(cli, [*command, "--storage", url])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("Error: the study database failed: database disk image is malformed")
        assert len(result.stderr.splitlines()) == 1, result.stderr


def test_an_sqlite_file_that_cannot_be_opened_gets_an_sqlite_hint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'folder' / 's.db'}"
    with pytest.raises(StorageError, match=r"its folder exists and is writable") as caught:
        run(tiny_spec("x"), storage=url)
    assert "server" not in str(caught.value)


def test_bad_urls_are_one_line_without_the_password() -> None:
    for url in ("postgresql+psycopg://u:S3cret@127.0.0.1:notaport/x", "postgresql+nodriver://u:S3cret@h/db"):
        result = CliRunner().invoke(cli, ["best", "--storage", url])
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
        assert "S3cret" not in result.output and "u:***@" in result.stderr
