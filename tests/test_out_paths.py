"""Files a command writes (`--out`, `--plot`) never replace the database, its models or the command's
own input, keep what a link, a device or a pipe is, and fail with one line."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sklearn.datasets import load_iris

import engine
from engine.cli import cli
from engine.spec import SearchSpec, TaskSpec


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a finished per-task search in ``s.db`` and ``iris.csv`` to predict."""
    folder = tmp_path_factory.mktemp("out_paths")
    spec = SearchSpec(
        name="s",
        tasks=[TaskSpec("sklearn", {"dataset": "iris"})],
        n_trials=1,
        strategies=["linear"],
        updaters=["gradient_descent"],
        warm_start=False,
    )
    engine.run(spec, storage=f"sqlite:///{folder / 's.db'}")
    iris = load_iris()
    rows = [",".join(iris.feature_names)] + [",".join(map(str, r)) for r in iris.data[:20]]
    (folder / "iris.csv").write_text("\n".join(rows) + "\n")
    return folder


def _invoke(folder: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--storage", f"sqlite:///{folder / 's.db'}"])


def _predict(folder: Path, out: Path | str) -> Result:
    return _invoke(folder, "predict", "--search", "s", "--csv", str(folder / "iris.csv"), "--out", str(out))


def test_the_database_its_journal_and_its_models_are_never_an_output(searched: Path) -> None:
    db = searched / "s.db"
    before = db.read_bytes()
    models = searched / "s.db.artifacts"
    kept = next(p for p in models.iterdir() if p.is_file())
    for out in (db, searched / "s.db-journal", kept, models / "new.csv"):
        for result in (_predict(searched, out), _invoke(searched, "report", "--out", str(out))):
            assert result.exit_code == 2, result.output
            assert "--out" in result.stderr and "write elsewhere" in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1
    assert db.read_bytes() == before
    assert [s.name for s in engine.searches(storage=f"sqlite:///{db}")] == ["s"]
    link, hard = searched / "db-link", searched / "db-hard-link"
    link.symlink_to(db)
    os.link(db, hard)
    for other in (link, hard):
        assert "is the database of --storage" in _predict(searched, other).stderr
    assert db.read_bytes() == before


def test_a_link_is_followed_and_the_file_it_names_replaced(searched: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert _predict(searched, link).exit_code == 0
    assert link.is_symlink() and real.read_text().startswith("prediction\n")


def test_a_pipe_is_written_to_not_replaced(searched: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    result = _predict(searched, fifo)
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert got and got[0].startswith("prediction\n") and len(got[0].splitlines()) == 21


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_write_that_fails_is_one_line(searched: Path) -> None:
    for result in (_predict(searched, "/dev/full"), _invoke(searched, "report", "--out", "/dev/full")):
        assert result.exit_code == 2
        assert (
            result.stderr.strip()
            == "Error: --out '/dev/full' cannot be written: No space left on device; write elsewhere"
        )
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode)


def test_report_to_standard_output(searched: Path) -> None:
    result = _invoke(searched, "report", "--out", "-")
    assert result.exit_code == 0
    assert result.stdout.lstrip().lower().startswith("<!doctype html>") and "Wrote" not in result.stdout
