"""Keeping the best model, exporting it, and predicting on raw CSV rows with it."""

from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from optuna.trial import TrialState
from sqlalchemy import select

import engine
from engine.cli import cli
from engine.errors import ModelStoreError, TaskDataError
from engine.spec import EvaluationSpec, SearchSpec, TaskSpec
from engine.storage import ArtifactRow, Database, SearchRow, TaskRow
from engine.task import Split
from engine.trained import LoadedModel, ModelError, load_model
from tests.conftest import tiny_spec

LABELS = ("cat", "dog", "emu")


def write_table(path: Path, n: int = 120, seed: int = 0, regression: bool = False) -> Path:
    """A CSV file with a numeric, a categorical and an ignored column; string labels or a number."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a, b = rng.normal(), rng.normal()
        colour = ("red", "green", "blue")[int(rng.integers(3))]
        score = a + 0.5 * b + (1.0 if colour == "red" else 0.0) + 0.3 * rng.normal()
        target = f"{score:.6f}" if regression else LABELS[int(np.digitize(score, [-0.4, 0.8]))]
        rows.append([f"id{i}", f"{a:.6f}", f"{b:.6f}", colour, target])
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "a", "b", "colour", "target"])
        w.writerows(rows)
    return path


def csv_spec(tmp: Path, name: str = "exp", regression: bool = False, **kw: object) -> SearchSpec:
    write_table(tmp / "table.csv", regression=regression)
    defaults: dict[str, object] = {
        "n_trials": 3,
        "strategies": ("linear", "mlp"),
        "updaters": ("gradient_descent",),
        "warm_start": False,
        "evaluation": EvaluationSpec(classification="log_loss", regression="mse"),
    }
    defaults.update(kw)
    return SearchSpec(
        name=name,
        tasks=(TaskSpec("csv", {"path": "table.csv", "target": "target", "drop": ["id"]}),),
        base_dir=tmp,
        **defaults,  # type: ignore[arg-type]
    )


def held_out_rows(tmp: Path, url: str, task: str = "table") -> Path:
    """The task's stored test split, as raw CSV rows (the file has no missing values, so rows align)."""
    with Database(url).session() as s:
        split = Split.from_json(next(r for r in s.query(TaskRow) if r.name == task).split)
    with (tmp / "table.csv").open(newline="") as f:
        header, *rows = list(csv.reader(f))
    out = tmp / "test_rows.csv"
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows[i] for i in split.test)
    return out


def kept(url: str) -> list[ArtifactRow]:
    with Database(url).session() as s:
        return list(s.query(ArtifactRow))


REPRODUCE = textwrap.dedent(
    """
    import csv, sys
    import numpy as np
    import engine
    from engine.plugin import PluginHost
    model = engine.load_model(sys.argv[1])
    with open(sys.argv[2], newline="") as f:
        rows = list(csv.DictReader(f))
    evaluator = PluginHost.load().evaluators.get(model.card.origin["evaluator"])
    if model.kind == "classification":
        y = np.array([model.classes.index(r["target"]) for r in rows])
        output = model.predict_proba(rows)
    else:
        y = np.array([float(r["target"]) for r in rows])
        output = model.predict(rows)
    print(repr(float(evaluator(y, output))))
    """
)


def test_only_the_best_model_is_kept_beside_a_sqlite_file(tmp_path: Path, sqlite_url: str) -> None:
    result = engine.run(csv_spec(tmp_path, n_trials=4), storage=sqlite_url)
    rows = kept(sqlite_url)
    assert [r.trial_number for r in rows] == [result.best[0].trial]
    store = Path(str(tmp_path / "study.db") + ".artifacts")
    assert rows[0].store == str(store.resolve())
    assert sorted(p.name for p in store.iterdir()) == [rows[0].artifact_id]


