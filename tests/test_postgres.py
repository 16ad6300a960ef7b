"""Learning across tasks on a real PostgreSQL server: warm start, recommend and the cross-task
objective work on any SQLAlchemy URL, not only on the default SQLite file."""

from __future__ import annotations

import json
from typing import Any

import optuna
import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.results import best, defaults
from engine.search import run
from engine.spec import SearchSpec, TaskSpec

pytestmark = pytest.mark.postgres


def _spec(name: str, datasets: tuple[str, ...], **kw: Any) -> SearchSpec:
    options: dict[str, Any] = {"n_trials": 3, "strategies": ("linear",), "updaters": ("gradient_descent",)}
    options.update(kw)
    return SearchSpec(
        name=name, tasks=tuple(TaskSpec("sklearn", {"dataset": d}) for d in datasets), **options
    )


def test_warm_start_recommend_and_cross_task_on_postgresql(postgres_url: str) -> None:
    run(_spec("pg-history", ("iris", "wine")), storage=postgres_url)

    run(_spec("pg-target", ("breast_cancer",)), storage=postgres_url)
    [row] = best(storage=postgres_url, search="pg-target")
    assert row.warm_start is not None and row.warm_start.used is True
    assert {s.task for s in row.warm_start.sources} <= {"iris", "wine"}
    study = optuna.load_study(study_name="pg-target/breast_cancer", storage=postgres_url)
    assert study.user_attrs["stratagem.warm_start"]["used"] is True

    out = CliRunner().invoke(
        cli, ["recommend", "--dataset", "digits", "--top", "2", "--storage", postgres_url, "--json"]
    )
    assert out.exit_code == 0, out.output
    rec = json.loads(out.output)
    assert len(rec["configs"]) == 2 and rec["configs"][0]["strategy"] == "linear"

    run(_spec("pg-cross", ("iris", "wine"), mode="cross_task", n_trials=2), storage=postgres_url)
    [default] = defaults(storage=postgres_url, search="pg-cross")
    cross = optuna.load_study(study_name="pg-cross/cross_task", storage=postgres_url)
    assert default.loss == pytest.approx(cross.best_value)
