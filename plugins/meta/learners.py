"""Built-in meta-strategies: MAML, first-order MAML, Reptile, Meta-SGD, prototypical networks, baselines.

The gradient-based ones share :class:`engine.meta.GradientMetaStrategy`'s inner loop (plain gradient
steps written with :func:`torch.func.grad`, mapped over the meta-batch with :func:`torch.func.vmap`)
and differ in what they learn and how the meta-gradient flows through that loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from engine import (
    EpisodeBatch,
    FamilyInfo,
    GradientMetaStrategy,
    MetaModel,
    MetaStrategy,
    NetworkName,
    Params,
    TaskKind,
    batched_call,
    build_network,
    sum_task_losses,
)

__all__ = ["FOMAML", "MAML", "MetaSGD", "Pretrain", "ProtoNet", "Reptile", "Scratch"]

MAX_MEMBERS = 16
"""Most embedding networks in one :class:`ProtoNet` ensemble (each costs a network's training time)."""

MAX_REFINEMENTS = 100
"""Most transductive refinement steps of one :class:`ProtoNet` prediction."""

FINETUNE_BETAS = (0.9, 0.999)
"""Adam's moment decays in :class:`ProtoNet`'s adaptation steps (PyTorch's defaults)."""

NET_PREFIX = "net."
"""Prefix of a fine-tuned task's own network weights in a :class:`ProtoNet` adapted state."""

REFINE_TEMPERATURE = 0.2
"""Temperature of the soft assignments of a transductive :class:`ProtoNet`: the squared distances it
divides are between unit vectors (0 to 4). Chosen on meta-validation classes (docs/benchmarks_fewshot.md)."""


class MAML(GradientMetaStrategy):
    """Model-agnostic meta-learning (Finn et al. 2017): θ such that a few gradient steps fit a task.

    The meta-loss is the query loss after ``inner_steps`` steps of size ``inner_lr`` on the support
    loss, differentiated through the inner loop (second order unless ``first_order``).

    Args:
        network: ``mlp`` or ``conv`` (see :func:`engine.meta.build_network`).
        hidden: Hidden widths (``mlp``) or channels (``conv``).
        inner_lr: Step size α of the inner loop (at meta-training and adaptation time).
        inner_steps: Inner steps during meta-training.
        first_order: Drop the second-order terms (the inner gradients are treated as constants).
    """

    name: ClassVar[str] = "maml"
    description: ClassVar[str] = "MAML: meta-gradient through the inner gradient steps."

    def __init__(
        self,
        network: NetworkName = "mlp",
        hidden: tuple[int, ...] = (40, 40),
        inner_lr: float = 0.01,
        inner_steps: int = 1,
        first_order: bool = False,
    ) -> None:
        self.network = network
        self.hidden = hidden
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.first_order = first_order


class FOMAML(MAML):
    """First-order MAML: :class:`MAML` with ``first_order=True`` by default."""

    name: ClassVar[str] = "fomaml"
    description: ClassVar[str] = "First-order MAML: inner gradients treated as constants."

    def __init__(
        self,
        network: NetworkName = "mlp",
        hidden: tuple[int, ...] = (40, 40),
        inner_lr: float = 0.01,
        inner_steps: int = 1,
        first_order: bool = True,
    ) -> None:
        super().__init__(network, hidden, inner_lr, inner_steps, first_order)


class MetaSGD(MAML):
    """Meta-SGD (Li et al. 2017): MAML that also learns a per-parameter inner learning rate.

    The learning rates are meta-parameters (``extras`` of the :class:`engine.meta.MetaModel`, one per
    network parameter, initialised to ``inner_lr``) and are learned through the query loss.
    """

    name: ClassVar[str] = "metasgd"
    description: ClassVar[str] = "Meta-SGD: MAML with a learned per-parameter inner learning rate."

    def extras(self, net: nn.Module) -> dict[str, torch.Tensor]:
        return {_key(k): torch.full_like(p.detach(), float(self.inner_lr)) for k, p in net.named_parameters()}

    def inner_lrs(self, model: MetaModel) -> dict[str, torch.Tensor | float]:
        return {k: model.extras[_key(k)] for k, _ in model.net.named_parameters()}


def _key(name: str) -> str:
    return "lr_" + name.replace(".", "__")


class Reptile(MAML):
    """Reptile (Nichol et al. 2018): move θ towards the weights adapted to each task.

    Its meta-loss has the value of the query loss after adaptation (so validation curves and
    gradient-free updaters read it as MAML's) but the gradient ``mean_i(θ - φ_i)``, the Reptile
    direction, where ``φ_i`` is θ after ``inner_steps`` steps on task ``i``'s support set. With Adam
    as the outer optimizer this is Reptile with an adaptive step size.
    """

    name: ClassVar[str] = "reptile"
    description: ClassVar[str] = "Reptile: outer step towards the task-adapted weights."

    def __init__(
        self,
        network: NetworkName = "mlp",
        hidden: tuple[int, ...] = (40, 40),
        inner_lr: float = 0.01,
        inner_steps: int = 5,
    ) -> None:
        super().__init__(network, hidden, inner_lr, inner_steps, first_order=True)

    def meta_loss(self, model: MetaModel, batch: EpisodeBatch) -> torch.Tensor:
        theta = model.net_params()
        with torch.no_grad():
            adapted = self.adapt_batch(model, batch.support_x, batch.support_y, [int(self.inner_steps)])[0]
            value = sum_task_losses(
                batch.kind, self.predict_batch(model, adapted, batch.query_x), batch.query_y
            )
        pull = torch.stack([0.5 * ((theta[k] - adapted[k]) ** 2).sum() for k in theta]).sum()
        return (value + pull - pull.detach()) / len(batch)


class Pretrain(MAML):
    """Baseline: train θ on all meta-train tasks jointly (no adaptation), then fine-tune on a task.

    The meta-loss is the loss of θ itself on every support and query example of the meta-batch;
    adaptation is ``steps`` plain gradient steps of size ``inner_lr``, as for MAML.
    """

    name: ClassVar[str] = "pretrain"
    description: ClassVar[str] = "Baseline: joint training on all meta-train tasks, then fine-tuning."

    def meta_loss(self, model: MetaModel, batch: EpisodeBatch) -> torch.Tensor:
        x = torch.cat([batch.support_x, batch.query_x], dim=1)
        y = torch.cat([batch.support_y, batch.query_y], dim=1)
        out = model.net(x.flatten(0, 1)).unflatten(0, (len(batch), x.shape[1]))
        return sum_task_losses(batch.kind, out, y) / len(batch)


class Scratch(MAML):
    """Baseline: no meta-training; each task trains a freshly initialised network on its support set."""

    name: ClassVar[str] = "scratch"
    meta_trained: ClassVar[bool] = False
    description: ClassVar[str] = "Baseline: train from a random initialisation on the support set."

    def meta_loss(self, model: MetaModel, batch: EpisodeBatch) -> torch.Tensor:
        raise ValueError("meta-strategy 'scratch' is not meta-trained: evaluate its untrained θ directly")


class ProtoNet(MetaStrategy):
    """Prototypical networks (Snell et al. 2017): classify by distance to class-mean embeddings.

    Adaptation computes one prototype per class from the support embeddings; logits are negative
    squared Euclidean distances. With 0 steps that is all; each adaptation step first fine-tunes the
    task's own copy of the embedding network on its support set: one Adam step at ``finetune_lr`` on
    the leave-one-out prototype loss (each support row classified against prototypes that leave it
    out). A class with a single support row has no such prototype, so a 1-shot task takes no step.
    Meta-training is unchanged: θ is trained with plain prototypes, and the fine-tuning happens at
    adaptation time only, without meta-gradients. With ``network="identity"`` nothing is learned (no
    step is taken) and it is the nearest class centroid on raw inputs.

    Args:
        network: Embedding network: ``conv``, ``convnorm``, ``mlp`` or ``identity``.
        hidden: Channels (``conv``, ``convnorm``) or hidden widths (``mlp``); the last one is the
            embedding width.
        shift: Meta-training augmentation for image families: each support and query image of a
            training episode is moved by up to ``shift`` pixels along each axis (drawn per image from
            torch's global generator, zeros fill in); 0 turns it off. Adaptation and evaluation see the
            images as they are.
        members: Embedding networks trained side by side, each from its own initial weights and with
            its own loss on the same episodes (an ensemble). A task is classified by the sum of the
            members' logits, which is the squared distance in their concatenated embeddings. Training
            and prediction cost ``members`` times one network's.
        transductive: Refinement steps that also use the unlabelled rows being predicted (0: off, the
            plain inductive prototypes). The support and predicted rows' embeddings are centred on
            their joint (per-coordinate) median and scaled to unit length, so that no row, however
            outlying, weighs more than another; the prototypes are then moved ``transductive``
            times by soft k-means (Ren et al. 2018): each predicted row joins every class with its
            softmax weight at temperature :data:`REFINE_TEMPERATURE`. Each row's prediction then depends
            on the other rows predicted with it, so give a task's query rows together (as meta-test
            evaluation and ``stratagem adapt --query`` do); meta-training is unchanged.
        finetune_lr: Adam's learning rate in the adaptation steps (scale-free, so it does not depend
            on the embedding's units). Chosen on meta-validation classes (docs/benchmarks_fewshot.md).
    """

    name: ClassVar[str] = "protonet"
    kinds: ClassVar[tuple[TaskKind, ...]] = ("classification",)
    description: ClassVar[str] = "Prototypical networks: nearest class mean in a learned embedding."

    def __init__(
        self,
        network: NetworkName = "conv",
        hidden: tuple[int, ...] = (64, 64),
        shift: int = 0,
        members: int = 1,
        transductive: int = 0,
        finetune_lr: float = 3e-4,
    ) -> None:
        self.network = network
        self.hidden = hidden
        self.shift = shift
        self.members = members
        self.transductive = transductive
        self.finetune_lr = finetune_lr

    @property
    def meta_trained(self) -> bool:  # type: ignore[override]
        return self.network != "identity"

    @property
    def takes_steps(self) -> bool:  # type: ignore[override]
        """Nearest class centroid (``identity``) has no weights to fine-tune, so it takes no step."""
        return self.meta_trained

    def cannot_adapt(self, trained: FamilyInfo, info: FamilyInfo) -> str | None:
        """Prototypes work for any number of classes: only the kind and input shape must match."""
        return super().cannot_adapt(trained, FamilyInfo(info.name, info.kind, info.input_shape, 0))

    def build(self, info: FamilyInfo, generator: torch.Generator | None = None) -> MetaModel:
        self.check_family(info)
        members = self._members()
        self._refinements()
        self._finetune_lr()
        hidden = tuple(self.hidden)
        width = 0
        if self.network == "mlp":
            hidden, width = hidden[:-1], hidden[-1]
        nets = [
            build_network(self.network, info.input_shape, width, hidden, generator=generator)
            for _ in range(members if self.meta_trained else 1)
        ]
        return MetaModel(nets[0] if len(nets) == 1 else _Members(nets))

    def _members(self) -> int:
        members = self.members
        if isinstance(members, bool) or not isinstance(members, int) or not 1 <= members <= MAX_MEMBERS:
            raise ValueError(f"protonet: members must be an integer from 1 to {MAX_MEMBERS}, got {members!r}")
        return members

    def _refinements(self) -> int:
        steps = self.transductive
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_REFINEMENTS:
            raise ValueError(
                f"protonet: transductive must be an integer from 0 (off) to {MAX_REFINEMENTS}, got {steps!r}"
            )
        return steps

    def steps_taken(self, support_y: torch.Tensor, steps: int) -> int:
        """No step is taken where no class has two support rows (no leave-one-out prototype)."""
        return int(steps) if self.takes_steps and _leave_one_out_possible(support_y) else 0

    def adapt_batch(
        self, model: MetaModel, support_x: torch.Tensor, support_y: torch.Tensor, steps: Sequence[int]
    ) -> list[Params]:
        n_way = int(support_y.max()) + 1
        wanted = sorted(int(s) for s in steps)
        lr = self._finetune_lr()
        if not wanted or wanted[-1] == 0 or not self.takes_steps or not _leave_one_out_possible(support_y):
            return [self._state(model, None, support_x, support_y, n_way)] * len(wanted)
        states: list[Params] = []
        params = {k: p.detach().expand(len(support_x), *p.shape) for k, p in model.net_params().items()}
        moments = {k: (torch.zeros_like(p), torch.zeros_like(p)) for k, p in params.items()}
        (b1, b2), eps = FINETUNE_BETAS, 1e-8
        for step in range(wanted[-1] + 1):
            if step in wanted:
                state = self._state(model, params if step else None, support_x, support_y, n_way)
                states += [state] * wanted.count(step)
            if step == wanted[-1]:
                break
            with torch.enable_grad():  # gradients of the task copies only: θ is never part of the graph
                params = {k: p.detach().requires_grad_() for k, p in params.items()}
                loss = _leave_one_out_loss(batched_call(model.net, params, support_x), support_y, n_way)
                grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            t = step + 1
            for (k, p), g in zip(list(params.items()), grads, strict=True):
                if g is None:
                    continue
                m, v = moments[k]
                m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
                moments[k] = m, v
                params[k] = (p - lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)).detach()
        return states

    def _state(
        self,
        model: MetaModel,
        params: Params | None,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_way: int,
    ) -> Params:
        """A task's adapted state: its fine-tuned weights (none after 0 steps: θ's own are used), its
        prototypes and, for transductive refinement, the support embeddings and labels."""
        z = _embed(model, support_x, params)
        state = {"prototypes": _prototypes(z, support_y, n_way)}
        if params is not None:
            state |= {f"{NET_PREFIX}{k}": p for k, p in params.items()}
        if self._refinements():  # refined at prediction time, with the rows predicted
            state |= {"support": z, "support_onehot": nn.functional.one_hot(support_y, n_way).to(z.dtype)}
        return state

    def _finetune_lr(self) -> float:
        lr = self.finetune_lr
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < float("inf"):
            raise ValueError(f"protonet: finetune_lr must be a positive number, got {lr!r}")
        return float(lr)

    def predict_batch(self, model: MetaModel, states: Params, x: torch.Tensor) -> torch.Tensor:
        tuned = {k[len(NET_PREFIX) :]: v for k, v in states.items() if k.startswith(NET_PREFIX)}
        z = _embed(model, x, tuned or None)
        refinements = self._refinements()
        if not refinements:
            return -_sq_distances(z, states["prototypes"])
        support, onehot = states["support"], states["support_onehot"]
        # The median, not the mean: one outlying row would move a mean, and so every row's direction.
        centre = torch.cat([support, z], dim=-2).median(dim=-2, keepdim=True).values
        support, z = (nn.functional.normalize(v - centre, dim=-1) for v in (support, z))
        sums, counts = onehot.transpose(-1, -2) @ support, onehot.sum(dim=-2).unsqueeze(-1)
        prototypes = sums / counts.clamp(min=1)
        for _ in range(refinements):  # soft k-means: each row joins each class with its softmax weight
            weights = torch.softmax(-_sq_distances(z, prototypes) / REFINE_TEMPERATURE, dim=-1)
            prototypes = (sums + weights.transpose(-1, -2) @ z) / (counts + weights.sum(dim=-2).unsqueeze(-1))
        return -_sq_distances(z, prototypes) / REFINE_TEMPERATURE

    def meta_loss(self, model: MetaModel, batch: EpisodeBatch) -> torch.Tensor:
        shift = int(self.shift)
        if shift < 0 or shift != self.shift:
            raise ValueError(f"protonet: shift must be a non-negative integer, got {self.shift!r}")
        support_x, query_x = batch.support_x, batch.query_x
        if shift and support_x.dim() >= 4:  # images: (tasks, n, channels, height, width)
            support_x, query_x = _shifted(support_x, shift), _shifted(query_x, shift)
        # Each member's own loss: embeddings (tasks, n, members * d) -> (tasks, members, n, d).
        members = len(model.net.nets) if isinstance(model.net, _Members) else 1
        support_z, query_z = (
            _embed(model, x).unflatten(-1, (members, -1)).movedim(-2, 1) for x in (support_x, query_x)
        )
        support_y = batch.support_y.unsqueeze(1).expand(-1, members, -1)
        logits = -_sq_distances(query_z, _prototypes(support_z, support_y, batch.n_way))
        query_y = batch.query_y.unsqueeze(1).expand(-1, members, -1)
        return nn.functional.cross_entropy(logits.flatten(0, 2), query_y.flatten())


