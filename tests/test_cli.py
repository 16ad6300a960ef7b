"""The ``stratagem`` command end to end, as a user runs it: real processes, real databases."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner

import engine.results
from engine.cli import cli

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
[search]
name = "cli"
n_trials = 2
strategies = ["linear"]
updaters = ["gradient_descent"]
warm_start = false

[[tasks]]
source = "sklearn"
dataset = "iris"

[[tasks]]
source = "csv"
path = "data.csv"
target = "price"
"""


def stratagem(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> Any:
    """Run the installed console script (falling back to ``python -m engine.cli``)."""
    script = Path(sys.executable).with_name("stratagem")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]
    full_env = {k: v for k, v in os.environ.items() if k != "STRATAGEM_STORAGE"}
    full_env.update(env or {})
    proc = subprocess.run([*cmd, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"stratagem {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@pytest.fixture
def project(tmp_path: Path) -> Path:
    rows = ["size,rooms,district,price"]
    for i in range(60):
        rows.append(f"{50 + i * 3},{1 + i % 4},{'north' if i % 3 else 'south'},{100 + i * 7 + (i % 5) * 3}")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "spec.toml").write_text(SPEC)
    return tmp_path


def test_run_then_query_on_the_default_sqlite_file(project: Path) -> None:
    out = stratagem("run", "spec.toml", cwd=project)
    assert (project / "stratagem.db").exists()
    assert "stratagem best --search cli" in out.stdout
    assert "A new study created" not in out.stderr
    # not a terminal: no bars, but a line on stderr as each task's trials end
    assert re.search(r"^task iris: 2 of 2 trials \(\d+ s\)$", out.stderr, re.M), out.stderr
    assert re.search(r"^task data: 2 of 2 trials", out.stderr, re.M), out.stderr

    best = json.loads(stratagem("best", "--json", cwd=project).stdout)["best"]
    assert {b["task"] for b in best} == {"iris", "data"}
    data = next(b for b in best if b["task"] == "data")
    assert data["evaluator"] == "r2" and data["strategy"] == "linear" and data["n_trials"] == 2
    assert set(data) >= {"strategy_params", "updater", "updater_params", "value", "test_value"}

    tasks = json.loads(stratagem("tasks", "--json", cwd=project).stdout)
    csv_task = next(t for t in tasks if t["name"] == "data")
    assert csv_task["kind"] == "regression" and csv_task["n_features"] == 4  # district one-hot: 2 columns
    searches = json.loads(stratagem("searches", "--json", cwd=project).stdout)
    assert searches[0]["name"] == "cli" and searches[0]["status"] == "finished"

    table = stratagem("best", "--task", "iris", cwd=project).stdout
    assert (
        "iris" in table
        and "linear" in table
        and "data" not in table.split("Best strategy")[1].split("\n", 1)[1]
    )

    study = optuna.load_study(study_name="cli/iris", storage=f"sqlite:///{project / 'stratagem.db'}")
    assert len(study.trials) == 2


def test_storage_from_the_environment_and_resume_with_more_trials(project: Path) -> None:
    url = f"sqlite:///{project / 'env.db'}"
    stratagem("run", "spec.toml", "--n-trials", "1", "--json", cwd=project, env={"STRATAGEM_STORAGE": url})
    out = stratagem(
        "run", "spec.toml", "--n-trials", "3", "--json", cwd=project, env={"STRATAGEM_STORAGE": url}
    )
    assert json.loads(out.stdout)["trials_run"] == 4  # two more on each of two tasks
    assert "trials (" not in out.stderr  # --json: no progress lines
    quiet = stratagem(
        "run", "spec.toml", "--n-trials", "4", "--no-progress", cwd=project, env={"STRATAGEM_STORAGE": url}
    )
    assert "stratagem best --search cli" in quiet.stdout and "trials (" not in quiet.stderr
    assert not (project / "stratagem.db").exists()


def test_a_bad_spec_is_one_clear_message_and_exit_status_2(project: Path) -> None:
    (project / "bad.toml").write_text(SPEC.replace('target = "price"', 'target = "cost"'))
    out = stratagem("run", "bad.toml", cwd=project, check=False)
    assert out.returncode == 2
    assert "bad.toml: tasks[1]" in out.stderr and "cost" in out.stderr and "price" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_bad_storage_url_is_explained(project: Path) -> None:
    out = stratagem("best", "--storage", "nosuchdb://x", cwd=project, check=False)
    assert out.returncode == 2 and "SQLAlchemy URL" in out.stderr


def test_queries_on_an_empty_storage_point_to_the_first_run(project: Path) -> None:
    out = stratagem("best", cwd=project)
    assert "stratagem run" in out.stdout


def test_plugins_lists_builtins_with_versions(project: Path) -> None:
    data = json.loads(stratagem("plugins", "--json", cwd=project).stdout)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["plugins.strategies"]["registers"]["strategies"] == ["linear", "mlp"]
    assert by_name["plugins.tasks"]["origin"] == "builtin"
    assert "stratagem_register_updaters" in by_name["plugins.updaters"]["hooks"]


@pytest.mark.postgres
def test_cli_on_postgresql(project: Path, postgres_url: str) -> None:
    stratagem("run", "spec.toml", "--storage", postgres_url, cwd=project)
    best = json.loads(stratagem("best", "--storage", postgres_url, "--json", cwd=project).stdout)["best"]
    assert {b["task"] for b in best} == {"iris", "data"}
    study = optuna.load_study(study_name="cli/data", storage=postgres_url)
    assert len(study.trials) == 2 and study.best_value == pytest.approx(
        next(b["value"] for b in best if b["task"] == "data")
    )
    # resuming on the server adds only the missing trials
    out = stratagem("run", "spec.toml", "--storage", postgres_url, "--n-trials", "3", "--json", cwd=project)
    assert json.loads(out.stdout)["trials_run"] == 2


def test_a_librarys_warning_is_one_line_shown_once(tmp_path: Path) -> None:
    (tmp_path / "q.toml").write_text(
        '[search]\nname = "q"\nn_trials = 2\nstrategies = ["linear"]\n[sampler]\nname = "qmc"\n'
        '[[tasks]]\nsource = "sklearn"\ndataset = "iris"\n'
    )
    proc = stratagem("run", "q.toml", "--storage", f"sqlite:///{tmp_path / 'q.db'}", cwd=tmp_path)
    lines = [line for line in proc.stderr.splitlines() if "QMCSampler is experimental" in line]
    assert lines == [lines[0]] and lines[0].startswith("Warning: ExperimentalWarning: "), proc.stderr
    assert "warnings.warn" not in proc.stderr and ".py:" not in proc.stderr


def test_best_for_a_task_that_is_not_stored_is_an_error_naming_the_stored_ones(project: Path) -> None:
    stratagem("run", "spec.toml", cwd=project)
    out = stratagem("best", "--task", "nope", cwd=project, check=False)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == "Error: no stored task 'nope'; stored tasks: data, iris"
    assert "iris" in stratagem("best", "--task", "iris", cwd=project).stdout


def test_output_into_a_pipe_closed_early_ends_quietly(project: Path) -> None:
    stratagem("run", "spec.toml", cwd=project)
    stratagem("export", "--search", "cli", "--task", "iris", "--out", "model", cwd=project)
    row = "5.1,3.5,1.4,0.2"
    (project / "rows.csv").write_text(
        "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n" + f"{row}\n" * 50_000
    )
    script = Path(sys.executable).with_name("stratagem")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]
    proc = subprocess.Popen(
        [*cmd, "predict", "--model", "model", "--csv", "rows.csv"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == "prediction\n"
    proc.stdout.close()  # as `| head -1` does
    stderr = proc.stderr.read()
    assert proc.wait(timeout=600) == 1, stderr  # click's status for a broken pipe
    assert stderr == ""


def test_ctrl_c_in_any_command_exits_130_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(**_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.results, "tasks", interrupted)
    result = CliRunner().invoke(cli, ["tasks", "--storage", "sqlite:///unused.db"])
    assert result.exit_code == 130
    assert result.output.strip() == "Interrupted."


NOISY_PLUGIN = """
import engine
from plugins.strategies import LinearModel

print("noisy plugin: importing")

class Noisy(LinearModel):
    name = "noisy"

    def build(self, info):
        print("noisy: building a model")
        return super().build(info)

@engine.hookimpl
def stratagem_register_strategies(registry):
    registry.add(Noisy)
"""


def test_what_plugins_print_goes_to_stderr_so_json_output_stays_json(tmp_path: Path) -> None:
    (tmp_path / "noisy.py").write_text(NOISY_PLUGIN)
    spec = SPEC.replace('strategies = ["linear"]', 'strategies = ["noisy"]\nplugins = ["noisy.py"]')
    (tmp_path / "spec.toml").write_text(
        spec.split("[[tasks]]")[0] + '[[tasks]]\nsource = "sklearn"\ndataset = "iris"\n'
    )
    out = stratagem("run", "spec.toml", "--json", cwd=tmp_path)
    assert json.loads(out.stdout)["search"] == "cli"
    assert "noisy plugin: importing" in out.stderr and "noisy: building a model" in out.stderr
    listed = stratagem("plugins", "--plugin", "noisy.py", "--json", cwd=tmp_path)
    (noisy,) = [p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "noisy.py"]
    assert noisy["registers"] == {"strategies": ["noisy"]} and "noisy plugin: importing" in listed.stderr
