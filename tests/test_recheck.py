"""The final recheck (``[evaluation] recheck = N``): the top trials judged again by k-fold, the best mean
becomes the task's best, its model is kept, and the choice survives crashes, reruns and more trials."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from sqlalchemy import select

import engine
from engine.cli import cli
from engine.errors import SpecError
from engine.results import Recheck, best
from engine.search import recheck as recheck_module
from engine.search import run
from engine.spec import EvaluationSpec, load_spec
from engine.storage import ArtifactRow, BestRow, Database
from engine.trained import ModelError
from engine.vocabulary import RECHECK_ATTR, RECHECK_CLAIM_ATTR, strategy_study_name
from tests.conftest import tiny_spec
from tests.test_export import csv_spec, held_out_rows, kept

pytest.importorskip("sklearn")


def _spec(n_trials: int = 6, **kw: Any) -> Any:
    return tiny_spec(
        "rc", ("diabetes",), n_trials=n_trials, evaluation=EvaluationSpec(recheck=3, folds=3), **kw
    )


def _study(url: str) -> optuna.Study:
    return optuna.load_study(study_name=strategy_study_name("rc", "diabetes"), storage=url)


@pytest.fixture
def replays(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The trial numbers the recheck judges again by k-fold, in order (not the chosen model's retraining)."""
    seen: list[int] = []
    real = recheck_module.run_trial

    def counting(objective: Any, params: Any, number: int, **kw: Any) -> Any:
        if objective.validation == "kfold":
            seen.append(number)
        return real(objective, params, number, **kw)

    monkeypatch.setattr(recheck_module, "run_trial", counting)
    return seen


def test_the_best_three_fold_mean_among_the_top_trials_becomes_the_best(
    sqlite_url: str, replays: list[int]
) -> None:
    run(_spec(), storage=sqlite_url)
    study = _study(sqlite_url)
    state = study.user_attrs[RECHECK_ATTR]
    complete = sorted(
        (t for t in study.get_trials() if t.value is not None), key=lambda t: (-(t.value or 0), t.number)
    )
    top = [t.number for t in complete[:3]]
    assert sorted(int(k) for k in state["candidates"]) == sorted(top) == sorted(replays)
    assert state["validation_best"] == study.best_trial.number == top[0]
    means = {int(k): v["mean"] for k, v in state["candidates"].items()}
    for v in state["candidates"].values():
        assert len(v["folds"]) == 3 and v["mean"] == pytest.approx(np.mean(v["folds"]))
        assert v["stderr"] == pytest.approx(np.std(v["folds"], ddof=1) / np.sqrt(3))
    chosen = max(means, key=lambda n: means[n])  # r2: higher is better
    assert state["chosen"] == chosen
    (b,) = best(storage=sqlite_url, search="rc")
    assert b.trial == chosen
    judged = state["candidates"][str(chosen)]
    assert b.value == pytest.approx(means[chosen])  # what it was chosen by: the k-fold mean
    assert b.test_value == pytest.approx(judged["test_value"])  # its fold ensemble's, on the test split
    assert b.test_value != study.trials[chosen].user_attrs["stratagem"]["test_value"]
    assert b.recheck is not None and b.recheck.mean == pytest.approx(means[chosen])
    assert (b.recheck.folds, b.recheck.among, b.recheck.validation_best) == (3, 3, top[0])
    assert b.to_dict()["recheck"]["mean"] == pytest.approx(means[chosen])


def test_a_rerun_does_no_work_and_more_trials_recheck_only_the_new_candidates(
    sqlite_url: str, replays: list[int]
) -> None:
    run(_spec(), storage=sqlite_url)
    first = _study(sqlite_url).user_attrs[RECHECK_ATTR]
    replays.clear()
    run(_spec(), storage=sqlite_url)
    assert replays == [] and _study(sqlite_url).user_attrs[RECHECK_ATTR] == first

    run(_spec(n_trials=12), storage=sqlite_url)
    study = _study(sqlite_url)
    state = study.user_attrs[RECHECK_ATTR]
    assert state["n_trials"] == 12
    new = set(int(k) for k in state["candidates"]) - set(int(k) for k in first["candidates"])
    # Judged candidates are reused: an old one is trained again only as the chosen trial, to keep its
    # ensemble when a new trial's model took the kept slot meanwhile (which the resumed, reseeded
    # sampler's trials decide).
    assert sorted(r for r in replays if str(r) not in first["candidates"]) == sorted(new)
    assert all(r == state["chosen"] for r in replays if str(r) in first["candidates"]), replays
    for k in set(state["candidates"]) & set(first["candidates"]):
        assert state["candidates"][k] == first["candidates"][k]
    assert best(storage=sqlite_url, search="rc")[0].trial == state["chosen"]


