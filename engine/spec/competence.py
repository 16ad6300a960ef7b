"""The ``[competence]`` table of a meta-mode spec: where the best meta-learned θ stays competent.

Example::

    [competence]
    n_trials = 16          # points of the map (trials of the study <search>/competence)
    tasks = 200            # meta-test tasks per point (mean ± 95% CI)
    steps = 10             # adaptation steps (default: the best step count of the meta-test curve)
    sampler = "qmc"        # "qmc" (scrambled Sobol points, spread evenly) or "random"
    threshold = 0.5        # optional: competent where the score is at least this good
    query_size = 100       # optional: query points per task (per class), default the family's

    [competence.parameters]     # family options to explore: [low, high] within what the family accepts
    amplitude = [0.1, 10.0]
    k_shot = [2, 20]

:func:`parse_competence` checks structure and types when the spec is read; :func:`check_competence`
checks the parameters against the family (names it can explore, bounds it accepts, an episode drawn at
each corner) when the spec is resolved, so bad input is refused before anything is written.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from engine.errors import StratagemError
from engine.spec.checks import MAX_STEPS, MAX_TASKS, Problems, is_type, plain_fields

if TYPE_CHECKING:
    from engine.meta import TaskFamily

__all__ = ["COMPETENCE_SAMPLERS", "CompetenceSpec", "check_competence", "parse_competence"]

COMPETENCE_SAMPLERS = ("qmc", "random")
"""Samplers of the competence study: points spread over the explored box, not an optimiser."""

MAX_QUERY = 10_000
"""The most query points per task (per class) of a competence map."""

_KEYS: dict[str, tuple[type | tuple[type, ...], Any, str]] = {
    "n_trials": (int, lambda v: v >= 1, "must be a positive integer (points of the map)"),
    "tasks": (
        int,
        lambda v: 2 <= v <= MAX_TASKS,
        f"must be an integer from 2 to {MAX_TASKS} (meta-test tasks per point)",
    ),
    "steps": (
        int,
        lambda v: 0 <= v <= MAX_STEPS,
        f"must be an integer from 0 to {MAX_STEPS} (adaptation steps)",
    ),
    "query_size": (
        int,
        lambda v: 1 <= v <= MAX_QUERY,
        f"must be an integer from 1 to {MAX_QUERY} (query points per task)",
    ),
    "sampler": (str, lambda v: v in COMPETENCE_SAMPLERS, f"must be one of {', '.join(COMPETENCE_SAMPLERS)}"),
    "threshold": ((int, float), math.isfinite, "must be a finite number (the competence threshold)"),
}


@dataclass(frozen=True)
class CompetenceSpec:
    """The ``[competence]`` table.

    Attributes:
        parameters: Family options to explore, each with its ``(low, high)``.
        n_trials: Points of the map.
        tasks: Meta-test tasks per point.
        steps: Adaptation steps; ``None``: the step count of the best meta-test score.
        query_size: Query points per task (per class); ``None``: the family's ``k_query``.
        sampler: ``qmc`` or ``random``.
        threshold: Score that counts as competent (MSE at most, accuracy at least), if any.
    """

    parameters: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    n_trials: int = 16
    tasks: int = 200
    steps: int | None = None
    query_size: int | None = None
    sampler: str = "qmc"
    threshold: float | None = None

    def __post_init__(self) -> None:
        plain_fields(self)  # NumPy scalars given in code are the Python numbers they hold

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["parameters"] = {k: list(v) for k, v in self.parameters.items()}
        return out


def parse_competence(data: Mapping[str, Any], meta_mode: bool, p: Problems) -> CompetenceSpec | None:
    """The ``[competence]`` table of a parsed spec, its structure and types checked (problems to ``p``)."""
    if "competence" not in data:
        return None
    if not meta_mode:
        p.add("competence", '[competence] is only for search.mode = "meta"')
        return None
    table = p.table(data, "competence")
    p.unknown(table, {*_KEYS, "parameters"}, "competence.")
    kw: dict[str, Any] = {}
    for key, (types, check, hint) in _KEYS.items():
        if key in table:
            value = table[key]
            if is_type(value, types) and check(value):
                kw[key] = value
            else:
                p.add(f"competence.{key}", f"{hint}; got {value!r}")
    raw = table.get("parameters")
    params: dict[str, tuple[float, float]] = {}
    if not isinstance(raw, Mapping) or not raw:
        p.add(
            "competence.parameters",
            "missing or empty; add a [competence.parameters] table naming family options to explore, "
            "such as k_shot = [2, 20]",
        )
    else:
        for name, value in raw.items():
            key = f"competence.parameters.{name}"
            pair = list(value) if isinstance(value, list) else None
            if pair is None or len(pair) != 2 or not all(is_type(v, (int, float)) for v in pair):
                p.add(key, f"must be a pair [low, high] of numbers; got {value!r}")
            elif not all(math.isfinite(v) for v in pair) or not pair[0] < pair[1]:
                p.add(key, f"must be finite with low < high; got {value!r}")
            else:
                params[name] = (pair[0], pair[1])
    return CompetenceSpec(parameters=params, **kw)


def check_competence(spec: CompetenceSpec, family: TaskFamily, p: Problems) -> None:
    """Check the explored parameters against ``family``: explorable names, bounds within what it
    accepts, integers where it wants them, and one meta-test episode drawn at each corner of the box."""
    try:
        bounds = family.explorable()
    except (StratagemError, ValueError) as exc:
        p.add("competence.parameters", f"the family cannot say what it explores: {exc}")
        return
    ok = True
    for name, (low, high) in spec.parameters.items():
        key = f"competence.parameters.{name}"
        if name not in bounds:
            known = ", ".join(f"{k} ({b.low:g} to {b.high:g})" for k, b in bounds.items()) or "none"
            p.add(key, f"task family {family.name!r} cannot explore {name!r}; it explores: {known}")
            ok = False
            continue
        b = bounds[name]
        if b.integer and not all(isinstance(v, int) for v in (low, high)):
            p.add(key, f"{name} takes integers; got [{low!r}, {high!r}]")
            ok = False
        elif low < b.low or high > b.high:
            p.add(
                key, f"[{low:g}, {high:g}] goes beyond what {family.name!r} accepts, {b.low:g} to {b.high:g}"
            )
            ok = False
        elif b.log and low <= 0:
            p.add(key, f"{name} is explored on a log scale: low must be > 0; got {low!r}")
            ok = False
    if not ok or not spec.parameters:
        return
    for corner in (0, 1):
        values = {name: pair[corner] for name, pair in spec.parameters.items()}
        try:
            variant = family.explore(values)
            variant.info()
            variant.sample("meta_test", 1, torch.Generator().manual_seed(0), query_size=spec.query_size)
        except (StratagemError, ValueError) as exc:
            key = str(getattr(exc, "key", ""))
            where = "competence.parameters"
            if key in spec.parameters or key == "query_size":
                where = f"competence.{key}" if key == "query_size" else f"{where}.{key}"
            side = "low" if corner == 0 else "high"
            p.add(where, f"at the {side} corner {values}: {exc}")
            return
