"""Conformance tests every task-family plugin should pass.

A family must draw the same episodes from the same generator state, keep its pools apart (for a
classification family no input of a meta-test episode appears in a meta-train episode), give support
and query sets of the shapes its :meth:`~engine.meta.TaskFamily.info` announces, and refuse each bad
option with a :class:`~engine.meta.FamilyError` that names the option. The options it declares
explorable (for competence maps) must have finite bounds at which it really draws tasks, and
:meth:`~engine.meta.TaskFamily.explore` must refuse unknown names and values out of bounds by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest
import torch

from engine.meta import POOLS, EpisodeBatch, FamilyError, TaskFamily

__all__ = ["TaskFamilyContract"]


def _draw(family: TaskFamily, pool: str, seed: int, n: int = 3) -> EpisodeBatch:
    return family.sample(pool, n, torch.Generator().manual_seed(seed))  # type: ignore[arg-type]


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.reshape(-1, *x.shape[2:]).flatten(start_dim=1)}


class TaskFamilyContract:
    """Subclass with ``family`` (a configured instance) and ``bad_options`` ({option: bad value}).

    Attributes:
        family: The family under test, with options that keep draws small.
        bad_options: Options that the family must refuse, one at a time, each with a value it cannot
            use (a ``k_shot`` above the smallest class, an ``n_way`` above the pool's classes, ...).
        draws: Episodes drawn per pool for the disjointness check.
    """

    family: ClassVar[TaskFamily]
    bad_options: ClassVar[Mapping[str, Any]] = {}
    draws: ClassVar[int] = 20

    def test_same_generator_state_gives_the_same_batch(self) -> None:
        for pool in POOLS:
            a, b = _draw(self.family, pool, 3), _draw(self.family, pool, 3)
            for field in ("support_x", "support_y", "query_x", "query_y"):
                assert torch.equal(getattr(a, field), getattr(b, field)), f"{pool}: {field} differs"

    def test_support_and_query_shapes_match_info(self) -> None:
        info = self.family.info()
        for pool in POOLS:
            batch = _draw(self.family, pool, 0)
            assert batch.kind == info.kind
            for x, y in ((batch.support_x, batch.support_y), (batch.query_x, batch.query_y)):
                assert x.dtype == torch.float32
                assert tuple(x.shape[2:]) == info.input_shape
                assert y.shape[:2] == x.shape[:2]
                if info.kind == "regression":
                    assert y.shape[2:] == (1,) and y.is_floating_point()
                else:
                    assert y.dtype == torch.int64 and y.dim() == 2
                    assert int(y.min()) >= 0 and int(y.max()) < info.n_outputs
            if info.kind == "classification":
                assert batch.n_way == info.n_outputs

    def test_pools_are_disjoint(self) -> None:
        if self.family.info().kind != "classification":
            pytest.skip("a continuous family's pools are independent streams (disjoint with probability 1)")
        seen: dict[str, set[bytes]] = {}
        for pool in POOLS:
            batch = _draw(self.family, pool, 11, self.draws)
            seen[pool] = _rows(batch.support_x) | _rows(batch.query_x)
        for i, a in enumerate(POOLS):
            for b in POOLS[i + 1 :]:
                assert not seen[a] & seen[b], f"pools {a} and {b} share inputs"

    def test_bad_options_raise_family_error_naming_the_key(self) -> None:
        for key, value in self.bad_options.items():
            family = type(self.family)(**{**self.family.get_params(), key: value})
            with pytest.raises(FamilyError) as caught:
                family.info()
                _draw(family, "meta_train", 0)
            assert caught.value.key == key, f"{key}={value!r} was reported under {caught.value.key!r}"
            assert key in str(caught.value)

    def test_explorable_bounds_are_finite_and_draw_tasks_at_both_ends(self) -> None:
        for key, bounds in self.family.explorable().items():
            assert math.isfinite(bounds.low) and math.isfinite(bounds.high), key
            assert bounds.low <= bounds.high, f"{key}: low {bounds.low} > high {bounds.high}"
            if bounds.integer:
                assert int(bounds.low) == bounds.low and int(bounds.high) == bounds.high, key
            for value in (bounds.low, bounds.high):
                variant = self.family.explore({key: int(value) if bounds.integer else value})
                info = variant.info()
                batch = _draw(variant, "meta_test", 0)
                assert tuple(batch.support_x.shape[2:]) == info.input_shape, f"{key}={value}"
                changed = set(variant.explored_options({key: value}))
                old, new = self.family.get_params(), variant.get_params()
                assert {k: v for k, v in old.items() if k not in changed} == {
                    k: v for k, v in new.items() if k not in changed
                }, f"exploring {key} changed other options"

    def test_explore_refuses_unknown_names_and_values_out_of_bounds_naming_them(self) -> None:
        with pytest.raises(FamilyError) as caught:
            self.family.explore({"no_such_option": 1})
        assert caught.value.key == "no_such_option"
        for key, bounds in self.family.explorable().items():
            with pytest.raises(FamilyError) as caught:
                self.family.explore({key: bounds.high + 1})
            assert caught.value.key == key