def test_a_model_reloaded_in_a_fresh_process_reproduces_the_stored_test_value(
    tmp_path: Path, sqlite_url: str
) -> None:
    result = engine.run(csv_spec(tmp_path), storage=sqlite_url)
    best = result.best[0]
    out = engine.export(search="exp", task="table", out=tmp_path / "model", storage=sqlite_url)
    card = json.loads((out / "model.json").read_text())
    assert card["class_names"] == list(LABELS)
    assert card["encoding"]["columns"][2] == {"name": "colour", "levels": ["blue", "green", "red"]}
    assert card["origin"]["trial"] == best.trial
    proc = subprocess.run(
        [sys.executable, "-c", REPRODUCE, str(out), str(held_out_rows(tmp_path, sqlite_url))],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "STRATAGEM_LOAD_PLUGINS": ""},
    )
    assert float(proc.stdout.strip()) == best.test_value


def test_a_kfold_ensemble_exports_every_fold_and_reproduces_its_test_value(
    tmp_path: Path, sqlite_url: str
) -> None:
    spec = csv_spec(
        tmp_path,
        regression=True,
        keep="all",
        strategies=("linear",),
        evaluation=EvaluationSpec(regression="mse", validation="kfold", folds=3),
    )
    result = engine.run(spec, storage=sqlite_url)
    assert len(kept(sqlite_url)) == 3  # keep = "all": every finished trial's model
    out = engine.export(search="exp", out=tmp_path / "model", storage=sqlite_url)
    model = load_model(out)
    assert len(model.card.members) == 3
    with held_out_rows(tmp_path, sqlite_url).open(newline="") as f:
        rows = list(csv.DictReader(f))
    y = np.array([float(r["target"]) for r in rows])
    mse = float(np.mean((model.predict(rows) - y) ** 2))
    assert mse == pytest.approx(result.best[0].test_value, rel=1e-12)


def test_two_commands_go_from_run_to_predictions_with_the_original_labels(tmp_path: Path) -> None:
    write_table(tmp_path / "table.csv")
    (tmp_path / "spec.toml").write_text(
        textwrap.dedent(
            """
            [search]
            name = "cli"
            n_trials = 2
            strategies = ["linear"]
            updaters = ["gradient_descent"]
            warm_start = false

            [[tasks]]
            source = "csv"
            path = "table.csv"
            target = "target"
            drop = ["id"]
            """
        )
    )
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    ran = runner.invoke(
        cli, ["run", str(tmp_path / "spec.toml"), "--storage", url, "--no-progress", "--json"]
    )
    assert ran.exit_code == 0, ran.output
    new = write_table(tmp_path / "new.csv", n=15, seed=5)
    out = tmp_path / "predictions.csv"
    predicted = runner.invoke(
        cli,
        ["predict", "--search", "cli", "--storage", url, "--csv", str(new), "--out", str(out), "--proba"],
    )
    assert predicted.exit_code == 0, predicted.output
    with out.open(newline="") as f:
        table = list(csv.reader(f))
    assert table[0] == ["prediction", "proba_cat", "proba_dog", "proba_emu"]
    assert len(table) == 16 and {r[0] for r in table[1:]} <= set(LABELS)
    assert all(abs(sum(float(p) for p in r[1:]) - 1) < 1e-9 for r in table[1:])
    exported = runner.invoke(
        cli, ["export", "--search", "cli", "--task", "table", "--out", str(tmp_path / "m"), "--storage", url]
    )
    assert exported.exit_code == 0, exported.output
    again = runner.invoke(cli, ["predict", "--model", str(tmp_path / "m"), "--csv", str(new)])
    assert again.exit_code == 0, again.output
    assert [line for line in again.output.splitlines()][1:] == [r[0] for r in table[1:]]


@pytest.fixture
def iris_model(tmp_path: Path, sqlite_url: str) -> LoadedModel:
    engine.run(csv_spec(tmp_path, n_trials=1, strategies=("linear",)), storage=sqlite_url)
    return load_model(engine.export(search="exp", out=tmp_path / "model", storage=sqlite_url))


