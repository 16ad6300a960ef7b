"""The built-in task families and meta-strategies are plugins: registered, listed and conformant."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, ClassVar

from engine.meta import TaskFamily
from engine.plugin import PluginHost
from engine.testing import TaskFamilyContract
from plugins.meta import Digits, Sinusoid


class TestSinusoid(TaskFamilyContract):
    family: ClassVar[TaskFamily] = Sinusoid(k_shot=5, k_query=5)
    bad_options: ClassVar[dict[str, Any]] = {"k_shot": 0, "amplitude": (3.0, 1.0), "k_query": 1.5}


class TestDigits(TaskFamilyContract):
    family: ClassVar[TaskFamily] = Digits(n_way=5, k_shot=1, k_query=5)
    bad_options: ClassVar[dict[str, Any]] = {"k_shot": 500, "n_way": 30, "train_classes": 40}


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
