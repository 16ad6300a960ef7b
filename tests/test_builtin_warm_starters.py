"""The built-in warm starters pass the conformance kit, and are found through the plugin host."""

from __future__ import annotations

from engine.plugin import PluginHost
from engine.testing import WarmStarterContract
from plugins.warm_starters import GuidedWarmStarter, KnnWarmStarter, TransferWarmStarter


class TestGuided(WarmStarterContract):
    warm_starter = GuidedWarmStarter()


class TestTransfer(WarmStarterContract):
    warm_starter = TransferWarmStarter()


class TestKnn(WarmStarterContract):
    warm_starter = KnnWarmStarter()


def test_the_built_ins_are_registered_through_the_hook() -> None:
    host = PluginHost.load(entry_points=False)
    assert host.warm_starters.names() == ["guided", "transfer", "knn"]
    assert host.warm_starters.plugin_of("knn") == "plugins.warm_starters"