def test_extra_columns_are_ignored_and_row_order_kept(iris_model: LoadedModel) -> None:
    row = {"a": "0.1", "b": "-0.2", "colour": "red", "id": "x", "target": "?", "note": "anything"}
    assert iris_model.predict([row, {**row, "colour": "blue"}]).tolist() == [
        iris_model.predict([row])[0],
        iris_model.predict([{**row, "colour": "blue"}])[0],
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "purple"}, "unknown category 'purple'"),
        ({"a": ""}, "the value is missing"),
        ({"a": "NA"}, "the value is missing"),
        ({"b": "tall"}, "expected a number"),
    ],
)
def test_bad_cells_are_errors_naming_row_and_column(
    iris_model: LoadedModel,
    change: dict[str, str],
    message: str,
) -> None:
    row = {"a": "0.1", "b": "-0.2", "colour": "red"}
    with pytest.raises(TaskDataError, match=message) as err:
        iris_model.predict([row, {**row, **change}])
    assert "row 2, column" in str(err.value)


def test_a_missing_column_is_an_error(iris_model: LoadedModel) -> None:
    with pytest.raises(TaskDataError, match=r"lacks column\(s\) \['colour'\]"):
        iris_model.predict([{"a": 1.0, "b": 2.0}])


@pytest.mark.postgres
def test_export_without_a_kept_model_says_how_to_keep_one(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRATAGEM_ARTIFACTS", raising=False)
    engine.run(csv_spec(tmp_path, name="pg-none", n_trials=1, strategies=("linear",)), storage=postgres_url)
    with pytest.raises(ModelError, match="STRATAGEM_ARTIFACTS"):
        engine.export(search="pg-none", out=tmp_path / "model", storage=postgres_url)


@pytest.mark.postgres
def test_postgres_keeps_exports_and_reproduces(tmp_path: Path, postgres_url: str) -> None:
    spec = csv_spec(tmp_path, name="pg-export", artifacts="models")
    result = engine.run(spec, storage=postgres_url)
    rows = [r for r in kept(postgres_url) if r.store == str((tmp_path / "models").resolve())]
    assert [r.trial_number for r in rows] == [result.best[0].trial]
    out = engine.export(search="pg-export", out=tmp_path / "model", storage=postgres_url)
    proc = subprocess.run(
        [sys.executable, "-c", REPRODUCE, str(out), str(held_out_rows(tmp_path, postgres_url))],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(proc.stdout.strip()) == result.best[0].test_value


def test_overwrite_replaces_only_an_earlier_exports_files(tmp_path: Path, sqlite_url: str) -> None:
    engine.run(csv_spec(tmp_path, n_trials=2), storage=sqlite_url)
    out = tmp_path / "model"
    engine.export(search="exp", out=out, storage=sqlite_url)
    with pytest.raises(ModelError, match="already exists and is not empty"):
        engine.export(search="exp", out=out, storage=sqlite_url)
    (out / "model.json").write_text("stale", encoding="utf-8")
    engine.export(search="exp", out=out, storage=sqlite_url, overwrite=True)
    assert load_model(out).kind == "classification"
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    precious = tmp_path / "precious"
    (precious / "sub").mkdir(parents=True)
    (precious / "important.txt").write_text("data", encoding="utf-8")
    with pytest.raises(
        ModelError, match=r"holds files that are not an exported model \(important.txt, sub\)"
    ):
        engine.export(search="exp", out=precious, storage=sqlite_url, overwrite=True)
    assert sorted(p.name for p in precious.iterdir()) == ["important.txt", "sub"]
    with pytest.raises(ModelError, match="is a file, not a model folder"):
        engine.export(search="exp", out=precious / "important.txt", storage=sqlite_url, overwrite=True)
    assert (precious / "important.txt").read_text(encoding="utf-8") == "data"


def test_the_current_folder_is_never_emptied_by_export(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.run(csv_spec(tmp_path, n_trials=2), storage=sqlite_url)
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine", encoding="utf-8")
    monkeypatch.chdir(work)
    args = ["export", "--search", "exp", "--out", ".", "--overwrite", "--storage", sqlite_url]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "notes.txt" in result.output and "Traceback" not in result.output
    assert [p.name for p in work.iterdir()] == ["notes.txt"]


def test_concurrent_exports_to_one_folder_all_leave_a_whole_model(tmp_path: Path, sqlite_url: str) -> None:
    engine.run(csv_spec(tmp_path, n_trials=2), storage=sqlite_url)
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "engine.cli", "export", "--search", "exp", "--out", str(out), "--overwrite"]
    procs = [
        subprocess.Popen(
            [*cmd, "--storage", sqlite_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results] == [0, 0, 0], results
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.safetensors"]
    assert load_model(out).kind == "classification"


def test_a_full_model_store_stops_the_search_and_keeps_what_finished(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optuna.artifacts import FileSystemArtifactStore

    write, calls = FileSystemArtifactStore.write, []

    def full_after_one(self: FileSystemArtifactStore, artifact_id: str, content_body: Any) -> None:
        calls.append(artifact_id)
        if len(calls) > 1:  # as a full disk does: a partial file, then ENOSPC
            (Path(self._base_path) / artifact_id).write_bytes(b"")
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, artifact_id, content_body)

    monkeypatch.setattr(FileSystemArtifactStore, "write", full_after_one)
    spec = tiny_spec("full", n_trials=6, keep="all")
    with pytest.raises(
        ModelStoreError, match=r"cannot keep trial 1's model in the model store .*No space left"
    ):
        engine.run(spec, storage=sqlite_url)
    with Database(sqlite_url).session() as s:  # not "finished" short of its trials
        assert s.scalars(select(SearchRow).where(SearchRow.name == "full")).one().status == "failed"
    (best,) = engine.best(storage=sqlite_url, search="full")
    assert best.n_trials == 1  # the trial finished before is kept, and its model
    toml = tmp_path / "full.toml"
    toml.write_text(
        '[search]\nname = "full"\nn_trials = 6\nstrategies = ["linear"]\nupdaters = ["gradient_descent"]\n'
        'warm_start = false\nkeep = "all"\n[[tasks]]\nsource = "sklearn"\ndataset = "iris"\n'
    )
    result = CliRunner().invoke(cli, ["run", "--storage", sqlite_url, "--no-progress", str(toml)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert "No space left on device" in result.stderr and "Traceback" not in result.output
    monkeypatch.setattr(FileSystemArtifactStore, "write", write)  # space freed: the same run goes on
    engine.run(spec, storage=sqlite_url)
    assert engine.best(storage=sqlite_url, search="full")[0].n_trials == 6


KILLED_AFTER_UPLOAD = textwrap.dedent(
    """
    import os, sys
    from engine.cli import cli
    from engine.trained import ModelKeeper

    upload = ModelKeeper.upload

    def dying(self, *args, **kwargs):  # the model is stored, the trial still running: killed here
        upload(self, *args, **kwargs)
        os._exit(9)

    ModelKeeper.upload = dying
    cli(["run", sys.argv[1], "--storage", sys.argv[2], "--no-progress"])
    """
)

KILLED_BEFORE_ITS_ROW = textwrap.dedent(
    """
    import os, sys
    from engine.cli import cli
    from engine.trained import ModelKeeper

    # the process dies once its trial is stored and its model uploaded, before the model's row is written
    ModelKeeper.settle = lambda self, kept, sole=False: os._exit(9)
    cli(["run", sys.argv[1], "--storage", sys.argv[2], "--no-progress"])
    """
)


def _killable_spec(tmp_path: Path, keep: str) -> Path:
    write_table(tmp_path / "table.csv")
    spec = tmp_path / "spec.toml"
    spec.write_text(
        textwrap.dedent(
            f"""
            [search]
            name = "exp"
            n_trials = 1
            strategies = ["linear"]
            updaters = ["gradient_descent"]
            warm_start = false
            keep = "{keep}"
            [[tasks]]
            source = "csv"
            path = "table.csv"
            target = "target"
            drop = ["id"]
            """
        )
    )
    return spec


def _killed(script: str, spec: Path, url: str) -> None:
    died = subprocess.run(
        [sys.executable, "-c", script, str(spec), url],
        cwd=spec.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "STRATAGEM_HEARTBEAT": "1"},
    )
    assert died.returncode == 9, died.stderr


@pytest.mark.parametrize("keep", ["best", "all"])
def test_a_model_whose_process_died_before_recording_it_is_kept_by_the_next_run(
    tmp_path: Path, sqlite_url: str, keep: str
) -> None:
    spec = _killable_spec(tmp_path, keep)
    _killed(KILLED_BEFORE_ITS_ROW, spec, sqlite_url)
    store = Path(str(tmp_path / "study.db") + ".artifacts")
    (orphan,) = [p.name for p in store.iterdir()]
    assert kept(sqlite_url) == []
    with pytest.raises(ModelError, match="no trained model is kept for trial 0"):
        engine.export(search="exp", out=tmp_path / "before", storage=sqlite_url)

    again = CliRunner().invoke(cli, ["run", str(spec), "--storage", sqlite_url, "--no-progress"])
    assert again.exit_code == 0, again.output
    assert [(r.trial_number, r.artifact_id) for r in kept(sqlite_url)] == [(0, orphan)]
    out = engine.export(search="exp", out=tmp_path / "model", storage=sqlite_url)
    assert json.loads((out / "model.json").read_text())["origin"]["trial"] == 0


def test_the_model_file_of_a_trial_killed_before_it_was_stored_is_removed(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _killable_spec(tmp_path, "best")
    _killed(KILLED_AFTER_UPLOAD, spec, sqlite_url)
    store = Path(str(tmp_path / "study.db") + ".artifacts")
    (orphan,) = [p.name for p in store.iterdir()]
    time.sleep(3.5)  # three missed 1 s heartbeats: the killed trial is stale

    monkeypatch.setenv("STRATAGEM_HEARTBEAT", "1")
    again = CliRunner().invoke(cli, ["run", str(spec), "--storage", sqlite_url, "--no-progress"])
    assert again.exit_code == 0, again.output
    study = optuna.load_study(study_name="exp/table", storage=sqlite_url)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    rows = kept(sqlite_url)
    assert [r.trial_number for r in rows] == [1]
    assert sorted(p.name for p in store.iterdir()) == [rows[0].artifact_id] != [orphan]


def test_a_failed_trials_model_file_that_cannot_be_removed_is_left_with_a_warning(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _killable_spec(tmp_path, "best")
    _killed(KILLED_AFTER_UPLOAD, spec, sqlite_url)
    store = Path(str(tmp_path / "study.db") + ".artifacts")
    (orphan,) = [p.name for p in store.iterdir()]
    time.sleep(3.5)

    def refused(location: str, artifact_id: str, storage: str) -> bool:
        raise PermissionError(13, "Permission denied", str(Path(location) / artifact_id))

    monkeypatch.setattr("engine.trained._keeper.remove_artifact", refused)
    monkeypatch.setenv("STRATAGEM_HEARTBEAT", "1")
    again = CliRunner().invoke(cli, ["run", str(spec), "--storage", sqlite_url, "--no-progress"])
    assert again.exit_code == 0, again.output  # a cleanup that fails does not stop the search
    assert orphan in {p.name for p in store.iterdir()}
    assert "cannot remove failed trial 0's model file" in caplog.text
    assert [r.trial_number for r in kept(sqlite_url)] == [1]
