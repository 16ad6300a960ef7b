"""The competence map of a meta-mode search, end to end on SQLite: the study it stores, the command
that shows it (table, JSON, SVG plot), resuming, and bad ``[competence]`` tables refused by key before
anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import optuna
import pytest

import engine
from engine.errors import SpecError, StratagemError
from engine.meta import evaluate_adaptation
from engine.results import CompetenceMap, CompetencePoint, competence_svg
from engine.search import load_meta_search
from engine.spec import SearchSpec
from engine.storage import Database, SearchRow
from engine.vocabulary import ATTR, KIND_COMPETENCE
from plugins.meta import MAML, Digits, ProtoNet, Sinusoid

COMPETENCE = {
    "n_trials": 4,
    "tasks": 20,
    "threshold": 1.0,
    "parameters": {"amplitude": [0.5, 8.0], "k_shot": [2, 10]},
}
SPEC: dict[str, Any] = {
    "search": {"name": "sin", "mode": "meta", "n_trials": 2, "seed": 0},
    "family": {"name": "sinusoid", "k_shot": 5, "k_query": 5},
    "meta": {
        "strategies": ["maml", "fomaml"],
        "iterations": 40,
        "checkpoints": 2,
        "meta_batch": [4],
        "val_tasks": 20,
        "test_tasks": 30,
        "steps": [0, 1, 3],
    },
    "competence": COMPETENCE,
}


@pytest.fixture(scope="module")
def mapped(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('competence') / 'c.db'}"
    result = engine.run(SearchSpec.from_dict(SPEC), storage=url)
    assert result.trials_run == 2 + 4
    return url


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True)


def test_the_run_stores_a_competence_study_of_the_best_theta(mapped: str) -> None:
    study = optuna.load_study(study_name="sin/competence", storage=mapped)
    attrs = study.user_attrs[ATTR]
    (best,) = engine.meta_best(storage=mapped, search="sin")
    assert attrs["kind"] == KIND_COMPETENCE and attrs["theta_trial"] == best.trial
    assert attrs["strategy"] == best.strategy and attrs["steps"] == 3  # the best step count of the curve
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 4
    for t in trials:
        assert 0.5 <= t.params["amplitude"] <= 8.0 and 2 <= t.params["k_shot"] <= 10
        assert t.user_attrs[ATTR]["mean"] == t.value and t.user_attrs[ATTR]["n_tasks"] == 20


def test_each_point_is_the_stored_theta_adapted_on_meta_test_tasks_drawn_with_its_parameters(
    mapped: str,
) -> None:
    cmap = engine.competence(search="sin", storage=mapped)
    strategy, model, _, _ = load_meta_search("sin", storage=mapped)
    point = cmap.points[-1]
    family = Sinusoid(k_shot=5, k_query=5).explore(point.params)
    curve = evaluate_adaptation(strategy, model, family, steps=[0, 3], n_tasks=20, seed=0)
    assert curve.at(3).mean == pytest.approx(point.mean, rel=1e-6)
    assert curve.at(0).mean == pytest.approx(point.zero_steps, rel=1e-6)
    assert point.ci95 == pytest.approx(curve.at(3).ci95, rel=1e-6)
    assert point.competent == (point.mean <= 1.0)


def test_stratagem_competence_prints_the_table_the_json_and_the_plot(mapped: str, tmp_path: Path) -> None:
    cmap = engine.competence(search="sin", storage=mapped)
    out = _cli("competence", "--search", "sin", "--storage", mapped, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["study"] == "sin/competence" and data["parameters"]["k_shot"] == [2, 10]
    assert [p["mean"] for p in data["points"]] == pytest.approx([p.mean for p in cmap.points])
    plot = tmp_path / "map.svg"
    table = _cli("competence", "--search", "sin", "--storage", mapped, "--plot", str(plot))
    assert table.returncode == 0, table.stderr
    assert "amplitude" in table.stdout and "competent" in table.stdout and f"Wrote {plot}" in table.stdout
    root = ET.parse(plot).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    titles = [e.text or "" for e in root.iter("{http://www.w3.org/2000/svg}title")]
    # one dot per point in each of the two parameter panels and in the amplitude x k_shot panel
    assert len(titles) == 3 * len(cmap.points)
    assert all(f"trial {p.trial}:" in " ".join(titles) for p in cmap.points)
    bad = _cli("competence", "--search", "sin", "--storage", mapped, "--plot", str(tmp_path / "map.png"))
    assert bad.returncode == 2 and ".svg" in bad.stderr


def test_running_again_adds_no_point_and_other_bounds_are_refused(mapped: str) -> None:
    assert engine.run(SearchSpec.from_dict(SPEC), storage=mapped).trials_run == 0
    other = {**SPEC, "competence": {**COMPETENCE, "parameters": {"amplitude": [0.5, 4.0]}}}
    with pytest.raises(SpecError) as caught:
        engine.run(SearchSpec.from_dict(other), storage=mapped)
    assert "competence.parameters" in [k for k, _ in caught.value.problems]
    assert len(engine.competence(search="sin", storage=mapped).points) == 4


def test_a_search_without_a_map_says_how_to_get_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'plain.db'}"
    plain = {k: v for k, v in SPEC.items() if k != "competence"}
    engine.run(SearchSpec.from_dict({**plain, "search": {**SPEC["search"], "n_trials": 1}}), storage=url)
    with pytest.raises(StratagemError, match=r"\[competence\]"):
        engine.competence(search="sin", storage=url)
    with Database(url).session() as s:  # as a spec with a [competence] table stopped before its map
        row = SearchRow.by_name(s, "sin")
        assert row is not None
        row.spec = {**row.spec, "competence": COMPETENCE}
    with pytest.raises(StratagemError, match="no competence map yet: its run stopped before drawing it"):
        engine.competence(search="sin", storage=url)
    out = _cli("competence", "--search", "nope", "--storage", url)
    assert out.returncode == 2 and "no search 'nope'" in out.stderr


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"competence": {"n_trials": 0}}, "competence.n_trials"),
        ({"competence": {"tasks": 1}}, "competence.tasks"),
        ({"competence": {"sampler": "tpe"}}, "competence.sampler"),
        ({"competence": {"trials": 3}}, "competence.trials"),
        ({"competence": {"parameters": {}}}, "competence.parameters"),
        ({"competence": {"parameters": {"width": [1, 4]}}}, "competence.parameters.width"),
        ({"competence": {"parameters": {"amplitude": [0.5, 50.0]}}}, "competence.parameters.amplitude"),
        ({"competence": {"parameters": {"amplitude": [3.0, 1.0]}}}, "competence.parameters.amplitude"),
        ({"competence": {"parameters": {"k_shot": [1.5, 4]}}}, "competence.parameters.k_shot"),
        ({"competence": {"parameters": {"noise": "high"}}}, "competence.parameters.noise"),
        (
            {"family": {"name": "digits"}, "competence": {"parameters": {"n_way": [2, 30]}}},
            "competence.parameters.n_way",
        ),
        ({"search": {"name": "sin", "mode": "per_task"}}, "competence"),
    ],
)
def test_bad_competence_tables_are_refused_naming_the_key_before_anything_is_written(
    change: dict[str, Any], key: str, tmp_path: Path
) -> None:
    spec = {**SPEC, **change}
    if "competence" in change:
        spec["competence"] = {**COMPETENCE, **change["competence"]}
    if change.get("family", {}).get("name") == "digits":
        spec["meta"] = {**SPEC["meta"], "strategies": ["protonet"]}
    if spec["search"].get("mode") == "per_task":
        spec = {k: v for k, v in spec.items() if k not in ("family", "meta")}
        spec["tasks"] = [{"source": "sklearn", "dataset": "iris"}]
    db = tmp_path / "x.db"
    with pytest.raises(SpecError) as caught:
        engine.run(SearchSpec.from_dict(spec), storage=f"sqlite:///{db}")
    assert key in [k for k, _ in caught.value.problems], str(caught.value)
    assert not db.exists()


def test_a_theta_with_a_fixed_head_cannot_adapt_to_more_classes_but_prototypes_can() -> None:
    five, eight = Digits(n_way=5).info(), Digits(n_way=8).info()
    reason = MAML(network="conv", hidden=(8,)).cannot_adapt(five, eight)
    assert reason is not None and "5-way head" in reason
    assert MAML().cannot_adapt(five, Digits(n_way=3).info()) is None
    assert ProtoNet().cannot_adapt(five, eight) is None
    assert ProtoNet().cannot_adapt(five, Sinusoid().info()) is not None


@pytest.mark.postgres
def test_on_postgresql_a_map_needs_an_artifact_directory_and_then_runs(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRATAGEM_ARTIFACTS", raising=False)
    small = {
        **SPEC,
        "search": {**SPEC["search"], "name": "pg-map", "n_trials": 1},
        "competence": {**COMPETENCE, "n_trials": 2},
    }
    with pytest.raises(SpecError) as caught:
        engine.run(SearchSpec.from_dict(small), storage=postgres_url)
    assert "competence" in [k for k, _ in caught.value.problems] and "artifacts" in str(caught.value)
    assert "pg-map" not in [s.name for s in engine.searches(storage=postgres_url)]
    small["search"] = {**small["search"], "artifacts": str(tmp_path / "kept")}
    assert engine.run(SearchSpec.from_dict(small), storage=postgres_url).trials_run == 1 + 2
    cmap = engine.competence(search="pg-map", storage=postgres_url)
    assert len(cmap.points) == 2 and all(p.n_tasks == 20 for p in cmap.points)


def test_the_svg_of_a_one_parameter_map_has_one_panel_with_the_threshold_and_colours() -> None:
    points = [
        CompetencePoint(i, {"n_way": n}, acc, 0.01, acc, 50, acc >= 0.8, 3)
        for i, (n, acc) in enumerate([(2, 0.97), (5, 0.85), (8, 0.7)])
    ]
    cmap = CompetenceMap(
        "d",
        "d/competence",
        {"name": "digits"},
        "protonet",
        3,
        "accuracy",
        0,
        {"n_way": [2, 8]},
        0.8,
        points,
        0,
    )
    root = ET.fromstring(competence_svg(cmap))
    svg = "{http://www.w3.org/2000/svg}"
    dots = list(root.iter(f"{svg}circle"))
    assert len(dots) == 3  # one panel: no pair panel for a single parameter
    assert [d.get("fill") for d in dots] == ["#2a9d4b", "#2a9d4b", "#d1495b"]
    assert any(line.get("stroke-dasharray") for line in root.iter(f"{svg}line"))  # the threshold
    assert "query accuracy at least 0.8" in "".join(t.text or "" for t in root.iter(f"{svg}text"))


def test_deleting_a_meta_search_removes_its_meta_and_competence_studies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    spec = {**SPEC, "search": {**SPEC["search"], "n_trials": 1}, "competence": {**COMPETENCE, "n_trials": 1}}
    engine.run(SearchSpec.from_dict(spec), storage=url)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage=url)}
    assert {"sin/meta", "sin/competence"} <= names
    deleted = engine.delete_search("sin", storage=url)
    assert {"sin/meta", "sin/competence"} <= set(deleted.studies)
    assert optuna.get_all_study_summaries(storage=url) == []
