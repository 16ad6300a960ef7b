"""Meta-gradients of the batched inner loop agree with per-task float64 autograd references."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from engine.meta import EpisodeBatch, GradientMetaStrategy, MetaModel, task_loss
from plugins.meta import FOMAML, MAML, Digits, MetaSGD, Reptile, Sinusoid


def _double(
    strategy: GradientMetaStrategy, batch: EpisodeBatch, seed: int = 0
) -> tuple[MetaModel, EpisodeBatch]:
    info = Sinusoid().info() if batch.kind == "regression" else Digits(n_way=batch.n_way).info()
    model = strategy.build(info, torch.Generator().manual_seed(seed)).double()
    return model, batch.to(torch.float64)


def _reference_grads(
    model: MetaModel,
    batch: EpisodeBatch,
    lr: float,
    steps: int,
    first_order: bool,
    lrs: dict[str, torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """MAML's meta-gradient from a plain per-task loop: autograd.grad with create_graph, mean over tasks."""
    params: dict[str, torch.Tensor] = dict(model.net.named_parameters())
    losses = []
    for i in range(len(batch)):
        fast = dict(params)
        for _ in range(steps):
            inner = task_loss(
                batch.kind, functional_call(model.net, fast, (batch.support_x[i],)), batch.support_y[i]
            )
            grads = torch.autograd.grad(inner, list(fast.values()), create_graph=not first_order)
            fast = {
                k: p - (lrs[k] if lrs is not None else lr) * g
                for (k, p), g in zip(fast.items(), grads, strict=True)
            }
        out = functional_call(model.net, fast, (batch.query_x[i],))
        losses.append(task_loss(batch.kind, out, batch.query_y[i]))
    return list(torch.autograd.grad(torch.stack(losses).mean(), list(model.parameters())))


def _ours(strategy: GradientMetaStrategy, model: MetaModel, batch: EpisodeBatch) -> list[torch.Tensor]:
    return list(torch.autograd.grad(strategy.meta_loss(model, batch), list(model.parameters())))


def _assert_close(ours: list[torch.Tensor], ref: list[torch.Tensor]) -> None:
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-6), f"max difference {float((a - b).abs().max())}"


@pytest.mark.parametrize("steps", [1, 3])
def test_second_order_maml_meta_gradient_matches_a_float64_autograd_loop(steps: int) -> None:
    batch = Sinusoid(k_shot=5, k_query=7).sample("meta_train", 4, torch.Generator().manual_seed(1))
    strategy = MAML(hidden=(16, 16), inner_lr=0.05, inner_steps=steps)
    model, batch = _double(strategy, batch)
    _assert_close(
        _ours(strategy, model, batch), _reference_grads(model, batch, 0.05, steps, first_order=False)
    )


def test_first_order_maml_drops_the_second_order_terms() -> None:
    batch = Sinusoid(k_shot=5).sample("meta_train", 4, torch.Generator().manual_seed(2))
    strategy = FOMAML(hidden=(16,), inner_lr=0.1, inner_steps=2)
    model, batch = _double(strategy, batch)
    ours = _ours(strategy, model, batch)
    _assert_close(ours, _reference_grads(model, batch, 0.1, 2, first_order=True))
    second = _reference_grads(model, batch, 0.1, 2, first_order=False)
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, second, strict=True))


def test_meta_sgd_learns_its_inner_rates_through_the_query_loss() -> None:
    batch = Sinusoid(k_shot=5).sample("meta_train", 3, torch.Generator().manual_seed(3))
    strategy = MetaSGD(hidden=(8,), inner_lr=0.05)
    model, batch = _double(strategy, batch)
    lrs = {k: model.extras["lr_" + k.replace(".", "__")] for k, _ in model.net.named_parameters()}
    ref = _reference_grads(model, batch, 0.0, 1, first_order=False, lrs=lrs)
    _assert_close(_ours(strategy, model, batch), ref)
    assert any(
        float(g.abs().max()) > 0
        for name, g in zip(dict(model.named_parameters()), ref, strict=True)
        if "extras" in name
    )


def test_conv_maml_through_vmap_matches_the_loop_on_digits() -> None:
    batch = Digits(n_way=3, k_shot=1, k_query=2).sample("meta_train", 2, torch.Generator().manual_seed(4))
    strategy = MAML(network="conv", hidden=(4,), inner_lr=0.3)
    model, batch = _double(strategy, batch)
    _assert_close(_ours(strategy, model, batch), _reference_grads(model, batch, 0.3, 1, first_order=False))


def test_reptile_gradient_is_theta_minus_the_adapted_weights() -> None:
    batch = Sinusoid(k_shot=5).sample("meta_train", 3, torch.Generator().manual_seed(5))
    strategy = Reptile(hidden=(8,), inner_lr=0.05, inner_steps=3)
    model, batch = _double(strategy, batch)
    theta = dict(model.net.named_parameters())
    with torch.no_grad():
        adapted = strategy.adapt_batch(model, batch.support_x, batch.support_y, [3])[0]
    grads = dict(zip(dict(model.named_parameters()), _ours(strategy, model, batch), strict=True))
    for k, p in theta.items():
        assert torch.allclose(grads["net." + k], (p - adapted[k]).mean(dim=0), atol=1e-12)
