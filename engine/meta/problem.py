"""Meta-training as an ordinary :class:`engine.TrainingProblem`, so every updater plugin can run it.

:func:`meta_problem` gives the problem a stochastic objective: each call draws a meta-batch of
meta-train tasks with the updater's generator and returns the meta-strategy's meta-loss on it
(``L(θ) = mean_i 𝓛(adapt(θ, support_i), query_i)`` for MAML). Validation adapts θ to a fixed set of
meta-validation tasks and scores their query sets.
"""

from __future__ import annotations

import math

import torch

from engine.meta.evaluate import task_scores
from engine.meta.family import TaskFamily, check_int
from engine.meta.learner import MetaModel, MetaStrategy, task_loss
from engine.task import TaskInfo
from engine.updater import TrainingProblem

__all__ = ["meta_problem"]


def meta_problem(
    strategy: MetaStrategy,
    family: TaskFamily,
    *,
    meta_batch: int = 25,
    draws_per_epoch: int = 100,
    val_tasks: int = 100,
    val_steps: int | None = None,
    val_query_size: int | None = None,
    seed: int = 0,
    val_family: TaskFamily | None = None,
) -> TrainingProblem:
    """The meta-training problem of ``strategy`` on ``family``, for any updater that takes objectives.

    Args:
        strategy: The meta-strategy; its :meth:`~engine.meta.MetaStrategy.meta_loss` is the objective.
        family: Meta-train tasks feed the objective, meta-validation tasks the validation.
        meta_batch: Tasks per objective draw.
        draws_per_epoch: Objective draws (meta-iterations) between two validations: an updater's
            "epoch" on this problem.
        val_tasks: Meta-validation tasks (drawn once, with ``seed``) scored by ``validate``.
        val_steps: Adaptation steps before scoring validation tasks; default: the strategy's
            ``inner_steps`` (0 if it has none).
        val_query_size: Query points per validation task (per class), default the family's.
        seed: Seeds the validation tasks and the problem's generator.
        val_family: Family of the validation tasks, when they should differ from the training ones
            (say 20-way training episodes, 5-way validation); default ``family``.

    Returns:
        A problem whose ``objective`` is set (so ``stochastic`` is true) and whose ``X``/``y`` are empty
        (``(0, *input_shape)``): updaters must use the objective. ``validate`` returns the mean query
        MSE (lower is better) or accuracy (higher is better) of the validation tasks.

    Raises:
        ValueError: The strategy is not meta-trained, or cannot handle the family's kind.
        FamilyError: A size is not a positive integer, or the family cannot draw the tasks.
    """
    if not strategy.meta_trained:
        raise ValueError(
            f"meta-strategy {strategy.name!r} is not meta-trained; evaluate its initial θ with "
            "engine.meta.evaluate_adaptation instead of fitting it"
        )
    info = family.info()
    strategy.check_family(info)
    batch_size = check_int(family.name, "meta_batch", meta_batch)
    per_epoch = check_int(family.name, "draws_per_epoch", draws_per_epoch)
    n_val = check_int(family.name, "val_tasks", val_tasks)
    steps = int(getattr(strategy, "inner_steps", 0)) if val_steps is None else int(val_steps)
    val_batch = (val_family or family).sample(
        "meta_val", n_val, torch.Generator().manual_seed(int(seed)), query_size=val_query_size
    )

    def objective(model: torch.nn.Module, generator: torch.Generator) -> torch.Tensor:
        assert isinstance(model, MetaModel), f"meta problems train a MetaModel, got {type(model).__name__}"
        return strategy.meta_loss(model, family.sample("meta_train", batch_size, generator))

    def validate(model: torch.nn.Module) -> float:
        assert isinstance(model, MetaModel), f"meta problems train a MetaModel, got {type(model).__name__}"
        value = float(task_scores(strategy, model, val_batch, [steps])[steps].mean())
        return value if math.isfinite(value) else (-math.inf if info.kind == "classification" else math.inf)

    def loss(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return task_loss(info.kind, output, y)

    empty_y = torch.zeros(0, 1) if info.kind == "regression" else torch.zeros(0, dtype=torch.int64)
    return TrainingProblem(
        X=torch.zeros(0, *info.input_shape),
        y=empty_y,
        loss=loss,
        validate=validate,
        higher_is_better=info.kind == "classification",
        generator=torch.Generator().manual_seed(int(seed) + 1),
        info=TaskInfo(
            kind=info.kind,
            n_samples=batch_size,
            n_features=math.prod(info.input_shape),
            n_classes=info.n_outputs if info.kind == "classification" else 0,
        ),
        objective=objective,
        draws_per_epoch=per_epoch,
    )