class _Members(nn.Module):
    """Embedding networks side by side: the embedding is their outputs concatenated."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([net(x) for net in self.nets], dim=-1)


def _embed(model: MetaModel, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
    """Embeddings of ``x`` ``(n_tasks, n, ...)``: one pass of the shared network over every example,
    or, given per-task ``params`` (leading task dimension), each task's own copy on its examples."""
    if params is not None:
        return batched_call(model.net, params, x)
    return model.net(x.flatten(0, 1)).unflatten(0, (x.shape[0], x.shape[1]))


def _leave_one_out_possible(y: torch.Tensor) -> bool:
    """Whether some task's support labels ``y`` (``(n,)`` for one task, ``(n_tasks, n)`` for a batch)
    have a class with two rows or more: only such a row has a prototype that leaves it out."""
    y = y.reshape(-1, y.shape[-1])
    return int(nn.functional.one_hot(y).sum(dim=-2).max()) >= 2


def _leave_one_out_loss(z: torch.Tensor, y: torch.Tensor, n_way: int) -> torch.Tensor:
    """Sum over tasks of the mean cross-entropy of each support row against the prototypes, its own
    class's prototype computed without it; rows of single-row classes (no such prototype) are left
    out. ``z``: ``(n_tasks, n, d)`` embeddings, ``y``: ``(n_tasks, n)`` labels."""
    onehot = nn.functional.one_hot(y, n_way).to(z.dtype)
    sums, counts = onehot.transpose(-1, -2) @ z, onehot.sum(dim=-2)  # (tasks, n_way, d), (tasks, n_way)
    distances = _sq_distances(z, sums / counts.clamp(min=1).unsqueeze(-1))
    own_count = counts.gather(-1, y)  # (tasks, n): rows in each row's class
    own_sum = sums.gather(-2, y.unsqueeze(-1).expand(-1, -1, z.shape[-1]))
    own = ((own_sum - z) / (own_count - 1).clamp(min=1).unsqueeze(-1) - z).pow(2).sum(dim=-1)
    distances = distances.scatter(-1, y.unsqueeze(-1), own.unsqueeze(-1))
    losses = nn.functional.cross_entropy(-distances.flatten(0, 1), y.flatten(), reduction="none")
    valid = (own_count >= 2).to(z.dtype).flatten()
    per_task = (losses * valid).view(y.shape).sum(dim=-1) / valid.view(y.shape).sum(dim=-1).clamp(min=1)
    return per_task.sum()


