"""optuna-dashboard reads a Stratagem database as it is: started on one, it lists the search's studies."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from engine.search import run
from tests.conftest import tiny_spec

DASHBOARD = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or shutil.which(
    "optuna-dashboard"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.skipif(
    DASHBOARD is None,
    reason="optuna-dashboard is not installed: pip install -e '.[dashboard]' (the test extra has it)",
)
def test_optuna_dashboard_lists_the_studies_of_a_search(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dash.db'}"
    run(tiny_spec("dash", ("iris", "wine"), n_trials=2), storage=url)
    port = _free_port()
    assert DASHBOARD is not None
    server = subprocess.Popen(
        [DASHBOARD, url, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        studies = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as answer:
                    studies = json.loads(answer.read())["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert studies is not None, (
            server.stderr.read().decode() if server.poll() is not None else "no answer"
        )
        names = {s["study_name"] for s in studies}
        assert {"dash", "dash/iris", "dash/wine"} <= names
    finally:
        server.terminate()
        server.wait(timeout=30)
