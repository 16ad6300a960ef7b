"""Networks a meta-strategy adapts: a ReLU MLP, small convolutional nets for images, the identity.

None uses batch normalisation or any other running state (``convnorm`` normalises each image on its
own, with group normalisation), so every network is a pure function of its parameters and runs under
:func:`torch.func.vmap` over a meta-batch of tasks.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

import torch
from torch import nn

__all__ = ["NETWORKS", "NetworkName", "batched_call", "build_network"]

NetworkName = Literal["mlp", "conv", "convnorm", "identity"]
NETWORKS: tuple[NetworkName, ...] = ("mlp", "conv", "convnorm", "identity")


class _Flatten(nn.Module):
    """Flattens every dimension of one example (works with and without a batch dimension)."""

    def __init__(self, example_dims: int) -> None:
        super().__init__()
        self.example_dims = example_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(start_dim=x.dim() - self.example_dims) if self.example_dims > 1 else x

    def batched_forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self(x)


class _MLP(nn.Module):
    """Flatten, then ``Linear``/``ReLU`` layers; also runs a batch of tasks, each with its own weights."""

    def __init__(self, input_shape: tuple[int, ...], hidden: tuple[int, ...], n_outputs: int) -> None:
        super().__init__()
        widths = [math.prod(input_shape), *hidden] + ([n_outputs] if n_outputs > 0 else [])
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.example_dims = len(input_shape)
        self.relu_last = n_outputs <= 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(start_dim=x.dim() - self.example_dims) if self.example_dims > 1 else x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1 or self.relu_last:
                h = torch.relu(h)
        return h

    def batched_forward(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Outputs of task ``t``'s weights ``params[...][t]`` on its inputs ``x[t]`` (``(tasks, n, ...)``).

        The same function as ``vmap(functional_call(self, ...))``, written with batched matrix
        products, which is several times faster for small networks.
        """
        h = x.flatten(start_dim=2) if self.example_dims > 1 else x
        for i in range(len(self.layers)):
            w, b = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            if i < len(self.layers) - 1 or self.relu_last:
                h = torch.relu(h)
        return h


def batched_call(net: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Run ``net`` with per-task parameters (leading task dimension on every tensor) on per-task inputs.

    Uses the network's own ``batched_forward`` when it has one, else
    ``torch.func.vmap(torch.func.functional_call(net, ...))``.
    """
    fast = getattr(net, "batched_forward", None)
    if fast is not None:
        out: torch.Tensor = fast(params, x)
        return out
    return torch.func.vmap(lambda p, xi: torch.func.functional_call(net, p, (xi,)))(params, x)


class _ConvNet(nn.Module):
    """``conv3x3 -> ReLU -> maxpool2`` blocks (padding 1), then flatten and an optional linear head.

    With ``norm``: ``conv3x3 -> GroupNorm -> ReLU`` blocks and a max-pool after every second block
    only, so small images keep a spatial map (8x8 inputs: 4x4 after two or three blocks).
    """

    def __init__(
        self, input_shape: tuple[int, ...], channels: tuple[int, ...], n_outputs: int, norm: bool = False
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        blocks: list[nn.Module] = []
        for i, out in enumerate(channels):
            blocks.append(nn.Conv2d(c, out, 3, padding=1))
            if norm:
                blocks.append(nn.GroupNorm(math.gcd(out, _GROUPS), out))
            blocks.append(nn.ReLU())
            if not norm or i % 2 == 1:
                blocks.append(nn.MaxPool2d(2, ceil_mode=True))
                h, w = math.ceil(h / 2), math.ceil(w / 2)
            c = out
        self.features = nn.Sequential(*blocks)
        self.head: nn.Module = nn.Linear(c * h * w, n_outputs) if n_outputs > 0 else nn.Identity()
        self.input_shape = input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[: x.dim() - len(self.input_shape)]
        z = self.features(x.reshape(-1, *self.input_shape)).flatten(start_dim=1)
        return self.head(z).reshape(*lead, -1)


_GROUPS = 8
"""Groups of a ``convnorm`` block's group normalisation (fewer when they do not divide its channels)."""


def build_network(
    name: NetworkName,
    input_shape: tuple[int, ...],
    n_outputs: int,
    hidden: tuple[int, ...] = (40, 40),
    *,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """A freshly initialised network.

    Args:
        name: ``mlp`` (flatten, then ``Linear``/``ReLU`` layers of widths ``hidden``), ``conv`` (one
            ``conv3x3-ReLU-maxpool`` block per entry of ``hidden``, as channels; needs a
            ``(channels, height, width)`` input shape), ``convnorm`` (``conv3x3-GroupNorm-ReLU`` blocks,
            a max-pool after every second one: for small images such as 8x8 digits) or ``identity``
            (flattened inputs, no parameters).
        input_shape: Shape of one input.
        n_outputs: Output width; 0 gives an embedding network without a head (``mlp`` and ``conv``).
        hidden: Hidden widths (``mlp``) or channels (``conv``).
        generator: Seeds the initial weights (PyTorch's default initialisation, redrawn from it);
            ``None`` uses torch's global RNG.

    Raises:
        ValueError: Unknown name, or a ``conv`` network asked for inputs that are not images.
    """
    if name == "identity":
        return _Flatten(len(input_shape))
    if name == "mlp":
        net: nn.Module = _MLP(input_shape, hidden, n_outputs)
    elif name in ("conv", "convnorm"):
        if len(input_shape) != 3:
            raise ValueError(
                f"network {name!r} needs image inputs (channels, height, width), got input shape "
                f"{input_shape}; "
                "use network='mlp'"
            )
        net = _ConvNet(input_shape, hidden, n_outputs, norm=name == "convnorm")
    else:
        raise ValueError(f"unknown network {name!r}; choose one of {NETWORKS}")
    if generator is not None:
        _reinitialise(net, generator)
    return net


def _reinitialise(net: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default ``Linear``/``Conv2d`` initialisation, drawn from ``generator``."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                # kaiming_uniform_(a=sqrt(5)) and the bias rule both give U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=generator)
