"""Reading results back (engine.results): records built from rows written straight into a SQLite file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.configuration import Configuration
from engine.errors import UnknownNameError
from engine.results import best, best_report
from engine.storage import BestRow, Database, DefaultRow, SearchRow, SearchTaskRow, TaskRow, reads
from engine.warmstarter import SourceUse, WarmStartRecord

LINEAR = Configuration("linear", {"l2": 0.1}, "gradient_descent", {"lr": 0.01})
WARM = WarmStartRecord(
    used=True,
    method="transfer",
    reason="2 other classification task(s) with history",
    sources=(SourceUse("wine", "old", "old/wine", "f" * 64, 0.2, 0.7, 4),),
    enqueued=1,
)


def _task(name: str, fingerprint: str) -> TaskRow:
    return TaskRow(
        fingerprint=fingerprint,
        name=name,
        kind="classification",
        source="sklearn",
        options={"dataset": name},
        n_samples=150,
        n_features=4,
        n_classes=3,
        meta_features={},
        split={},
    )


@pytest.fixture
def stored(sqlite_url: str) -> str:
    """Search ``s`` with tasks ``iris`` (warm-started) and ``wine``, and a best default."""
    db = Database(sqlite_url)
    with db.session() as s:
        search = SearchRow(name="s", spec={"search": {"n_trials": 3, "seed": 0}})
        s.add(search)
        for key, fp, warm in (("iris", "a" * 64, WARM.to_dict()), ("wine", "b" * 64, None)):
            link = SearchTaskRow(
                search=search,
                task=_task(key, fp),
                key=key,
                study_name=f"s/{key}",
                evaluator="accuracy",
                direction="maximize",
                warm_start=warm,
            )
            s.add(link)
            best_row = BestRow(search_task=link, trial_number=2, value=0.9, test_value=0.8, n_trials=3)
            best_row.configuration = LINEAR
            s.add(best_row)
        s.flush()
        default = DefaultRow(
            search_id=search.id,
            study_name="s/cross_task",
            kind="classification",
            trial_number=1,
            loss=0.25,
            per_task={"iris": {"loss": 0.2, "test_loss": 0.3}, "wine": {"loss": 0.3, "test_loss": 0.1}},
            n_trials=3,
            task_evaluations=6,
        )
        default.configuration = LINEAR
        s.add(default)
    return sqlite_url


def test_a_best_row_holds_its_configuration_and_a_typed_warm_start_record(stored: str) -> None:
    rows = {b.task: b for b in best(storage=stored)}

    assert rows["iris"].config == LINEAR and rows["iris"].strategy_params == {"l2": 0.1}
    assert rows["iris"].warm_start == WARM
    assert rows["wine"].warm_start is None


def test_best_json_keeps_the_configuration_fields_at_the_top_level(stored: str) -> None:
    data = best(storage=stored, task="iris")[0].to_dict()

    assert list(data) == [
        "search", "task", "fingerprint", "study", "trial", "strategy", "strategy_params", "updater",
        "updater_params", "evaluator", "direction", "value", "test_value", "n_trials", "updated_at",
        "warm_start", "recheck",
    ]  # fmt: skip
    assert data["strategy_params"] == {"l2": 0.1} and data["updater"] == "gradient_descent"
    assert data["warm_start"] == WARM.to_dict()


def test_the_report_joins_best_rows_and_the_cross_task_defaults(stored: str) -> None:
    report = best_report(storage=stored, search="s")

    assert [b.task for b in report.best] == ["iris", "wine"]
    assert [d.search for d in report.defaults] == ["s"]
    assert report.defaults[0].config == LINEAR and report.defaults[0].test_loss == pytest.approx(0.2)
    assert list(report.to_dict()) == ["best", "defaults", "failures", "meta"]
    assert report.to_dict()["defaults"][0]["updater_params"] == {"lr": 0.01}


def test_a_report_for_one_task_lists_only_the_defaults_judged_on_it(stored: str) -> None:
    report = best_report(storage=stored, task="wine")

    assert [b.task for b in report.best] == ["wine"]
    assert [d.search for d in report.defaults] == ["s"] and "wine" in report.defaults[0].per_task


def test_an_unknown_search_names_the_stored_ones(stored: str) -> None:
    with pytest.raises(UnknownNameError, match="no search 'x' in this storage; stored searches: s"):
        best_report(storage=stored, search="x")


def test_the_cli_prints_the_report_as_json_and_the_warm_start_summary(stored: str) -> None:
    as_json = CliRunner().invoke(cli, ["best", "--json", "--storage", stored])
    table = CliRunner().invoke(cli, ["best", "--storage", stored])

    assert json.loads(as_json.output) == best_report(storage=stored).to_dict()
    assert "warm start" in table.output and WARM.summary() in table.output
    assert "Best default per cross-task search" in table.output


def test_a_task_is_found_by_name_search_key_or_fingerprint_prefix(stored: str) -> None:
    with Database(stored, create=False).session() as s:
        assert [r.name for r in reads.tasks_matching(s, "iris")] == ["iris"]
        assert [r.name for r in reads.tasks_matching(s, "bbbbbb")] == ["wine"]
        assert reads.tasks_matching(s, "bbb") == []  # too short a prefix
