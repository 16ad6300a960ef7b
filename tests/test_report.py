"""The HTML report: one self-contained file with every figure, rendered by a real browser when present."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import engine
from engine.cli import cli

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import tiny_spec

    tmp = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{tmp / 'study.db'}"
    engine.run(tiny_spec("first", datasets=("iris",), n_trials=4), storage=url)
    engine.run(tiny_spec("second", datasets=("wine",), n_trials=4, warm_start=True), storage=url)
    out = tmp / "report.html"
    result = CliRunner().invoke(cli, ["report", "--out", str(out), "--storage", url])
    assert result.exit_code == 0, result.output
    return out


def test_the_report_embeds_plotly_and_every_figure(report: Path) -> None:
    text = report.read_text()
    assert "<script src=" not in text  # nothing fetched: plotly.js is inline
    for label in ("history iris", "importances iris", "tasks first", "history wine", "importances wine"):
        assert f'data-figure="{label}"' in text
    assert "warm-started" in text  # wine's study was seeded from iris's history and marks those trials
    assert text.count('class="plotly-graph-div"') == 6


def test_a_headless_browser_draws_every_figure(report: Path, tmp_path: Path) -> None:
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no headless Chromium on PATH (apt-get install -y chromium); the DOM check needs one")
    args: list[Any] = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
    ]
    dom = subprocess.run(
        [*args, "--virtual-time-budget=10000", "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert dom.count('class="main-svg"') >= 6  # plotly replaced each placeholder with drawn SVG


def test_a_storage_without_searches_is_refused_and_not_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"
    result = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "r.html"), "--storage", url])
    assert result.exit_code == 2 and "holds no search to report" in result.output, result.output
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "r.html").exists()