def test_a_finished_search_run_again_with_recheck_set_is_rechecked_without_new_trials(
    sqlite_url: str, replays: list[int]
) -> None:
    plain = tiny_spec("rc", ("diabetes",), n_trials=6)
    run(plain, storage=sqlite_url)
    before = best(storage=sqlite_url, search="rc")[0]
    assert before.recheck is None and RECHECK_ATTR not in _study(sqlite_url).user_attrs
    result = run(_spec(), storage=sqlite_url)
    assert result.trials_run == 0 and len(_study(sqlite_url).trials) == 6
    state = _study(sqlite_url).user_attrs[RECHECK_ATTR]
    assert sorted(replays) == sorted(int(k) for k in state["candidates"]) and len(replays) == 3
    after = best(storage=sqlite_url, search="rc")[0]
    assert after.recheck is not None and after.trial == state["chosen"]
    assert after.recheck.validation_best == before.trial


def test_turning_the_recheck_off_is_refused_once_it_chose(sqlite_url: str) -> None:
    run(_spec(n_trials=4), storage=sqlite_url)
    chosen = best(storage=sqlite_url, search="rc")[0]
    plain = tiny_spec("rc", ("diabetes",), n_trials=4, evaluation=EvaluationSpec(folds=3))
    with pytest.raises(
        SpecError, match=r"evaluation\.recheck: .* chose task 'diabetes''s best by a final recheck"
    ):
        run(plain, storage=sqlite_url)  # before: best fell back to a trial whose model was gone
    assert best(storage=sqlite_url, search="rc")[0] == chosen


def test_a_best_row_left_behind_by_a_crash_is_repaired_to_the_recheck_choice(sqlite_url: str) -> None:
    run(_spec(), storage=sqlite_url)
    study = _study(sqlite_url)
    chosen = study.user_attrs[RECHECK_ATTR]["chosen"]
    with Database(sqlite_url).session() as s:  # as if killed after the recheck was stored, before the row
        row = s.query(BestRow).one()
        row.trial_number, row.value, row.notes = study.best_trial.number, study.best_value, ""
    assert best(storage=sqlite_url, search="rc")[0].recheck is None
    run(_spec(), storage=sqlite_url)
    b = best(storage=sqlite_url, search="rc")[0]
    assert b.trial == chosen and b.recheck is not None


