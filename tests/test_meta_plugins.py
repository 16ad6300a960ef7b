"""The built-in task families and meta-strategies are plugins: registered, listed and conformant."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engine.meta import TaskFamily
from engine.plugin import PluginHost
from engine.testing import TaskFamilyContract
from plugins.meta import CsvFamily, Digits, Sinusoid


def _stores_csv() -> str:
    """A CSV family's table: 10 stores of 12 rows, sales = store number x x1 + x2."""
    rng = np.random.default_rng(0)
    lines = ["store,x1,x2,sales"]
    for t in range(10):
        for x1, x2 in rng.normal(size=(12, 2)):
            lines.append(f"s{t},{x1:.4f},{x2:.4f},{t * x1 + x2:.4f}")
    path = Path(tempfile.mkdtemp(prefix="stratagem-csv-family-")) / "stores.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


CSV = _stores_csv()


class TestSinusoid(TaskFamilyContract):
    family: ClassVar[TaskFamily] = Sinusoid(k_shot=5, k_query=5)
    bad_options: ClassVar[dict[str, Any]] = {"k_shot": 0, "amplitude": (3.0, 1.0), "k_query": 1.5}


class TestDigits(TaskFamilyContract):
    family: ClassVar[TaskFamily] = Digits(n_way=5, k_shot=1, k_query=5)
    bad_options: ClassVar[dict[str, Any]] = {"k_shot": 500, "n_way": 30, "train_classes": 40}


class TestCsvFamily(TaskFamilyContract):
    family: ClassVar[TaskFamily] = CsvFamily(CSV, task_column="store", target="sales", k_shot=3, k_query=3)
    bad_options: ClassVar[dict[str, Any]] = {"task_column": "nope", "k_shot": 100, "kind": "ranking"}


def test_families_declare_what_a_competence_map_may_explore() -> None:
    assert set(Sinusoid().explorable()) == {"amplitude", "phase", "k_shot", "noise"}
    digits = Digits(n_way=5, k_shot=1, k_query=5).explorable()
    assert digits["n_way"].high == len(Digits().pool_classes("meta_test")) and digits["n_way"].integer
    assert Sinusoid().explore({"amplitude": 3.0}).get_params()["amplitude"] == (3.0, 3.0)


def test_the_host_registers_the_built_in_families_and_meta_strategies() -> None:
    host = PluginHost.load(entry_points=False)
    assert {"sinusoid", "digits", "csv"} <= set(host.task_families.names())
    assert {"maml", "fomaml", "reptile", "metasgd", "protonet", "pretrain", "scratch"} <= set(
        host.meta_strategies.names()
    )
    assert host.task_families.plugin_of("sinusoid") == "plugins.meta"
    assert host.meta_strategies.get("maml").name == "maml"


def test_stratagem_plugins_lists_them() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "plugins", "--json"], capture_output=True, text=True, check=True
    )
    meta = next(p for p in json.loads(out.stdout)["plugins"] if p["name"] == "plugins.meta")
    assert meta["registers"]["task_families"] == ["sinusoid", "digits", "csv"]
    assert "maml" in meta["registers"]["meta_strategies"]
    assert meta["hooks"] == ["stratagem_register_meta_strategies", "stratagem_register_task_families"]
    table = subprocess.run(
        [sys.executable, "-m", "engine.cli", "plugins"], capture_output=True, text=True, check=True
    ).stdout
    assert "task_families" in table and "meta_strategies" in table