def _prototypes(z: torch.Tensor, y: torch.Tensor, n_way: int | None) -> torch.Tensor:
    """Class means ``(..., n_way, d)`` of embeddings ``z`` ``(..., n, d)`` by labels ``y`` ``(..., n)``."""
    n = int(y.max()) + 1 if n_way is None else n_way
    onehot = nn.functional.one_hot(y, n).to(z.dtype)
    return (onehot.transpose(-1, -2) @ z) / onehot.sum(dim=-2).clamp(min=1).unsqueeze(-1)


def _sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between rows of ``a`` (``(..., n, d)``) and ``b`` (``(..., m, d)``)."""
    return (a.unsqueeze(-2) - b.unsqueeze(-3)).pow(2).sum(dim=-1)


def _shifted(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Images ``x`` (``(..., height, width)``) each moved by its own random offset in
    ``[-shift, shift]`` along both axes, zeros filling in."""
    h, w = x.shape[-2:]
    flat = x.reshape(-1, h, w)
    padded = nn.functional.pad(flat, (shift, shift, shift, shift))
    n = flat.shape[0]
    rows = torch.randint(0, 2 * shift + 1, (n, 1, 1)) + torch.arange(h).view(1, h, 1)
    cols = torch.randint(0, 2 * shift + 1, (n, 1, 1)) + torch.arange(w).view(1, 1, w)
    return padded[torch.arange(n).view(n, 1, 1), rows, cols].reshape(x.shape)
