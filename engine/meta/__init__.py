"""Meta-learning over task families: families of few-shot tasks, meta-strategies, evaluation, weights.

A :class:`TaskFamily` samples episodes (a support set and a query set) from disjoint, seeded
meta-train / meta-validation / meta-test pools. A :class:`MetaStrategy` says how a network adapts to a
task (MAML, Reptile, prototypical networks, ...). :func:`meta_problem` turns the pair into an ordinary
:class:`engine.TrainingProblem` with a stochastic objective, so the same updater plugins that train one
task's model also meta-train θ. :func:`evaluate_adaptation` scores θ on held-out tasks after k
adaptation steps, and :func:`save_meta_learner` / :func:`load_meta_learner` keep θ as safetensors.
"""

from __future__ import annotations

from engine.meta.evaluate import (
    AdaptationCurve,
    AdaptationPoint,
    adaptation_scores,
    evaluate_adaptation,
    mean_ci95,
)
from engine.meta.family import (
    POOLS,
    Episode,
    EpisodeBatch,
    FamilyError,
    FamilyInfo,
    ParameterBounds,
    Pool,
    TaskFamily,
    check_int,
    check_pool,
    pool_generator,
)
from engine.meta.learner import (
    AdaptedPredictor,
    GradientMetaStrategy,
    MetaModel,
    MetaStrategy,
    Params,
    sum_task_losses,
    task_loss,
    task_metric,
)
from engine.meta.networks import NETWORKS, NetworkName, batched_call, build_network
from engine.meta.problem import meta_problem
from engine.meta.weights import load_meta_learner, load_weights, save_meta_learner, save_weights

__all__ = [
    "NETWORKS",
    "POOLS",
    "AdaptationCurve",
    "AdaptationPoint",
    "AdaptedPredictor",
    "Episode",
    "EpisodeBatch",
    "FamilyError",
    "FamilyInfo",
    "GradientMetaStrategy",
    "MetaModel",
    "MetaStrategy",
    "NetworkName",
    "ParameterBounds",
    "Params",
    "Pool",
    "TaskFamily",
    "adaptation_scores",
    "batched_call",
    "build_network",
    "check_int",
    "check_pool",
    "evaluate_adaptation",
    "load_meta_learner",
    "load_weights",
    "mean_ci95",
    "meta_problem",
    "pool_generator",
    "save_meta_learner",
    "save_weights",
    "sum_task_losses",
    "task_loss",
    "task_metric",
]
