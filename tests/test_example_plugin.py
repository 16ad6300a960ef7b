"""The plugin system, end to end: the example package installed for real, and throw-away plugins.

The example plugin (``examples/stratagem-example-plugin``) must be installed for the first group of
tests: ``pip install --no-deps -e examples/stratagem-example-plugin``. Without it they are skipped,
unless ``STRATAGEM_REQUIRE_EXAMPLE=1`` (CI sets it), in which case they fail.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import optuna
import pytest
from click.testing import CliRunner

import engine
from engine.cli import cli
from engine.errors import DuplicateNameError
from engine.plugin.host import BUILTIN_PLUGINS, LOAD_ENV, PluginHost
from engine.results import best
from engine.search import run
from engine.spec import SearchSpec, TaskSpec, load_spec, resolve
from engine.vocabulary import strategy_study_name

EXAMPLE_DIST = "stratagem-example-plugin"
EXAMPLE_ENTRY_POINT = "example"
EXAMPLE_STRATEGY = "resmlp"
EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "examples" / "stratagem-example-plugin"
REQUIRE_ENV = "STRATAGEM_REQUIRE_EXAMPLE"


# -- the installed example package --------------------------------------------------------------


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> importlib.metadata.Distribution:
    """The installed example distribution; skips (or fails under ``STRATAGEM_REQUIRE_EXAMPLE=1``)."""
    monkeypatch.delenv(LOAD_ENV, raising=False)
    try:
        dist = importlib.metadata.distribution(EXAMPLE_DIST)
    except importlib.metadata.PackageNotFoundError:
        reason = f"{EXAMPLE_DIST} is not installed; install it with `pip install --no-deps -e {EXAMPLE_DIR}`"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires it)")
        pytest.skip(reason)
    return dist


def _plugins_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["plugins", *args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_installed_example_is_loaded_under_its_entry_point_name(
    example: importlib.metadata.Distribution,
) -> None:
    from stratagem_example_plugin import ResidualMLP

    host = PluginHost.load()
    infos = {i.name: i for i in host.plugin_infos()}
    assert EXAMPLE_ENTRY_POINT in infos, f"plugins loaded: {sorted(infos)}; problems: {host.problems}"
    info = infos[EXAMPLE_ENTRY_POINT]
    assert info.version == example.version
    assert info.origin == "entry point stratagem_example_plugin"
    assert info.registers == {"strategies": [EXAMPLE_STRATEGY]}
    assert info.hooks == ["stratagem_register_strategies"]
    assert host.strategies.get(EXAMPLE_STRATEGY) is ResidualMLP
    assert host.strategies.plugin_of(EXAMPLE_STRATEGY) == EXAMPLE_ENTRY_POINT
    assert host.problems == []


def test_stratagem_plugins_json_lists_the_example(example: importlib.metadata.Distribution) -> None:
    data = _plugins_json()
    entry = next((p for p in data["plugins"] if p["name"] == EXAMPLE_ENTRY_POINT), None)
    assert entry is not None, f"`stratagem plugins --json` lists {[p['name'] for p in data['plugins']]}"
    assert entry["version"] == example.version
    assert entry["registers"] == {"strategies": [EXAMPLE_STRATEGY]}
    assert data["problems"] == []


def test_empty_load_plugins_variable_excludes_the_example(
    example: importlib.metadata.Distribution, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOAD_ENV, "")
    host = PluginHost.load()
    assert EXAMPLE_ENTRY_POINT not in {i.name for i in host.plugin_infos()}
    assert EXAMPLE_STRATEGY not in host.strategies
    assert {"linear", "mlp"} <= set(host.strategies.names()), "built-ins must load regardless"


def test_load_plugins_variable_naming_the_example_loads_it(
    example: importlib.metadata.Distribution, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOAD_ENV, f"some-other-plugin, {EXAMPLE_ENTRY_POINT}")
    host = PluginHost.load()
    assert host.strategies.plugin_of(EXAMPLE_STRATEGY) == EXAMPLE_ENTRY_POINT
    # a name that no installed plugin has is reported, not silently ignored
    (problem,) = host.problems
    assert problem.plugin == "some-other-plugin" and EXAMPLE_ENTRY_POINT in problem.message
    assert LOAD_ENV in problem.message


def test_a_local_plugin_that_implements_no_hook_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "folder").mkdir()  # imports as an empty namespace package
    (tmp_path / "nohooks.py").write_text("VALUE = 1\n")
    monkeypatch.chdir(tmp_path)
    for name in ("folder", "nohooks.py"):
        result = CliRunner().invoke(cli, ["plugins", "--plugin", name])
        assert result.exit_code == 2, result.output
        assert f"plugin {name!r} implements no Stratagem hook" in result.output
        assert "Traceback" not in result.output


def test_a_study_using_the_example_strategy_runs_and_is_best(
    example: importlib.metadata.Distribution, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'example.db'}"
    spec = SearchSpec(
        name="example-plugin",
        tasks=(TaskSpec("sklearn", {"dataset": "iris"}),),
        n_trials=3,
        strategies=(EXAMPLE_STRATEGY,),
        updaters=("gradient_descent",),
        warm_start=False,
    )
    result = run(spec, storage=storage)

    assert result.trials_run == 3
    (row,) = best(storage=storage, search="example-plugin")
    assert row.strategy == EXAMPLE_STRATEGY
    from stratagem_example_plugin import ResidualMLP

    assert set(row.strategy_params) == set(ResidualMLP.param_names())
    assert ResidualMLP(**row.strategy_params).get_params() == row.strategy_params
    study = optuna.load_study(study_name=strategy_study_name("example-plugin", row.task), storage=storage)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 3
    assert all(t.params["strategy"] == EXAMPLE_STRATEGY for t in finished)
    assert all(f"{EXAMPLE_STRATEGY}.width" in t.params for t in finished)


def test_the_example_study_spec_is_valid(example: importlib.metadata.Distribution) -> None:
    spec = load_spec(EXAMPLE_DIR / "studies" / "example.toml")
    plan = resolve(spec, PluginHost.load())
    assert [t.key for t in plan.tasks] == ["iris", "diabetes"]
    assert all(EXAMPLE_STRATEGY in [s.name for s in t.strategies] for t in plan.tasks)


def test_the_example_passes_its_conformance_suite(example: importlib.metadata.Distribution) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=EXAMPLE_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, (
        f"example conformance suite failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
    )
    assert " passed" in summary and "skipped" not in summary, summary


# -- throw-away plugins -------------------------------------------------------------------------


class _Probe(engine.Strategy):
    """A do-nothing strategy the throw-away plugins register."""

    name: ClassVar[str] = "probe"

    @classmethod
    def suggest(cls, trial: optuna.Trial, info: engine.TaskInfo) -> dict[str, Any]:
        return {}

    def build(self, info: engine.TaskInfo) -> Any:
        import torch

        return torch.nn.Linear(info.n_features, info.n_outputs)


class _DuplicatesLinear:
    @engine.hookimpl
    def stratagem_register_strategies(self, registry: engine.Registry[type[engine.Strategy]]) -> None:
        registry.add(_Probe, name="linear")


class _Raises:
    @engine.hookimpl
    def stratagem_register_strategies(self, registry: engine.Registry[type[engine.Strategy]]) -> None:
        registry.add(_Probe)  # registered before the bug: must not survive it
        raise RuntimeError("the plugin's own bug")


class _Misspelt:
    @engine.hookimpl
    def stratagem_register_strategys(self, registry: engine.Registry[type[engine.Strategy]]) -> None:
        registry.add(_Probe)


@contextmanager
def _host_with(plugin: object, name: str) -> Iterator[PluginHost]:
    """A host with the built-ins and ``plugin`` registered (not yet collected); unregisters after."""
    host = PluginHost()
    for module_name in BUILTIN_PLUGINS:
        host.register_module(importlib.import_module(module_name), module_name, "builtin", "builtin")
    host.register_module(plugin, name, "0.0.1", "test")
    try:
        yield host
    finally:
        if host.pm.is_registered(plugin):
            host.pm.unregister(plugin)


def test_a_duplicate_strategy_name_is_an_error_naming_both_plugins() -> None:
    with _host_with(_DuplicatesLinear(), "dup-plugin") as host, pytest.raises(DuplicateNameError) as err:
        host.collect()
    message = str(err.value)
    assert "'linear'" in message
    assert "'plugins.strategies'" in message and "'dup-plugin'" in message


def test_a_plugin_whose_hook_raises_is_reported_and_the_builtins_still_load() -> None:
    with _host_with(_Raises(), "raising-plugin") as host:
        host.collect()
        assert [p.plugin for p in host.problems] == ["raising-plugin"]
        assert "stratagem_register_strategies raised RuntimeError: the plugin's own bug" in (
            host.problems[0].message
        )
        assert host.strategies.names() == ["linear", "mlp"]
        assert "gradient_descent" in host.updaters and "accuracy" in host.evaluators
        assert "raising-plugin" not in [name for name, _ in host.pm.list_name_plugin()]


def test_a_misspelt_hook_is_reported_and_the_plugin_dropped() -> None:
    plugin = _Misspelt()
    with _host_with(plugin, "misspelt-plugin") as host:
        assert not host.pm.is_registered(plugin)
        assert [p.plugin for p in host.problems] == ["misspelt-plugin"]
        assert "stratagem_register_strategys" in host.problems[0].message
        host.collect()
        assert "probe" not in host.strategies
        assert "misspelt-plugin" not in {i.name for i in host.plugin_infos()}
        assert host.strategies.names() == ["linear", "mlp"]


def test_a_local_plugin_file_from_the_cli_is_listed_as_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin_file = tmp_path / "my_plugins" / "stratagem_probe_plugin.py"
    plugin_file.parent.mkdir()
    plugin_file.write_text(
        textwrap.dedent(
            """
            import engine
            import torch

            class LocalProbe(engine.Strategy):
                name = "local_probe"

                @classmethod
                def suggest(cls, trial, info):
                    return {}

                def build(self, info):
                    return torch.nn.Linear(info.n_features, info.n_outputs)

            @engine.hookimpl
            def stratagem_register_strategies(registry):
                registry.add(LocalProbe)
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(LOAD_ENV, "")
    relative = "my_plugins/stratagem_probe_plugin.py"
    try:
        data = _plugins_json("--plugin", relative)
    finally:
        sys.modules.pop("stratagem_local_stratagem_probe_plugin", None)
    entry = next((p for p in data["plugins"] if p["name"] == relative), None)
    assert entry is not None, f"`plugins --plugin {relative}` lists {[p['name'] for p in data['plugins']]}"
    assert entry["origin"] == "local"
    assert entry["registers"] == {"strategies": ["local_probe"]}
    assert entry["hooks"] == ["stratagem_register_strategies"]


