"""The spec's key table and a collector of problems, so that one run reports every problem at once."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from engine.errors import SpecError
from engine.study.factories import PRUNERS, SAMPLERS
from engine.study.runtime import MAX_THREADS
from engine.task.source import is_type, type_name

__all__ = [
    "MAX_NAME",
    "MAX_SEED",
    "MAX_STEPS",
    "MAX_TASKS",
    "META_KEYS",
    "NAME_RE",
    "PRUNERS",
    "SAMPLERS",
    "SEARCH_KEYS",
    "Problems",
    "is_type",
    "plain_fields",
    "plain_numbers",
    "type_name",
]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}\Z")
"""A search or task name: letters, digits, ``_``, ``-``, ``.``; at most 100 characters (stored names and
Optuna's study names ``<search>/<task>`` must fit their columns)."""
MAX_NAME = 100


def _str_list(v: Any) -> bool:
    return all(isinstance(s, str) for s in v)


MAX_STEPS = 10_000
"""The most adaptation steps a meta-test curve may ask for (each test task is adapted that many times)."""

MAX_TASKS = 100_000
"""The most meta-validation or meta-test tasks (or competence-map tasks per point) a spec may ask for."""

MAX_SEED = 2**31 - 1
"""The largest seed: every generator the engine seeds (Optuna's samplers, NumPy, torch) accepts it."""

SEARCH_KEYS: dict[str, tuple[type | tuple[type, ...], Any, str]] = {
    "name": (
        str,
        lambda v: bool(NAME_RE.match(v)),
        f"must be letters, digits, '_', '-' or '.', at most {MAX_NAME} characters",
    ),
    "seed": (int, lambda v: 0 <= v <= MAX_SEED, f"must be an integer from 0 to {MAX_SEED}"),
    "n_trials": (int, lambda v: v >= 1, "must be a positive integer"),
    "timeout": ((int, float), lambda v: v > 0, "must be a positive number of seconds"),
    "trial_timeout": ((int, float), lambda v: v > 0, "must be a positive number of seconds"),
    "strategies": (list, lambda v: bool(v) and _str_list(v), "must be a non-empty list of strategy names"),
    "updaters": (list, lambda v: bool(v) and _str_list(v), "must be a non-empty list of updater names"),
    "plugins": (list, _str_list, "must be a list of module paths or .py files"),
    "device": (
        str,
        lambda v: v in ("cpu", "cuda", "auto") or v.startswith("cuda:"),
        "must be cpu, cuda or auto",
    ),
    "threads": (
        int,
        lambda v: 0 <= v <= MAX_THREADS,
        f"must be an integer from 0 (torch's default) to {MAX_THREADS}",
    ),
    "trials_per_visit": (
        int,
        lambda v: v >= 0,
        "must be a non-negative integer (0: all trials in one visit)",
    ),
    "mode": (
        str,
        lambda v: v in ("per_task", "cross_task", "meta"),
        'must be "per_task", "cross_task" or "meta"',
    ),
    "warm_start": (bool, None, "must be true or false"),
    "warm_start_method": (str, lambda v: bool(NAME_RE.match(v)), "must be the name of a warm starter"),
    "keep": (str, lambda v: v in ("best", "all"), 'must be "best" (the best model per task) or "all"'),
    "artifacts": (str, lambda v: bool(v.strip()), "must be a directory path for trained models"),
}


def _int_list(v: Any) -> bool:
    return bool(v) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)


META_KEYS: dict[str, tuple[type | tuple[type, ...], Any, str]] = {
    "strategies": (
        list,
        lambda v: bool(v) and _str_list(v),
        "must be a non-empty list of meta-strategy names",
    ),
    "updaters": (list, lambda v: bool(v) and _str_list(v), "must be a non-empty list of updater names"),
    "iterations": (int, lambda v: v >= 1, "must be a positive integer (meta-iterations per trial)"),
    "checkpoints": (int, lambda v: v >= 1, "must be a positive integer (validations per trial)"),
    "meta_batch": (
        list,
        lambda v: _int_list(v) and min(v) >= 1,
        "must be a non-empty list of positive integers",
    ),
    "val_tasks": (int, lambda v: 1 <= v <= MAX_TASKS, f"must be an integer from 1 to {MAX_TASKS}"),
    "test_tasks": (int, lambda v: 1 <= v <= MAX_TASKS, f"must be an integer from 1 to {MAX_TASKS}"),
    "steps": (
        list,
        lambda v: _int_list(v) and max(v) <= MAX_STEPS,
        f"must be a non-empty list of integers from 0 to {MAX_STEPS} (adaptation steps)",
    ),
    "options": (
        dict,
        lambda v: all(isinstance(t, dict) for t in v.values()),
        "must be a table of meta-strategy name -> its fixed options, such as { protonet = { members = 3 } }",
    ),
    "train_family": (
        dict,
        lambda v: bool(v) and "name" not in v,
        "must be a table of [family] options that meta-training episodes use instead, such as "
        "{ n_way = 20 } (the family's name cannot change)",
    ),
}
"""The ``[meta]`` table of a meta-mode spec: key -> (types, check, hint)."""


class Problems:
    """Problems found in one spec, each with its key; raised together as one :class:`SpecError`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str | None, str]] = []

    def add(self, key: str | None, message: str) -> None:
        self.items.append((key, message))

    def table(self, data: Mapping[str, Any], key: str, required: bool = False) -> Mapping[str, Any]:
        value = data.get(key)
        if value is None:
            if required:
                self.add(key, f"missing; add a [{key}] table")
            return {}
        if not isinstance(value, Mapping):
            self.add(key, f"must be a table ([{key}]); got {value!r}")
            return {}
        return value

    def unknown(self, data: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
        for key in data:
            if key not in allowed:
                close = [a for a in sorted(allowed) if a[:3] == key[:3]]
                hint = (
                    f"; did you mean {close[0]!r}?"
                    if close
                    else f"; known keys: {', '.join(sorted(allowed))}"
                )
                self.add(prefix + key, "unknown key" + hint)

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError.many(self.items, source=self.source)


def plain_numbers(value: Any) -> Any:
    """``value`` with NumPy (or torch) scalars as the Python values they are (``np.int64(5)`` -> ``5``),
    inside lists, tuples and mappings too; anything else as it is, for the checks to judge.

    A spec built in code may hold them (``n_trials=np.int64(5)``, a range of ``np.float32``): they mean
    the numbers they hold, and only Python's are stored as JSON, compared and shown as written.
    """
    if value is None or isinstance(value, str | bytes):
        return value
    if type(value) in (list, tuple):
        return type(value)(plain_numbers(v) for v in value)
    if isinstance(value, Mapping):
        return {k: plain_numbers(v) for k, v in value.items()}
    item = getattr(value, "item", None)
    if type(value) not in (bool, int, float) and callable(item) and getattr(value, "shape", None) == ():
        plain = item()
        if isinstance(plain, bool | int | float | str):
            return plain
    return value


def plain_fields(spec: Any) -> None:
    """In a frozen dataclass's ``__post_init__``: each field through :func:`plain_numbers`."""
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        plain = plain_numbers(value)
        if plain is not value:
            object.__setattr__(spec, f.name, plain)
