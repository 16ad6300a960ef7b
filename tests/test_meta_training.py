"""The built-in updaters meta-train θ; meta-learning beats scratch; θ round-trips through safetensors."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
import torch

from engine.meta import (
    FamilyError,
    MetaModel,
    adaptation_scores,
    evaluate_adaptation,
    load_meta_learner,
    mean_ci95,
    meta_problem,
    save_meta_learner,
)
from engine.testing import UpdaterContract
from plugins.meta import MAML, Digits, ProtoNet, Scratch, Sinusoid
from plugins.updaters import GradientDescent, RandomSearch


class TestRandomSearchAntitheticModeContract(UpdaterContract):
    """The antithetic mode also passes the per-task conformance kit (on the full training loss)."""

    updater = RandomSearch(sigma=0.05, iterations=60, report_every=20, mode="antithetic", pairs=4, lr=0.05)


FAMILY = Sinusoid(k_shot=10, k_query=10)


def _maml(seed: int = 0) -> tuple[MAML, MetaModel]:
    strategy = MAML(hidden=(40, 40))
    return strategy, strategy.build(FAMILY.info(), torch.Generator().manual_seed(seed))


def test_maml_beats_training_from_scratch_on_sinusoid_after_a_short_run() -> None:
    strategy, model = _maml()
    problem = meta_problem(strategy, FAMILY, meta_batch=25, draws_per_epoch=100, val_tasks=50)
    GradientDescent(optimizer="adam", lr=3e-3, epochs=3).fit(model, problem, lambda s, v: None)
    maml = evaluate_adaptation(strategy, model, FAMILY, steps=(10,), n_tasks=200, query_size=100)
    scratch_strategy = Scratch()
    scratch_model = scratch_strategy.build(FAMILY.info(), torch.Generator().manual_seed(0))
    scratch = evaluate_adaptation(
        scratch_strategy, scratch_model, FAMILY, steps=(10,), n_tasks=200, query_size=100
    )
    assert maml.metric == "mse"
    assert maml.at(10).mean + maml.at(10).ci95 < scratch.at(10).mean - scratch.at(10).ci95


@pytest.mark.parametrize(
    "updater",
    [
        GradientDescent(optimizer="adam", lr=3e-3, epochs=3),
        RandomSearch(sigma=0.02, iterations=30, pairs=4, lr=3e-3),
    ],
    ids=["gradient_descent", "random_search"],
)
def test_the_per_task_updaters_serve_meta_training(updater: GradientDescent | RandomSearch) -> None:
    strategy, model = _maml()
    problem = meta_problem(strategy, FAMILY, meta_batch=10, draws_per_epoch=10, val_tasks=50)
    assert problem.stochastic and type(updater).stochastic_objectives
    before = problem.validate(model)
    calls: list[tuple[int, float]] = []
    result = updater.fit(model, problem, lambda step, value: calls.append((step, value)))
    assert [s for s, _ in calls] == list(range(1, len(calls) + 1)) and len(calls) == 3
    assert problem.validate(model) == pytest.approx(min(v for _, v in calls))
    assert problem.validate(model) < before
    assert math.isfinite(result.train_loss)


def test_random_search_meta_training_is_reproducible_and_refuses_one_plus_one() -> None:
    def run() -> dict[str, torch.Tensor]:
        strategy, model = _maml()
        problem = meta_problem(strategy, FAMILY, meta_batch=5, draws_per_epoch=5, val_tasks=10)
        RandomSearch(sigma=0.02, iterations=5, pairs=2).fit(model, problem, lambda s, v: None)
        return model.state_dict()

    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strategy, model = _maml()
    with pytest.raises(ValueError, match="mode='antithetic'"):
        RandomSearch(mode="one_plus_one").fit(
            model, meta_problem(strategy, FAMILY, val_tasks=5), lambda s, v: None
        )


def test_protonet_trains_on_digits_with_five_way_validation() -> None:
    strategy = ProtoNet(hidden=(16, 16))
    train = Digits(n_way=10, k_shot=1, k_query=3)
    model = strategy.build(train.info(), torch.Generator().manual_seed(0))
    problem = meta_problem(
        strategy, train, meta_batch=1, draws_per_epoch=30, val_family=Digits(), val_tasks=50
    )
    assert problem.higher_is_better
    before = problem.validate(model)
    GradientDescent(optimizer="adam", lr=1e-3, epochs=2).fit(model, problem, lambda s, v: None)
    assert problem.validate(model) > before


def test_a_group_normalised_protonet_with_shifted_training_images_trains_and_round_trips(
    tmp_path: Path,
) -> None:
    strategy = ProtoNet(network="convnorm", hidden=(8, 8, 8), shift=1)
    train = Digits(n_way=10, k_shot=1, k_query=3)
    model = strategy.build(train.info(), torch.Generator().manual_seed(0))
    batch = train.sample("meta_train", 2, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    shifted = strategy.meta_loss(model, batch)
    assert not torch.equal(shifted, ProtoNet("convnorm", (8, 8, 8)).meta_loss(model, batch))
    plain = ProtoNet("convnorm", (8, 8, 8))
    fixed = train.sample("meta_train", 20, torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = float(plain.meta_loss(model, fixed))
    problem = meta_problem(
        strategy, train, meta_batch=1, draws_per_epoch=30, val_family=Digits(), val_tasks=50
    )
    GradientDescent(optimizer="adam", lr=1e-3, epochs=2).fit(model, problem, lambda s, v: None)
    with torch.no_grad():
        assert float(plain.meta_loss(model, fixed)) < before
    assert problem.validate(model) > 0.5  # 5-way chance is 20%
    save_meta_learner(tmp_path / "theta.safetensors", strategy, model, train.info())
    loaded_strategy, loaded, _ = load_meta_learner(tmp_path / "theta.safetensors", {"protonet": ProtoNet})
    task = Digits().sample("meta_test", 1, torch.Generator().manual_seed(0)).task(0)
    ours = strategy.adapt(model, task.support_x, task.support_y, steps=0)(task.query_x)
    assert torch.equal(ours, loaded_strategy.adapt(loaded, task.support_x, task.support_y, 0)(task.query_x))
    with pytest.raises(ValueError, match="shift must be a non-negative integer"):
        ProtoNet(shift=-1).meta_loss(model, batch)


def test_a_protonet_ensemble_trains_each_member_on_its_own_loss_and_sums_their_logits(
    tmp_path: Path,
) -> None:
    train = Digits(n_way=10, k_shot=1, k_query=3)
    strategy = ProtoNet(hidden=(8, 8), members=3)
    model = strategy.build(train.info(), torch.Generator().manual_seed(0))
    batch = train.sample("meta_train", 2, torch.Generator().manual_seed(0))
    alone = [ProtoNet(hidden=(8, 8)).build(train.info()) for _ in range(3)]
    for one, net in zip(alone, model.net.nets, strict=True):
        one.net.load_state_dict(net.state_dict())
    assert len({str(net.state_dict()["features.0.weight"][0, 0]) for net in model.net.nets}) == 3
    # the ensemble's loss is the mean of its members' own losses (so each trains as if alone) ...
    losses = [ProtoNet(hidden=(8, 8)).meta_loss(one, batch) for one in alone]
    assert torch.allclose(strategy.meta_loss(model, batch), torch.stack(losses).mean(), atol=1e-6)
    # ... and its logits on a task are the sum of theirs
    task = Digits().sample("meta_test", 1, torch.Generator().manual_seed(0)).task(0)
    with torch.no_grad():
        summed = sum(ProtoNet().adapt(one, task.support_x, task.support_y, 0)(task.query_x) for one in alone)
        ours = strategy.adapt(model, task.support_x, task.support_y, 0)(task.query_x)
    assert torch.allclose(ours, summed, atol=1e-4)
    problem = meta_problem(
        strategy, train, meta_batch=1, draws_per_epoch=30, val_family=Digits(), val_tasks=50
    )
    before = problem.validate(model)
    GradientDescent(optimizer="adam", lr=1e-3, epochs=2).fit(model, problem, lambda s, v: None)
    assert problem.validate(model) > before
    save_meta_learner(tmp_path / "theta.safetensors", strategy, model, train.info())
    loaded_strategy, loaded, _ = load_meta_learner(tmp_path / "theta.safetensors", {"protonet": ProtoNet})
    assert loaded_strategy.get_params()["members"] == 3
    again = strategy.adapt(model, task.support_x, task.support_y, 0)(task.query_x)
    assert torch.equal(again, loaded_strategy.adapt(loaded, task.support_x, task.support_y, 0)(task.query_x))
    for bad in (0, 1.5, True, 17):
        with pytest.raises(ValueError, match="members must be an integer from 1 to 16"):
            ProtoNet(members=bad).build(train.info())


def test_a_transductive_protonet_refines_its_prototypes_with_the_rows_it_predicts(tmp_path: Path) -> None:
    family = Digits(n_way=5, k_shot=1, k_query=15)
    inductive, transductive = ProtoNet(network="identity"), ProtoNet(network="identity", transductive=3)
    model = inductive.build(family.info())
    # nearest centroid on raw pixels: the 75 unlabelled query images correct 1-shot prototypes
    plain = adaptation_scores(inductive, model, family, steps=(0,), n_tasks=200)[0]
    refined = adaptation_scores(transductive, model, family, steps=(0,), n_tasks=200)[0]
    mean, ci = mean_ci95(refined - plain)
    assert mean - ci > 0.02, (mean, ci)
    task = family.sample("meta_test", 1, torch.Generator().manual_seed(0)).task(0)
    predict = transductive.adapt(model, task.support_x, task.support_y, 0)
    together = predict(task.query_x)
    assert together.shape == (75, 5) and torch.isfinite(together).all()
    assert predict(task.query_x[:1]).shape == (1, 5)  # one row alone is refined with itself only
    assert not torch.allclose(predict(task.query_x[:3]), together[:3])  # rows are predicted together
    # one outlying row (a pixel of 1e6) weighs as much as any other: the other rows keep their labels
    outlier = task.query_x[:1].clone()
    outlier[0, 0, 3, 3] = 1e6
    with_outlier = predict(torch.cat([task.query_x, outlier]))[:-1]
    assert (with_outlier.argmax(dim=-1) == together.argmax(dim=-1)).float().mean() >= 0.95
    # embeddings are centred and scaled to unit length: the labels do not depend on the inputs' scale
    scaled = transductive.adapt(model, task.support_x * 7, task.support_y, 0)(task.query_x * 7)
    assert torch.equal(scaled.argmax(dim=-1), together.argmax(dim=-1))
    save_meta_learner(tmp_path / "theta.safetensors", transductive, model, family.info())
    loaded_strategy, loaded, _ = load_meta_learner(tmp_path / "theta.safetensors", {"protonet": ProtoNet})
    assert loaded_strategy.get_params()["transductive"] == 3
    again = loaded_strategy.adapt(loaded, task.support_x, task.support_y, 0)(task.query_x)
    assert torch.equal(again, together)
    for bad in (-1, 1.5, True, 101):
        with pytest.raises(ValueError, match="transductive must be an integer from 0"):
            ProtoNet(transductive=bad).build(family.info())


def test_protonet_steps_fine_tune_each_task_s_copy_on_its_leave_one_out_loss(tmp_path: Path) -> None:
    strategy = ProtoNet(network="conv", hidden=(8, 8), members=2, transductive=1)
    family = Digits(n_way=5, k_shot=3, k_query=4)
    model = strategy.build(family.info(), torch.Generator().manual_seed(0))
    theta = {k: v.clone() for k, v in model.state_dict().items()}
    batch = family.sample("meta_test", 3, torch.Generator().manual_seed(0))
    with torch.no_grad():
        states = strategy.adapt_batch(model, batch.support_x, batch.support_y, [0, 1, 4])
    assert not any(k.startswith("net.") for k in states[0])  # 0 steps: θ's own weights
    tuned = {k: v for k, v in states[2].items() if k.startswith("net.")}
    assert tuned and all(v.shape[0] == 3 for v in tuned.values())  # one copy per task
    assert all(torch.equal(v, theta[k]) for k, v in model.state_dict().items())  # θ is untouched

    @torch.no_grad()
    def loo_loss(state: dict[str, torch.Tensor]) -> float:  # the support's leave-one-out loss
        own = {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}
        params = own or {k: v.expand(3, *v.shape) for k, v in model.net_params().items()}
        embedded = torch.stack(
            [
                torch.func.functional_call(
                    model.net, {k: v[i] for k, v in params.items()}, (batch.support_x[i],)
                )
                for i in range(3)
            ]
        )
        total = 0.0
        for i in range(3):
            for r in range(len(batch.support_y[i])):
                keep = torch.ones(len(batch.support_y[i]), dtype=torch.bool)
                keep[r] = False
                zs, ys = embedded[i][keep], batch.support_y[i][keep]
                protos = torch.stack([zs[ys == c].mean(0) for c in range(5)])
                logits = -(embedded[i][r] - protos).pow(2).sum(-1)
                total += float(torch.nn.functional.cross_entropy(logits[None], batch.support_y[i][r : r + 1]))
        return total

    losses = [loo_loss(state) for state in states]
    assert losses[2] < losses[1] < losses[0], losses  # each step fits the support better
    one = strategy.adapt(model, batch.support_x[1], batch.support_y[1], steps=4)
    together = strategy.predict_batch(model, states[2], batch.query_x)[1]
    assert torch.allclose(one(batch.query_x[1]), together, atol=1e-4)  # a task's steps are its own
    save_meta_learner(tmp_path / "theta.safetensors", strategy, model, family.info())
    loaded_strategy, loaded, _ = load_meta_learner(tmp_path / "theta.safetensors", {"protonet": ProtoNet})
    again = loaded_strategy.adapt(loaded, batch.support_x[1], batch.support_y[1], steps=4)(batch.query_x[1])
    assert torch.allclose(again, one(batch.query_x[1]), atol=1e-5)
    # 1-shot: no class has a leave-one-out prototype, so no step changes anything
    shot1 = Digits(n_way=5, k_shot=1, k_query=4).sample("meta_test", 2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        zero, four = strategy.adapt_batch(model, shot1.support_x, shot1.support_y, [0, 4])
    assert zero.keys() == four.keys() and all(torch.equal(zero[k], four[k]) for k in zero)
    assert (
        strategy.steps_taken(shot1.support_y[0], 4) == 0 and strategy.steps_taken(batch.support_y[0], 4) == 4
    )
    assert ProtoNet(network="identity").steps_taken(batch.support_y[0], 4) == 0  # nothing to fine-tune
    for bad in (0, -1e-3, True, "fast", float("inf")):
        with pytest.raises(ValueError, match="finetune_lr must be a positive number"):
            ProtoNet(network="conv", hidden=(8, 8), finetune_lr=bad).adapt_batch(
                model, batch.support_x, batch.support_y, [1]
            )


def test_a_digits_split_without_meta_validation_classes_trains_on_both_and_keeps_meta_test_unseen() -> None:
    default, final = Digits(seed=3), Digits(train_classes=32, val_classes=0, seed=3)
    assert final.pool_classes("meta_test") == default.pool_classes("meta_test")
    assert set(final.pool_classes("meta_train")) == set(default.pool_classes("meta_train")) | set(
        default.pool_classes("meta_val")
    )
    with pytest.raises(FamilyError, match="0 classes of the meta_val pool"):
        final.sample("meta_val", 1, torch.Generator())
    with pytest.raises(FamilyError, match="val_classes"):
        Digits(val_classes=-1).pool_classes("meta_train")


def test_maml_adapts_a_group_normalised_conv_net_per_task() -> None:
    strategy = MAML(network="convnorm", hidden=(8, 8), inner_lr=0.4)
    family = Digits(n_way=5, k_shot=1, k_query=3)
    model = strategy.build(family.info(), torch.Generator().manual_seed(0))
    batch = family.sample("meta_train", 3, torch.Generator().manual_seed(0))
    loss = strategy.meta_loss(model, batch)  # second order, through vmap(functional_call)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters())
    states = strategy.adapt_batch(model, batch.support_x, batch.support_y, [1])[0]
    one = strategy.adapt(model, batch.support_x[1], batch.support_y[1], steps=1).state
    assert all(torch.allclose(states[k][1], one[k][0], atol=1e-6) for k in one)


def test_baselines_that_are_not_meta_trained_are_refused_by_meta_problem() -> None:
    with pytest.raises(ValueError, match="not meta-trained"):
        meta_problem(Scratch(), FAMILY)
    with pytest.raises(ValueError, match="handles"):
        meta_problem(ProtoNet(), FAMILY)


def test_save_and_load_round_trip_rebuilds_the_same_adapted_predictor(tmp_path: Path) -> None:
    strategy, model = _maml(seed=3)
    path = tmp_path / "theta.safetensors"
    save_meta_learner(path, strategy, model, FAMILY.info())
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert set(header) - {"__metadata__"} == set(model.state_dict())
    loaded_strategy, loaded, info = load_meta_learner(path, {"maml": MAML})
    assert loaded_strategy.get_params() == strategy.get_params() and info == FAMILY.info()
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    task = FAMILY.sample("meta_test", 1, torch.Generator().manual_seed(0), query_size=20).task(0)
    ours = strategy.adapt(model, task.support_x, task.support_y, steps=5)(task.query_x)
    theirs = loaded_strategy.adapt(loaded, task.support_x, task.support_y, steps=5)(task.query_x)
    assert ours.shape == (20, 1) and torch.equal(ours, theirs)


def test_load_refuses_unknown_strategies_and_foreign_files(tmp_path: Path) -> None:
    strategy, model = _maml()
    path = tmp_path / "theta.safetensors"
    save_meta_learner(path, strategy, model, FAMILY.info())
    with pytest.raises(ValueError, match="not available"):
        load_meta_learner(path, {})
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(ValueError, match="not a meta-learner file"):
        load_meta_learner(bad, {"maml": MAML})


def test_mean_ci95_is_the_normal_interval() -> None:
    mean, ci = mean_ci95([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5) and ci == pytest.approx(1.96 * math.sqrt(5 / 3) / 2)