def test_a_failing_candidate_is_left_out_and_the_others_still_count(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = recheck_module.run_trial
    failed: list[int] = []

    def flaky(objective: Any, params: Any, number: int, **kw: Any) -> Any:
        if not failed:
            failed.append(number)
            raise RuntimeError("out of memory on fold 2")
        return real(objective, params, number, **kw)

    monkeypatch.setattr(recheck_module, "run_trial", flaky)
    run(_spec(), storage=sqlite_url)
    state = _study(sqlite_url).user_attrs[RECHECK_ATTR]
    assert state["candidates"][str(failed[0])] == {"error": "RuntimeError: out of memory on fold 2"}
    scored = {int(k): v["mean"] for k, v in state["candidates"].items() if "mean" in v}
    assert len(scored) == 2 and state["chosen"] == max(scored, key=lambda n: scored[n])


def test_the_kept_model_is_the_chosen_trials_fold_ensemble_and_reproduces_its_test_value(
    tmp_path: Path, sqlite_url: str
) -> None:
    # a CSV task so that the held-out rows can be fed back raw; mse: lower is better
    for seed in range(6):  # find a seed where the recheck overrules the validation split
        url = f"sqlite:///{tmp_path / f'{seed}.db'}"
        spec = csv_spec(
            tmp_path,
            regression=True,
            n_trials=8,
            seed=seed,
            strategies=("linear",),
            evaluation=EvaluationSpec(regression="mse", recheck=4, folds=3),
        )
        result = engine.run(spec, storage=url)
        study = optuna.load_study(study_name="exp/table", storage=url)
        if result.best[0].trial != study.best_trial.number:
            break
    else:
        pytest.fail("the recheck never overruled the validation split in 6 seeds")
    b = result.best[0]
    assert [r.trial_number for r in kept(url)] == [b.trial]  # keep = "best": only the chosen trial's model
    model = engine.load_model(engine.export(search="exp", out=tmp_path / "model", storage=url))
    assert model.card.origin["trial"] == b.trial and len(model.card.members) == 3  # one per fold
    with held_out_rows(tmp_path, url).open(newline="") as f:
        rows = list(csv.DictReader(f))
    y = np.array([float(r["target"]) for r in rows])
    assert float(np.mean((model.predict(rows) - y) ** 2)) == pytest.approx(b.test_value, rel=1e-9)


@pytest.mark.postgres
def test_on_postgres_the_choice_is_stored_and_is_the_best(postgres_url: str) -> None:
    run(_spec(), storage=postgres_url)
    state = _study(postgres_url).user_attrs[RECHECK_ATTR]
    (b,) = best(storage=postgres_url, search="rc")
    assert b.trial == state["chosen"] and b.recheck is not None and b.recheck.among == 3


def test_the_parallel_driver_rechecks_on_its_workers(sqlite_url: str) -> None:
    pytest.importorskip("distributed")
    run(_spec(n_trials=4), storage=sqlite_url, n_jobs=2)
    state = _study(sqlite_url).user_attrs[RECHECK_ATTR]
    assert state["n_trials"] == 4 and len(state["candidates"]) == 3
    assert all("mean" in v for v in state["candidates"].values())
    assert best(storage=sqlite_url, search="rc")[0].trial == state["chosen"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("recheck = 1", "0 (off) or the number of top trials"),
        ('recheck = "3"', "0 (off) or the number of top trials"),
        ("recheck = 3", "per-task searches only"),
    ],
)
def test_bad_recheck_values_are_refused_naming_the_key(tmp_path: Path, extra: str, message: str) -> None:
    mode = 'mode = "cross_task"\n' if "per-task" in message else ""
    path = tmp_path / "spec.toml"
    path.write_text(
        f'[search]\nname = "x"\n{mode}\n[evaluation]\n{extra}\n\n'
        '[[tasks]]\nsource = "sklearn"\ndataset = "iris"\n'
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert message in dict(info.value.problems)["evaluation.recheck"]


def test_best_shows_how_the_recheck_chose(sqlite_url: str) -> None:
    run(_spec(), storage=sqlite_url)
    state = _study(sqlite_url).user_attrs[RECHECK_ATTR]
    table = CliRunner().invoke(cli, ["best", "--storage", sqlite_url], terminal_width=250)
    assert table.exit_code == 0 and "recheck" in table.output
    assert "over 3 folds, best of top 3" in table.output
    data = json.loads(CliRunner().invoke(cli, ["best", "--storage", sqlite_url, "--json"]).output)
    (row,) = data["best"] if isinstance(data, dict) else data
    assert row["recheck"]["validation_best"] == state["validation_best"] and row["trial"] == state["chosen"]


def test_ctrl_c_mid_recheck_leaves_the_trials_and_the_next_run_rechecks_at_once(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = recheck_module.run_trial

    def interrupted(objective: Any, params: Any, number: int, **kw: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(recheck_module, "run_trial", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(_spec(), storage=sqlite_url)
    study = _study(sqlite_url)
    assert RECHECK_ATTR not in study.user_attrs and len(study.trials) == 6
    assert best(storage=sqlite_url, search="rc")[0].trial == study.best_trial.number  # validation best

    monkeypatch.setattr(recheck_module, "run_trial", real)
    run(_spec(), storage=sqlite_url)
    state = _study(sqlite_url).user_attrs[RECHECK_ATTR]
    assert best(storage=sqlite_url, search="rc")[0].trial == state["chosen"]


def test_a_claim_left_by_a_killed_process_is_taken_over(sqlite_url: str) -> None:
    run(tiny_spec("rc", ("diabetes",), n_trials=6), storage=sqlite_url)  # no recheck yet
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    claim = {"host": socket.gethostname(), "pid": int(dead.stdout), "n_trials": 6, "at": time.time()}
    _study(sqlite_url).set_user_attr(RECHECK_CLAIM_ATTR, claim)  # as if killed mid-recheck just now
    run(_spec(), storage=sqlite_url)
    assert RECHECK_ATTR in _study(sqlite_url).user_attrs

    alive = dict(claim, pid=os.getppid())  # a live process (pytest's parent) on this host: left alone
    study = _study(sqlite_url)
    study.set_user_attr(RECHECK_ATTR, {})
    study.set_user_attr(RECHECK_CLAIM_ATTR, alive)
    run(_spec(), storage=sqlite_url)
    assert _study(sqlite_url).user_attrs[RECHECK_ATTR] == {}


def test_a_recheck_with_one_candidate_is_not_called_failed() -> None:
    alone = Recheck(folds=3, among=1, mean=None, stderr=None, validation_best=None)
    assert alone.summary(0) == "one finished trial: nothing to recheck it against, validation value kept"
    failed = Recheck(folds=3, among=3, mean=None, stderr=None, validation_best=None)
    assert failed.summary(0) == "top 3: every recheck failed, validation best kept"


def test_export_while_the_recheck_is_stale_says_to_finish_it(sqlite_url: str, tmp_path: Path) -> None:
    run(_spec(n_trials=4), storage=sqlite_url)
    with Database(sqlite_url).session() as s:  # as a run that added trials and stopped before their
        kept = {a.trial_number for a in s.scalars(select(ArtifactRow))}  # recheck leaves it: the best is
        row = s.scalars(select(BestRow)).one()  # the validation best, whose model the recheck dropped
        row.trial_number = next(t.number for t in _study(sqlite_url).trials if t.number not in kept)
    with pytest.raises(ModelError) as caught:
        engine.export(search="rc", out=tmp_path / "m", storage=sqlite_url)
    assert "final recheck has not covered its latest trials" in str(caught.value)
    assert "Run the search again with the same spec to finish the recheck" in str(caught.value)
