"""The command line as README.md and the ``--help`` texts describe it: ``python -m engine``, ``--json``
on every command, ``--out`` honoured with ``--json``, errors that name the fix, a resumed search's
progress, where a meta search keeps θ, and a warning when a search can keep no model."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

import engine
from engine.cli import cli
from engine.search import ProgressSink
from engine.trained import ModelError
from tests.conftest import tiny_spec


def test_python_dash_m_engine_is_the_stratagem_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "engine", "--version"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("stratagem, version ")


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("documented")
    url = f"sqlite:///{folder / 'db.sqlite'}"
    engine.run(tiny_spec("doc", n_trials=1), storage=url)
    return url, folder


def test_report_takes_json_and_says_where_the_report_went(searched: tuple[str, Path]) -> None:
    url, folder = searched
    out = folder / "report.html"
    res = CliRunner().invoke(cli, ["report", "--out", str(out), "--storage", url, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"report": str(out)}
    assert out.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


def test_predict_takes_json_to_standard_output_or_to_out(searched: tuple[str, Path]) -> None:
    url, folder = searched
    rows = folder / "rows.csv"
    columns = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
    rows.write_text(",".join(columns) + "\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", encoding="utf-8")
    args = ["predict", "--search", "doc", "--csv", str(rows), "--storage", url, "--json", "--proba"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert len(data["predictions"]) == 2 and all(isinstance(p, str) for p in data["predictions"])
    assert len(data["probabilities"]) == 2
    assert set(data["probabilities"][0]) == {"setosa", "versicolor", "virginica"}
    target = folder / "pred.json"
    res = CliRunner().invoke(cli, [*args, "--out", str(target)])
    assert res.exit_code == 0 and res.stdout == ""
    assert json.loads(target.read_text(encoding="utf-8")) == data


def test_an_earlier_export_in_out_is_refused_naming_overwrite(searched: tuple[str, Path]) -> None:
    url, folder = searched
    out = folder / "model"
    engine.export(search="doc", out=out, storage=url)
    with pytest.raises(ModelError, match="already exists and is not empty: it holds an earlier export; pass "):
        engine.export(search="doc", out=out, storage=url)
    res = CliRunner().invoke(cli, ["export", "--search", "doc", "--out", str(out), "--storage", url])
    assert res.exit_code == 2 and "pass --overwrite" in res.output


class _Recorder(ProgressSink):
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def task_started(self, key: str, total: int) -> None:
        self.events.append(("started", key, str(total)))

    def trial_finished(self, key: str) -> None:
        self.events.append(("trial", key))

    def task_finished(self, key: str) -> None:
        self.events.append(("finished", key))


def test_a_resumed_search_s_progress_counts_from_the_trials_already_finished(sqlite_url: str) -> None:
    engine.run(tiny_spec("resume", n_trials=2), storage=sqlite_url)
    sink = _Recorder()
    engine.run(tiny_spec("resume", n_trials=3), storage=sqlite_url, progress=sink)
    assert sink.events[0] == ("started", "iris", "3")
    assert sink.events.count(("trial", "iris")) == 3  # 2 stored + 1 run: the bar ends at 3 of 3
    assert sink.events[-1] == ("finished", "iris")


def test_a_search_that_can_keep_no_model_says_so(caplog: pytest.LogCaptureFixture) -> None:
    from engine.search.run import _warn_if_no_models_kept

    spec = tiny_spec("pg")
    server = SimpleNamespace(url="postgresql+psycopg://u@host/db", safe_url="postgresql+psycopg://u@host/db")
    with caplog.at_level(logging.WARNING, logger="stratagem"):
        _warn_if_no_models_kept(spec, server)  # type: ignore[arg-type]
    assert "keeps none" in caplog.text and "search.artifacts or $STRATAGEM_ARTIFACTS" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stratagem"):
        _warn_if_no_models_kept(spec.replace(artifacts="models"), server)  # type: ignore[arg-type]
    assert caplog.text == ""


META_SPEC = """
[search]
name = "sin-rel"
mode = "meta"
n_trials = 1
seed = 0
artifacts = "models"

[family]
name = "sinusoid"
k_shot = 5
k_query = 5

[meta]
strategies = ["maml"]
iterations = 10
checkpoints = 1
meta_batch = [4]
val_tasks = 5
test_tasks = 10
steps = [0, 1]
"""


def test_a_meta_search_keeps_theta_in_artifacts_relative_to_its_spec(
    tmp_path: Path, monkeypatch: Any
) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "meta.toml").write_text(META_SPEC, encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    engine.run(str(tmp_path / "specs" / "meta.toml"), storage=url)
    (best,) = engine.meta_best(storage=url, search="sin-rel")
    assert Path(str(best.artifacts)) == (tmp_path / "specs" / "models").resolve()
    assert (tmp_path / "specs" / "models" / str(best.artifact_id)).is_file()
    assert not (tmp_path / "elsewhere" / "models").exists()
