"""Built-in updaters: mini-batch gradient descent and gradient-free evolution strategies.

Both draw every random number (batch order, perturbations) from ``problem.generator``, so a fit is
reproducible given the model's initial weights and the generator's seed. Both report the validation
value at regular steps and let :class:`optuna.TrialPruned` from ``report`` propagate, and both leave
the model in the state with the best validation value they reported.

Both also train on stochastic problems (``problem.stochastic``: a loss drawn by
``problem.objective(model, generator)``, such as meta-training over a task family, see
:func:`engine.meta.meta_problem`): gradient descent takes one optimizer step per draw, random search
runs an antithetic evolution strategy. On per-task problems they behave exactly as before (same
random numbers, same results), so one updater plugin serves per-task training and meta-training.
"""

from __future__ import annotations

import engine
from engine import Updater
from plugins.updaters.gradient_descent import BATCH_SIZES, OPTIMIZERS, GradientDescent
from plugins.updaters.random_search import ES_MODES, RandomSearch, one_fifth_rule

__all__ = [
    "BATCH_SIZES",
    "ES_MODES",
    "OPTIMIZERS",
    "GradientDescent",
    "RandomSearch",
    "one_fifth_rule",
    "stratagem_register_updaters",
]


@engine.hookimpl
def stratagem_register_updaters(registry: engine.Registry[type[Updater]]) -> None:
    """Register :class:`GradientDescent` and :class:`RandomSearch`."""
    registry.add(GradientDescent)
    registry.add(RandomSearch)
