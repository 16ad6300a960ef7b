"""Strategy evaluation for meta-learners: query-set scores after k adaptation steps on held-out tasks.

Regression families are scored by the query MSE, classification families by query accuracy; each
point of a curve is the mean over tasks with a normal-approximation 95% confidence interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from engine.meta.family import EpisodeBatch, FamilyError, Pool, TaskFamily, check_int
from engine.meta.learner import MetaModel, MetaStrategy, task_metric

__all__ = [
    "AdaptationCurve",
    "AdaptationPoint",
    "adaptation_scores",
    "evaluate_adaptation",
    "mean_ci95",
    "task_scores",
]

Metric = Literal["mse", "accuracy"]


@dataclass(frozen=True)
class AdaptationPoint:
    """The score after one number of adaptation steps.

    Attributes:
        steps: Inner steps taken on each task's support set.
        mean: Mean over tasks of the query MSE or accuracy.
        ci95: Half-width of the 95% confidence interval of ``mean`` (1.96 standard errors).
        n_tasks: Tasks averaged.
    """

    steps: int
    mean: float
    ci95: float
    n_tasks: int


@dataclass(frozen=True)
class AdaptationCurve:
    """Scores of a meta-learner on held-out tasks after each number of adaptation steps.

    Attributes:
        strategy: The meta-strategy's name.
        family: The task family's name.
        pool: The pool the tasks came from (``meta_test`` for a final report).
        metric: ``mse`` (lower is better) or ``accuracy`` (higher is better).
        points: One point per step count, by increasing steps.
    """

    strategy: str
    family: str
    pool: Pool
    metric: Metric
    points: tuple[AdaptationPoint, ...]

    def at(self, steps: int) -> AdaptationPoint:
        """The point after ``steps`` adaptation steps; ``KeyError`` if it was not evaluated."""
        for point in self.points:
            if point.steps == steps:
                return point
        raise KeyError(f"no point at {steps} steps; evaluated: {[p.steps for p in self.points]}")


def mean_ci95(values: torch.Tensor | Sequence[float]) -> tuple[float, float]:
    """Mean and 95% confidence half-width (1.96 standard errors, sample std) of ``values``."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    if v.numel() == 0:
        raise ValueError("mean_ci95: no values")
    if v.numel() == 1:
        return float(v[0]), math.nan
    return float(v.mean()), 1.96 * float(v.std(unbiased=True)) / math.sqrt(v.numel())


def task_scores(
    strategy: MetaStrategy, model: MetaModel, batch: EpisodeBatch, steps: Sequence[int]
) -> dict[int, torch.Tensor]:
    """Per-task query scores (MSE or accuracy) of a batch of episodes after each step count."""
    with torch.no_grad():
        outputs = strategy.query_outputs(model, batch, steps)
    return {s: task_metric(batch.kind, out, batch.query_y) for s, out in outputs.items()}


def evaluate_adaptation(
    strategy: MetaStrategy,
    model: MetaModel,
    family: TaskFamily,
    *,
    steps: Sequence[int] = (0, 1, 10),
    n_tasks: int = 600,
    pool: Pool = "meta_test",
    query_size: int | None = None,
    seed: int = 0,
    chunk: int = 100,
) -> AdaptationCurve:
    """Adapt θ to ``n_tasks`` tasks of ``pool`` and score the query sets after each step count.

    The tasks are the same for every strategy given the same family, ``seed`` and ``chunk``, so
    curves of different strategies are paired comparisons.

    Args:
        strategy: The meta-strategy (its adaptation rule).
        model: θ.
        family: Where the tasks come from.
        steps: Adaptation step counts to score (0 is θ itself).
        n_tasks: Tasks to average (the few-shot literature reports >= 500 for a final figure).
        pool: ``meta_test`` for a final report, ``meta_val`` for model selection.
        query_size: Query points per task (per class), overriding the family's ``k_query``.
        seed: Seed of the task draws.
        chunk: Tasks adapted at once (memory versus speed).

    Raises:
        FamilyError: ``n_tasks`` or ``chunk`` is not a positive integer, or the family cannot draw
            the tasks.
    """
    scores = adaptation_scores(
        strategy,
        model,
        family,
        steps=steps,
        n_tasks=n_tasks,
        pool=pool,
        query_size=query_size,
        seed=seed,
        chunk=chunk,
    )
    points = []
    for s, values in scores.items():
        mean, ci = mean_ci95(values)
        points.append(AdaptationPoint(s, mean, ci, len(values)))
    metric: Metric = "mse" if family.info().kind == "regression" else "accuracy"
    return AdaptationCurve(strategy.name, family.name, pool, metric, tuple(points))


def adaptation_scores(
    strategy: MetaStrategy,
    model: MetaModel,
    family: TaskFamily,
    *,
    steps: Sequence[int] = (0, 1, 10),
    n_tasks: int = 600,
    pool: Pool = "meta_test",
    query_size: int | None = None,
    seed: int = 0,
    chunk: int = 100,
) -> dict[int, torch.Tensor]:
    """The per-task scores behind :func:`evaluate_adaptation` (same arguments, same tasks):
    ``{steps: tensor of n_tasks scores}``, by increasing steps, to pool over several families."""
    n = check_int(family.name, "n_tasks", n_tasks)
    size = check_int(family.name, "chunk", chunk)
    if not steps or any(int(s) != s or s < 0 for s in steps):
        raise FamilyError(family.name, "steps", f"must be non-negative integers, got {list(steps)!r}")
    family.info()
    wanted = sorted(set(int(s) for s in steps))
    generator = torch.Generator().manual_seed(int(seed))
    scores: dict[int, list[torch.Tensor]] = {s: [] for s in wanted}
    done = 0
    while done < n:
        batch = family.sample(pool, min(size, n - done), generator, query_size=query_size)
        for s, values in task_scores(strategy, model, batch, wanted).items():
            scores[s].append(values)
        done += len(batch)
    return {s: torch.cat(scores[s]) for s in wanted}
