"""A meta-mode search end to end on SQLite: spec checks, the meta study, the best listing, θ kept as
safetensors and reloadable, and adaptation from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from sklearn.datasets import load_digits

import engine
from engine.errors import SpecError
from engine.report import write_report
from engine.search import load_meta_search
from engine.spec import SearchSpec
from engine.vocabulary import META_ARTIFACT_ATTR, WARM_START_ATTR
from plugins.meta import Digits

SPEC = {
    "search": {"name": "sin", "mode": "meta", "n_trials": 3, "seed": 0},
    "family": {"name": "sinusoid", "k_shot": 5, "k_query": 5},
    "meta": {
        "strategies": ["maml", "fomaml", "scratch"],
        "iterations": 60,
        "checkpoints": 2,
        "meta_batch": [4],
        "val_tasks": 20,
        "test_tasks": 50,
        "steps": [0, 1, 5],
    },
}


DIGITS_FAMILY = {"name": "digits", "n_way": 5, "k_shot": 1, "k_query": 5}


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('meta') / 'meta.db'}"
    result = engine.run(SearchSpec.from_dict(SPEC), storage=url)
    assert result.trials_run == 3
    return url


def test_the_best_listing_names_the_best_meta_strategy_with_its_meta_test_curve(searched: str) -> None:
    (best,) = engine.meta_best(storage=searched, search="sin")
    assert best.study == "sin/meta" and best.family["name"] == "sinusoid"
    assert best.strategy in ("maml", "fomaml", "scratch") and best.metric == "mse"
    assert [p["steps"] for p in best.test] == [0, 1, 5]
    assert all(p["n_tasks"] == 50 and p["ci95"] > 0 for p in best.test)
    report = json.loads(
        subprocess.run(
            [sys.executable, "-m", "engine.cli", "best", "--search", "sin", "--storage", searched, "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert report["meta"][0]["strategy"] == best.strategy and report["best"] == []


def test_the_best_theta_round_trips_through_the_artifact_store(searched: str) -> None:
    strategy, model, info, best = load_meta_search("sin", storage=searched)
    assert strategy.name == best.strategy and info.input_shape == (1,)
    assert Path(str(best.artifacts), str(best.artifact_id)).is_file()
    x = torch.linspace(-4, 4, 7).reshape(-1, 1)
    y = torch.sin(x)
    again = load_meta_search("sin", storage=searched)[1]
    assert torch.equal(strategy.adapt(model, x, y, 2)(x), strategy.adapt(again, x, y, 2)(x))


def test_adapt_from_the_command_line_predicts_every_query_row(searched: str, tmp_path: Path) -> None:
    (tmp_path / "support.csv").write_text("x,y\n-2,-0.9\n-1,-0.8\n0,0.0\n1,0.8\n2,0.9\n")
    (tmp_path / "query.csv").write_text("x\n0.5\n1.5\n-3\n")
    cmd = [sys.executable, "-m", "engine.cli", "adapt", "--search", "sin", "--storage", searched]
    cmd += [
        "--support",
        str(tmp_path / "support.csv"),
        "--target",
        "y",
        "--query",
        str(tmp_path / "query.csv"),
    ]
    out = subprocess.run([*cmd, "--steps", "3", "--json"], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert data["steps"] == 3 and data["n_support"] == 5 and len(data["predictions"]) == 3
    csv_out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    assert csv_out[0] == "prediction" and len(csv_out) == 4
    bad = subprocess.run(
        [*cmd[:-4], "--support", str(tmp_path / "query.csv"), "--target", "y"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "target column 'y' not found" in bad.stderr


def test_adapt_writes_its_json_to_out_when_given(searched: str, tmp_path: Path) -> None:
    (tmp_path / "support.csv").write_text("x,y\n-2,-0.9\n-1,-0.8\n0,0.0\n1,0.8\n2,0.9\n")
    out = tmp_path / "adapted.json"
    cmd = [sys.executable, "-m", "engine.cli", "adapt", "--search", "sin", "--storage", searched]
    cmd += ["--support", str(tmp_path / "support.csv"), "--target", "y", "--json", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert proc.stdout == ""
    assert len(json.loads(out.read_text(encoding="utf-8"))["predictions"]) == 5


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"family": {"name": "nope"}}, "family.name"),
        ({"family": {"name": "digits", "k_shot": 500}}, "family.k_shot"),
        ({"family": {"name": "digits", "n_way": 30}}, "family.n_way"),
        ({"family": {"name": "sinusoid", "k_shot": 0}}, "family.k_shot"),
        ({"meta": {"strategies": ["maml", "nope"]}}, "meta.strategies"),
        ({"meta": {"strategies": ["protonet"]}}, "meta.strategies"),
        ({"meta": {"steps": [-1]}}, "meta.steps"),
        ({"meta": {"updaters": ["nope"]}}, "meta.updaters"),
        ({"meta": {"options": {"maml": 3}}}, "meta.options"),
        ({"meta": {"options": {"protonet": {"members": 2}}}}, "meta.options.protonet"),
        ({"meta": {"options": {"maml": {"width": 8}}}}, "meta.options.maml.width"),
        ({"meta": {"options": {"reptile": {"inner_steps": "lots"}}}}, "meta.options.reptile.inner_steps"),
        ({"meta": {"options": {"maml": {"inner_steps": 10**6}}}}, "meta.options.maml.inner_steps"),
        ({"meta": {"options": {"maml": {"inner_lr": float("nan")}}}}, "meta.options.maml.inner_lr"),
        ({"meta": {"options": {"maml": {"first_order": 1}}}}, "meta.options.maml.first_order"),
        ({"meta": {"options": {"maml": {"network": "nope"}}}}, "meta.options.maml"),
        ({"meta": {"options": {"maml": {"hidden": [10**9]}}}}, "meta.options.maml.hidden"),
        ({"meta": {"options": {"maml": {"hidden": [4096] * 5}}}}, "meta.options.maml"),
        (
            {
                "family": DIGITS_FAMILY,
                "meta": {"strategies": ["protonet"], "options": {"protonet": {"transductive": -1}}},
            },
            "meta.options.protonet",
        ),
    ],
)
def test_bad_meta_specs_are_refused_naming_the_key(
    change: dict[str, object], key: str, tmp_path: Path
) -> None:
    with pytest.raises(SpecError) as caught:
        engine.run(SearchSpec.from_dict({**SPEC, **change}), storage=f"sqlite:///{tmp_path / 'x.db'}")
    assert key in [k for k, _ in caught.value.problems], str(caught.value)


DIGITS = {
    "search": {"name": "dig", "mode": "meta", "n_trials": 1, "seed": 0},
    "family": DIGITS_FAMILY,
    "meta": {
        "strategies": ["protonet"],
        "train_family": {"n_way": 20},
        "iterations": 100,
        "checkpoints": 2,
        "meta_batch": [2],
        "val_tasks": 50,
        "test_tasks": 200,
        "steps": [0],
    },
}


def test_a_convolutional_protonet_trained_on_20_way_episodes_beats_its_untrained_self(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'digits.db'}"
    engine.run(SearchSpec.from_dict(DIGITS), storage=url)
    strategy, model, info, best = load_meta_search("dig", storage=url)
    assert strategy.name == "protonet" and strategy.network == "conv" and info.n_outputs == 20
    family = Digits(n_way=5, k_shot=1, k_query=5)
    untrained = strategy.build(family.info(), torch.Generator().manual_seed(1))
    before = engine.evaluate_adaptation(strategy, untrained, family, steps=[0], n_tasks=200).at(0)
    after = best.test[0]
    again = engine.evaluate_adaptation(strategy, model, family, steps=[0], n_tasks=200).at(0)
    assert again.mean == pytest.approx(after["mean"])  # the kept θ is the one that was scored
    assert after["mean"] - after["ci95"] > before.mean + before.ci95, (after, before)
    assert after["mean"] > 0.2 + 3 * after["ci95"]  # 5-way chance is 20%
    digits = load_digits()  # adapt takes pixel rows as scikit-learn ships them (0 to 16), by name
    picked = np.concatenate([np.flatnonzero(digits.target == d)[:6] for d in (3, 5, 8)])
    support_idx, query_idx = picked[::6], np.setdiff1d(picked, picked[::6])
    rows = [dict(zip(digits.feature_names, map(float, digits.data[i]), strict=True)) for i in picked]
    by_index = dict(zip(picked.tolist(), rows, strict=True))
    support = [{**by_index[i], "digit": int(digits.target[i])} for i in support_idx]
    got = engine.adapt(
        search="dig",
        support=support,
        target="digit",
        query=[by_index[i] for i in query_idx],
        storage=url,
        steps=5,
    )
    assert got.steps == 0  # 1-shot: no leave-one-out prototype to fine-tune on, whatever is asked
    images = torch.as_tensor(digits.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    codes = torch.tensor([(3, 5, 8).index(int(digits.target[i])) for i in support_idx])
    expected = strategy.adapt(model, images[support_idx], codes, 0)(images[query_idx]).argmax(dim=-1)
    assert got.predictions == [(3, 5, 8)[int(i)] for i in expected]
    accuracy = np.mean(np.array(got.predictions) == digits.target[query_idx])
    assert accuracy > 0.6, accuracy  # 3-way chance is 33%


def test_meta_options_fix_a_strategy_s_arguments_and_are_not_sampled(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'digits.db'}"
    options = {"protonet": {"members": 2, "hidden": [16, 16], "transductive": 2, "finetune_lr": 1e-3}}
    spec = {**DIGITS, "meta": {**DIGITS["meta"], "iterations": 20, "test_tasks": 50, "options": options}}
    engine.run(SearchSpec.from_dict(spec), storage=url)
    strategy, model, _, best = load_meta_search("dig", storage=url)
    assert strategy.get_params() | {"hidden": tuple(strategy.hidden)} == {
        "network": "conv",
        "hidden": (16, 16),
        "shift": 0,
        "members": 2,
        "transductive": 2,
        "finetune_lr": 1e-3,
    }
    assert len(model.net.nets) == 2 and best.test[0]["mean"] > 0.2
    (trial,) = optuna.load_study(study_name="dig/meta", storage=url).trials
    assert "protonet.width" not in trial.params
    changed = {**spec, "meta": {**spec["meta"], "options": {"protonet": {"members": 3}}}}
    with pytest.raises(SpecError, match="explored options") as caught:
        engine.run(SearchSpec.from_dict(changed), storage=url)
    assert [k for k, _ in caught.value.problems] == ["meta.options"]
    assert len(optuna.load_study(study_name="dig/meta", storage=url).trials) == 1


@pytest.mark.parametrize(
    ("train_family", "key"),
    [({"n_way": 30}, "meta.train_family.n_way"), ({"name": "sinusoid"}, "meta.train_family")],
)
def test_bad_training_families_are_refused_naming_the_key(
    train_family: dict[str, object], key: str, tmp_path: Path
) -> None:
    spec = {**DIGITS, "meta": {**DIGITS["meta"], "train_family": train_family}}
    with pytest.raises(SpecError) as caught:
        engine.run(SearchSpec.from_dict(spec), storage=f"sqlite:///{tmp_path / 'x.db'}")
    assert key in [k for k, _ in caught.value.problems], str(caught.value)
    assert not (tmp_path / "x.db").exists()


def test_a_new_meta_search_starts_from_the_best_of_the_nearest_family_and_delete_removes_its_theta(
    searched: str,
) -> None:
    (source,) = engine.meta_best(storage=searched, search="sin")
    near = {
        **SPEC,
        "search": {**SPEC["search"], "name": "sin-near", "n_trials": 1},
        "family": {**SPEC["family"], "k_shot": 10},
    }
    engine.run(SearchSpec.from_dict(near), storage=searched)
    study = optuna.load_study(study_name="sin-near/meta", storage=searched)
    first = study.trials[0]
    assert (
        first.params == optuna.load_study(study_name="sin/meta", storage=searched).trials[source.trial].params
    )
    record = study.user_attrs[WARM_START_ATTR]
    assert record["used"] and record["enqueued"] == 1 and record["method"] == "meta_best"
    assert [s["search"] for s in record["sources"]] == ["sin"] and 0 < record["sources"][0]["distance"] < 1

    # a space without the source's meta-strategy: nothing is enqueued, and the record says why
    other = next(s for s in ("maml", "fomaml", "scratch") if s != source.strategy)
    apart = {
        **near,
        "search": {**near["search"], "name": "sin-apart"},
        "meta": {**SPEC["meta"], "strategies": [other]},
    }
    engine.run(SearchSpec.from_dict(apart), storage=searched)
    record = optuna.load_study(study_name="sin-apart/meta", storage=searched).user_attrs[WARM_START_ATTR]
    assert not record["used"] and "meta.strategies" in record["reason"]

    (kept,) = engine.meta_best(storage=searched, search="sin-near")
    assert kept.warm_start is not None and kept.warm_start["sources"][0]["search"] == "sin"
    shown = subprocess.run(
        [sys.executable, "-m", "engine.cli", "best", "--search", "sin-near", "--storage", searched],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "250"},
    ).stdout
    assert "from sin" in shown, shown
    theta = Path(str(kept.artifacts), str(kept.artifact_id))
    assert theta.is_file()
    engine.delete_search("sin-near", storage=searched)
    assert not theta.exists()
    assert Path(str(source.artifacts), str(source.artifact_id)).is_file()  # another search's θ stays


def test_the_search_listing_counts_a_meta_searchs_studies_trials_and_kept_theta(searched: str) -> None:
    (summary,) = [s for s in engine.searches(storage=searched) if s.name == "sin"]
    assert summary.studies == 1 and summary.trials == 3
    store = Path(searched.removeprefix("sqlite:///") + ".artifacts")
    trials = optuna.load_study(study_name="sin/meta", storage=searched).trials
    files = [store / t.user_attrs[META_ARTIFACT_ATTR] for t in trials if META_ARTIFACT_ATTR in t.user_attrs]
    assert summary.artifacts == len(files) >= 1
    assert summary.artifact_bytes == sum(p.stat().st_size for p in files)


def test_a_worker_joins_a_meta_search_from_its_stored_spec(searched: str, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "engine.cli", "worker", "--search", "sin", "--storage", searched]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len(optuna.load_study(study_name="sin/meta", storage=searched).trials) == 3  # it had its trials


def test_the_report_shows_a_meta_search(searched: str, tmp_path: Path) -> None:
    page = write_report(tmp_path / "r.html", storage=searched, search="sin").read_text()
    assert "Meta-learning: the best meta-strategy" in page and "Meta study" in page and "sin/meta" in page


def test_a_meta_strategy_that_cannot_build_for_the_family_is_refused_before_training(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["shop,a,b,label"] + [
        f"s{t},{x:.3f},{y:.3f},{int(x + y > 0)}" for t in range(6) for x, y in rng.normal(size=(12, 2))
    ]
    (tmp_path / "shops.csv").write_text("\n".join(lines) + "\n")
    family = {"name": "csv", "path": str(tmp_path / "shops.csv"), "task_column": "shop", "target": "label"}
    spec = {
        "search": {"name": "tab", "mode": "meta", "n_trials": 1, "seed": 0},
        "family": family | {"kind": "classification", "k_shot": 2, "k_query": 2},
        "meta": {"strategies": ["protonet", "maml"], "iterations": 4, "checkpoints": 1, "meta_batch": [2]}
        | {"val_tasks": 4, "test_tasks": 4, "steps": [0, 1]},
    }
    url = f"sqlite:///{tmp_path / 'tab.db'}"
    with pytest.raises(SpecError) as caught:
        engine.run(SearchSpec.from_dict(spec), storage=url)
    ((key, message),) = caught.value.problems
    assert key == "meta.strategies" and "'protonet' cannot build θ for family 'csv'" in message
    assert "needs image inputs" in message and engine.searches(storage=url) == []
    fixed = {**spec["meta"], "options": {"protonet": {"network": "mlp", "hidden": [8]}}}
    assert engine.run(SearchSpec.from_dict({**spec, "meta": fixed}), storage=url).trials_run == 1
    anyone = {k: v for k, v in spec["meta"].items() if k != "strategies"}  # every registered one that fits
    result = engine.run(
        SearchSpec.from_dict({**spec, "search": {**spec["search"], "name": "any"}, "meta": anyone}),
        storage=url,
    )
    assert result.trials_run == 1


def test_a_full_model_store_stops_a_meta_search_and_keeps_what_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a per-task search: the trial whose θ cannot be kept fails with the store's line, the search
    stops there marked failed, and the same command goes on once there is room."""
    import errno

    from optuna.artifacts import FileSystemArtifactStore
    from optuna.trial import TrialState

    from engine.errors import ModelStoreError
    from engine.vocabulary import FAILURE_ATTR

    write = FileSystemArtifactStore.write

    def full(self: FileSystemArtifactStore, artifact_id: str, content_body: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileSystemArtifactStore, "write", full)
    url = f"sqlite:///{tmp_path / 'full.db'}"
    small = {
        **SPEC,
        "search": {**SPEC["search"], "name": "fullmeta"},
        "meta": {**SPEC["meta"], "strategies": ["scratch"], "val_tasks": 4, "test_tasks": 4},
    }
    with pytest.raises(ModelStoreError, match=r"cannot keep trial 0's θ in the model store .*No space left"):
        engine.run(SearchSpec.from_dict(small), storage=url)  # before: every trial failed, the run went on
    (trial,) = optuna.load_study(study_name="fullmeta/meta", storage=url).get_trials(deepcopy=False)
    assert trial.state == TrialState.FAIL and "No space left on device" in trial.user_attrs[FAILURE_ATTR]
    assert [s.status for s in engine.searches(storage=url)] == ["failed"]
    monkeypatch.setattr(FileSystemArtifactStore, "write", write)  # space freed: the same run goes on
    again = engine.run(SearchSpec.from_dict(small), storage=url)
    trials = optuna.load_study(study_name="fullmeta/meta", storage=url).get_trials(deepcopy=False)
    # three trials complete; one whose meta-training diverged (a sampled inner_lr can be that large) fails
    # and is replaced, so the run may take more than three
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    assert again.trials_run == len(trials) - 1 >= 3
    assert [s.status for s in engine.searches(storage=url)] == ["finished"]
    assert engine.meta_best(storage=url, search="fullmeta")
