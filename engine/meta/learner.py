"""Meta-strategies: a network plus the way it adapts to one task, written as pure functions.

A :class:`MetaStrategy` builds θ (a :class:`MetaModel`: the network's parameters and any meta-learned
extras, such as Meta-SGD's learning rates), adapts θ to the support sets of a meta-batch of tasks
at once with :meth:`~MetaStrategy.adapt_batch` (a pure function of θ) and defines the meta-training
loss of θ on an :class:`~engine.meta.family.EpisodeBatch` with :meth:`~MetaStrategy.meta_loss`.
Any updater trains θ through :func:`engine.meta.problem.meta_problem`; :meth:`~MetaStrategy.adapt`
turns θ and a new task's support set into a predictor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from engine.configurable import Configurable
from engine.meta.family import EpisodeBatch, FamilyInfo
from engine.meta.networks import NetworkName, batched_call, build_network
from engine.task import TaskKind

__all__ = [
    "AdaptedPredictor",
    "GradientMetaStrategy",
    "MetaModel",
    "MetaStrategy",
    "Params",
    "sum_task_losses",
    "task_loss",
    "task_metric",
]

Params = dict[str, torch.Tensor]
"""A network's parameters by name (as ``named_parameters``), or an adapted state."""


def task_loss(kind: TaskKind, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error (regression) or cross-entropy on logits (classification) of one task."""
    if kind == "regression":
        return ((output - y) ** 2).mean()
    return nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), y.reshape(-1))


def task_metric(kind: TaskKind, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-task score over the last two dims: MSE (regression) or accuracy (classification)."""
    if kind == "regression":
        return ((output - y) ** 2).flatten(start_dim=-2).mean(dim=-1)
    return (output.argmax(dim=-1) == y).to(output.dtype).mean(dim=-1)


class MetaModel(nn.Module):
    """θ: the network to adapt plus meta-learned extras (e.g. per-parameter inner learning rates).

    Args:
        net: The network; its ``named_parameters`` are the starting point of adaptation.
        extras: Further meta-parameters by name (letters, digits and ``_`` only).
    """

    def __init__(self, net: nn.Module, extras: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        self.net = net
        self.extras = nn.ParameterDict({k: nn.Parameter(v) for k, v in (extras or {}).items()})

    def net_params(self) -> Params:
        """The network's parameters by name, as :func:`torch.func.functional_call` takes them."""
        return dict(self.net.named_parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class AdaptedPredictor:
    """A meta-learner adapted to one task: call it on inputs to get predictions (or logits)."""

    strategy: MetaStrategy
    model: MetaModel
    state: Params

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.strategy.predict_batch(self.model, self.state, x.unsqueeze(0))[0]


class MetaStrategy(Configurable, ABC):
    """Base class of meta-strategies; hyperparameters follow the strategies' and updaters' contract.

    Adaptation is written for a batch of tasks at once: :meth:`adapt_batch` maps θ and the support
    sets of ``n_tasks`` tasks to per-task adapted states (every tensor with a leading task dimension)
    and :meth:`predict_batch` runs them; both are pure functions of θ, differentiable in it. A single
    task is a batch of one (:meth:`adapt`).

    Attributes:
        name: Registry name (``maml``, ``protonet``, ...).
        kinds: Family kinds the strategy handles.
        meta_trained: ``False`` for baselines whose θ is not trained at the meta level (train from
            scratch, nearest centroid): give them to no updater.
        takes_steps: ``False`` for strategies whose adaptation ignores ``steps`` (nearest class
            centroid): an adapted task then reports 0 steps taken, whatever was asked
            (:meth:`steps_taken`).
    """

    name: ClassVar[str]
    kinds: ClassVar[tuple[TaskKind, ...]] = ("regression", "classification")
    meta_trained: ClassVar[bool] = True
    takes_steps: ClassVar[bool] = True
    description: ClassVar[str] = ""

    def check_family(self, info: FamilyInfo) -> None:
        """Raise ``ValueError`` if the strategy cannot handle a family of this kind."""
        if info.kind not in self.kinds:
            raise ValueError(
                f"meta-strategy {self.name!r} handles {self.kinds} families, not the {info.kind} family "
                f"{info.name!r}; pick another strategy"
            )

    def cannot_adapt(self, trained: FamilyInfo, info: FamilyInfo) -> str | None:
        """Why θ built for ``trained`` cannot adapt to tasks shaped as ``info`` (``None`` if it can).

        By default θ needs the same kind and input shape, and a classification head at least as wide
        as the new tasks' classes (labels ``0..n_way-1`` fit a wider head). A strategy without a head
        (prototypes) overrides this.
        """
        if (info.kind, info.input_shape) != (trained.kind, trained.input_shape):
            return (
                f"θ of {self.name!r} was built for {trained.kind} inputs of shape {trained.input_shape}, "
                f"not {info.kind} inputs of shape {info.input_shape}"
            )
        if info.n_outputs > trained.n_outputs:
            return (
                f"θ of {self.name!r} has a {trained.n_outputs}-way head; {info.n_outputs}-way tasks need a "
                "strategy without a fixed head (protonet) or a narrower range"
            )
        return None

    @abstractmethod
    def build(self, info: FamilyInfo, generator: torch.Generator | None = None) -> MetaModel:
        """A freshly initialised θ for ``info``'s family, seeded by ``generator``."""

    @abstractmethod
    def adapt_batch(
        self, model: MetaModel, support_x: torch.Tensor, support_y: torch.Tensor, steps: Sequence[int]
    ) -> list[Params]:
        """Adapt θ to each task of a batch; return the states after each step count of ``steps`` (sorted).

        Args:
            model: θ.
            support_x: ``(n_tasks, n_support, *input_shape)``.
            support_y: ``(n_tasks, n_support, 1)`` floats or ``(n_tasks, n_support)`` labels.
            steps: Step counts, >= 0.

        Returns:
            One state per entry of ``sorted(steps)``; every tensor has a leading task dimension. Under
            ``torch.no_grad()`` the states carry no graph; otherwise they are differentiable in θ.
        """

    @abstractmethod
    def predict_batch(self, model: MetaModel, states: Params, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``(n_tasks, n, n_outputs)`` (values or logits) of adapted states on ``x``.

        ``x`` has shape ``(n_tasks, n, *input_shape)``.
        """

    @abstractmethod
    def meta_loss(self, model: MetaModel, batch: EpisodeBatch) -> torch.Tensor:
        """The scalar meta-training loss of θ on a meta-batch (mean over its tasks), differentiable in θ.

        It is what :func:`engine.meta.problem.meta_problem` hands to updaters as the objective.
        """

    def steps_taken(self, support_y: torch.Tensor, steps: int) -> int:
        """How many of ``steps`` adaptation steps change anything on a task with these support labels:
        ``steps``, or 0 for a strategy that takes none (``takes_steps``)."""
        return int(steps) if self.takes_steps else 0

    def query_outputs(
        self, model: MetaModel, batch: EpisodeBatch, steps: Sequence[int]
    ) -> dict[int, torch.Tensor]:
        """Query-set outputs of every task after each number of adaptation steps in ``steps``.

        Returns:
            ``{steps: tensor of shape (n_tasks, n_query, n_outputs)}``.
        """
        wanted = sorted(set(int(s) for s in steps))
        states = self.adapt_batch(model, batch.support_x, batch.support_y, wanted)
        return {s: self.predict_batch(model, st, batch.query_x) for s, st in zip(wanted, states, strict=True)}

    def adapt(
        self, model: MetaModel, support_x: torch.Tensor, support_y: torch.Tensor, steps: int
    ) -> AdaptedPredictor:
        """Adapt θ to a new task's support set with ``steps`` inner steps; return its predictor.

        Args:
            model: θ, as trained by an updater or loaded by :func:`engine.meta.load_meta_learner`.
            support_x: Support inputs, ``(n_support, *input_shape)``.
            support_y: Support targets, ``(n_support, 1)`` floats or ``(n_support,)`` labels.
            steps: Inner-loop steps, >= 0.

        Raises:
            ValueError: ``steps`` is not a non-negative integer.
        """
        if isinstance(steps, bool) or int(steps) != steps or steps < 0:
            raise ValueError(f"adapt: steps must be a non-negative integer, got {steps!r}")
        with torch.no_grad():
            state = self.adapt_batch(model, support_x.unsqueeze(0), support_y.unsqueeze(0), [int(steps)])[0]
        return AdaptedPredictor(self, model, {k: v.detach() for k, v in state.items()})


class GradientMetaStrategy(MetaStrategy):
    """A meta-strategy that adapts by plain gradient steps on the support loss (MAML and relatives).

    The inner loop expands θ to one copy per task (a view, no copy), runs the network on every task
    at once (:func:`engine.meta.networks.batched_call`: batched matrix products for MLPs,
    :func:`torch.func.vmap` over :func:`torch.func.functional_call` otherwise) and differentiates the
    sum of the per-task support losses with respect to the per-task copies, which gives each task's
    own gradient. With ``create_graph`` (second order, when gradients are enabled and not
    ``first_order``) the meta-gradient flows through the inner gradients; under ``torch.no_grad()``
    (gradient-free updaters, evaluation) each step is detached.

    Subclasses set the hyperparameters ``network``, ``hidden``, ``inner_lr``, ``inner_steps`` and
    ``first_order`` in ``__init__``; they may override :meth:`inner_lrs` (Meta-SGD) and
    :meth:`meta_loss` (Reptile, pretraining).
    """

    network: NetworkName
    hidden: tuple[int, ...]
    inner_lr: float
    inner_steps: int
    first_order: bool

    def build(self, info: FamilyInfo, generator: torch.Generator | None = None) -> MetaModel:
        self.check_family(info)
        net = build_network(
            self.network, info.input_shape, info.n_outputs, tuple(self.hidden), generator=generator
        )
        return MetaModel(net, self.extras(net))

    def extras(self, net: nn.Module) -> dict[str, torch.Tensor]:
        """Meta-parameters beyond the network's (none by default)."""
        return {}

    def inner_lrs(self, model: MetaModel) -> dict[str, torch.Tensor | float]:
        """The inner learning rate of each network parameter (``inner_lr`` for all by default)."""
        return {k: float(self.inner_lr) for k, _ in model.net.named_parameters()}

    def adapt_batch(
        self, model: MetaModel, support_x: torch.Tensor, support_y: torch.Tensor, steps: Sequence[int]
    ) -> list[Params]:
        kind: TaskKind = "regression" if support_y.is_floating_point() else "classification"
        wanted = sorted(int(s) for s in steps)
        n_tasks = support_x.shape[0]
        outer = torch.is_grad_enabled()
        second_order = outer and not self.first_order
        lrs = self.inner_lrs(model)
        params = {k: p.expand(n_tasks, *p.shape) for k, p in model.net_params().items()}
        states: list[Params] = []
        with torch.enable_grad():
            for step in range(wanted[-1] + 1 if wanted else 0):
                if not outer:
                    params = {k: p.detach().requires_grad_() for k, p in params.items()}
                states += [params] * wanted.count(step)
                if step == wanted[-1]:
                    break
                out = batched_call(model.net, params, support_x)
                loss = sum_task_losses(kind, out, support_y)
                grads = torch.autograd.grad(loss, list(params.values()), create_graph=second_order)
                params = {k: p - lrs[k] * g for (k, p), g in zip(params.items(), grads, strict=True)}
        if not outer:
            states = [{k: p.detach() for k, p in st.items()} for st in states]
        return states

    def predict_batch(self, model: MetaModel, states: Params, x: torch.Tensor) -> torch.Tensor:
        return batched_call(model.net, states, x)

    def meta_loss(self, model: MetaModel, batch: EpisodeBatch) -> torch.Tensor:
        state = self.adapt_batch(model, batch.support_x, batch.support_y, [int(self.inner_steps)])[0]
        return sum_task_losses(
            batch.kind, self.predict_batch(model, state, batch.query_x), batch.query_y
        ) / len(batch)


def sum_task_losses(kind: TaskKind, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over tasks of each task's mean loss; ``output`` and ``y`` have a leading task dimension."""
    if kind == "regression":
        return ((output - y) ** 2).flatten(start_dim=1).mean(dim=1).sum()
    per_example = nn.functional.cross_entropy(output.flatten(0, 1), y.flatten(), reduction="none")
    return per_example.view(y.shape[0], -1).mean(dim=1).sum()