class _MaximizingAccuracy(engine.Evaluator):
    name = "my_accuracy"
    basis = "maximize"  # type: ignore[assignment]  # not a basis: it would be minimised

    def __call__(self, y: Any, out: Any) -> float:
        return 0.0


class _WrongItems:
    def __init__(self, hook: str, item: object) -> None:
        self.hook, self.item = hook, item

    @engine.hookimpl
    def stratagem_register_evaluators(self, registry: engine.Registry[engine.Evaluator]) -> None:
        if self.hook == "evaluators":
            registry.add(self.item)  # type: ignore[arg-type]

    @engine.hookimpl
    def stratagem_register_strategies(self, registry: engine.Registry[type[engine.Strategy]]) -> None:
        if self.hook == "strategies":
            registry.add(self.item)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("hook", "item", "words"),
    [
        ("evaluators", _MaximizingAccuracy(), "basis must be 'score' (higher is better) or 'error'"),
        ("evaluators", _MaximizingAccuracy, "register an instance, _MaximizingAccuracy(), not the class"),
        ("strategies", _Probe(), "register a subclass of engine.Strategy (the class itself)"),
    ],
)
def test_an_item_of_the_wrong_kind_drops_its_plugin_with_the_reason(
    hook: str, item: object, words: str
) -> None:
    with _host_with(_WrongItems(hook, item), "wrong-plugin") as host:
        host.collect()
        ((problem),) = host.problems
        assert problem.plugin == "wrong-plugin" and words in problem.message, problem.message
        assert "my_accuracy" not in host.evaluators and host.strategies.names() == ["linear", "mlp"]


class _StrategyNamedLikeAnUpdater:
    @engine.hookimpl
    def stratagem_register_strategies(self, registry: engine.Registry[type[engine.Strategy]]) -> None:
        registry.add(_Probe, name="gradient_descent")


def test_a_strategy_named_like_an_updater_is_an_error_naming_both() -> None:
    with (
        _host_with(_StrategyNamedLikeAnUpdater(), "clash-plugin") as host,
        pytest.raises(DuplicateNameError) as err,
    ):
        host.collect()
    assert "strategy 'gradient_descent' (plugin 'clash-plugin') has the name of updater" in str(err.value)
