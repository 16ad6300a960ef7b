"""An SQLite file on a network share is refused before anything is written (its locks do not hold there)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import engine
from engine.cli import cli
from engine.errors import StorageError
from engine.spec import SearchSpec, TaskSpec
from engine.storage.database import ALLOW_NETWORK_ENV, check_local_file, filesystem_type

MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
server:/export/home /mnt/shared nfs4 rw,relatime,vers=4.2 0 0
//nas/team /mnt/shared/smb\\040share cifs rw 0 0
tmpfs /mnt/shared/local tmpfs rw 0 0
"""


def test_the_deepest_mount_point_decides() -> None:
    assert filesystem_type(Path("/home/me/study.db"), MOUNTS) == "ext4"
    assert filesystem_type(Path("/mnt/shared/runs/study.db"), MOUNTS) == "nfs4"
    assert filesystem_type(Path("/mnt/shared/smb share/study.db"), MOUNTS) == "cifs"
    assert filesystem_type(Path("/mnt/shared/local/study.db"), MOUNTS) == "tmpfs"
    assert filesystem_type(Path("/mnt/shared"), MOUNTS) == "nfs4"


def test_a_file_on_nfs_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_NETWORK_ENV, raising=False)
    with pytest.raises(StorageError, match=r"network file system \(nfs4\).*postgresql\+psycopg"):
        check_local_file(Path("/mnt/shared/runs/study.db"), MOUNTS)
    check_local_file(Path("/home/me/study.db"), MOUNTS)  # a local disk is fine
    monkeypatch.setenv(ALLOW_NETWORK_ENV, "1")
    check_local_file(Path("/mnt/shared/runs/study.db"), MOUNTS)  # the user said so


@pytest.mark.parametrize("command", [["best"], ["searches"], ["tasks", "--json"]])
def test_a_folder_given_as_the_sqlite_file_is_an_error_naming_it(tmp_path: Path, command: list[str]) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    result = CliRunner().invoke(cli, [*command, "--storage", f"sqlite:///{folder}"])
    assert result.exit_code == 2, result.output
    assert "is a folder, not a database file" in result.output and "runs/stratagem.db" in result.output
    assert list(folder.iterdir()) == []
    with pytest.raises(StorageError, match="is a folder"):
        engine.run(
            SearchSpec(name="s", tasks=(TaskSpec("sklearn", {"dataset": "iris"}),), n_trials=1),
            storage=f"sqlite:///{folder}",
        )
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "plain"),
    [
        ("sqlite:///file:study.db", "sqlite:///study.db"),
        ("sqlite:///file:study.db?mode=rwc&uri=true", "sqlite:///study.db"),
        ("sqlite:///file:{tmp}/runs/study.db?uri=true", "sqlite:///{tmp}/runs/study.db"),
    ],
)
def test_an_sqlite_uri_filename_is_refused_naming_the_plain_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, plain: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    url, plain = url.format(tmp=tmp_path), plain.format(tmp=tmp_path)
    spec = SearchSpec(
        name="s", tasks=(TaskSpec("sklearn", {"dataset": "iris"}),), n_trials=1, warm_start=False
    )
    with pytest.raises(StorageError, match=rf"is an SQLite URI filename .*Use the plain form {plain}$"):
        engine.run(spec, storage=url)  # before: it ran with no lock for many workers and no model store
    for command in (["run", "--no-progress", "spec.toml"], ["best"], ["searches"]):
        (tmp_path / "spec.toml").write_text(
            '[search]\nname = "s"\n[[tasks]]\nsource = "sklearn"\ndataset = "iris"\n'
        )
        result = CliRunner().invoke(cli, [*command, "--storage", url])
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
        assert f"Use the plain form {plain}" in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["runs", "spec.toml"]  # nothing created
    engine.run(spec.replace(n_trials=1), storage=plain)  # the plain form works
    assert engine.best(storage=plain, search="s")
