"""Few-shot benchmark: sinusoid regression (Finn et al. 2017 protocol) and 5-way digits.

    python bench/fewshot.py            # full run, one CPU thread; writes docs/benchmarks_fewshot.md
    python bench/fewshot.py --quick    # a minute or two, for a smoke test

Every meta-strategy is meta-trained through the ordinary updater plugins (gradient_descent with Adam,
random_search in its antithetic-ES mode) on :func:`engine.meta.meta_problem`, and scored by
:func:`engine.meta.evaluate_adaptation` on held-out meta-test tasks (mean ± 95% CI).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.func import functional_call

from engine import Updater
from engine.meta import (
    AdaptationCurve,
    MetaModel,
    MetaStrategy,
    TaskFamily,
    evaluate_adaptation,
    meta_problem,
    task_loss,
)
from plugins.meta import FOMAML, MAML, Digits, MetaSGD, Pretrain, ProtoNet, Reptile, Scratch, Sinusoid
from plugins.updaters import GradientDescent, RandomSearch

SIN_STEPS = tuple(range(11))


def _train(
    strategy: MetaStrategy,
    family: TaskFamily,
    updater: Updater | None,
    *,
    draws_per_epoch: int,
    meta_batch: int,
    seed: int = 0,
    val_family: TaskFamily | None = None,
    val_tasks: int = 100,
) -> tuple[MetaModel, float]:
    model = strategy.build(family.info(), torch.Generator().manual_seed(seed))
    if updater is None or not strategy.meta_trained:
        return model, 0.0
    problem = meta_problem(
        strategy,
        family,
        meta_batch=meta_batch,
        draws_per_epoch=draws_per_epoch,
        val_tasks=val_tasks,
        seed=seed,
        val_family=val_family,
    )
    start = time.perf_counter()
    updater.fit(model, problem, lambda step, value: None)
    return model, time.perf_counter() - start


def _fmt(mean: float, ci: float, digits: int = 3, scale: float = 1.0) -> str:
    if not abs(mean) < 1e3:
        return "diverged"
    return f"{mean * scale:.{digits}f} ± {ci * scale:.{digits}f}"


def _time_maml(k: int, iterations: int) -> dict[str, float]:
    """CPU ms (and wall ms, key ``<name>_wall``) per meta-iteration of second-order MAML.

    One meta-iteration: sampling, meta-loss, backward, Adam step. CPU time is this process's, so
    other processes on the machine inflate it less than wall-clock time.

    ``batched``: the built-in MLP's batched forward; ``vmap``: the same network hidden in a
    ``Sequential``, so the inner loop runs through ``torch.func.vmap(functional_call)``; ``loop``: a
    per-task Python loop with ``autograd.grad(create_graph=True)``.
    """
    family = Sinusoid(k_shot=k, k_query=k)
    strategy = MAML()
    model = strategy.build(family.info(), torch.Generator().manual_seed(0))
    wrapped = MetaModel(torch.nn.Sequential(model.net))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)

    def batched() -> None:
        loss = strategy.meta_loss(model, family.sample("meta_train", 25, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()

    def vmapped() -> None:
        loss = strategy.meta_loss(wrapped, family.sample("meta_train", 25, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()

    def loop() -> None:
        batch = family.sample("meta_train", 25, gen)
        params = model.net_params()
        losses = []
        for i in range(len(batch)):
            inner = task_loss(
                "regression", functional_call(model.net, params, (batch.support_x[i],)), batch.support_y[i]
            )
            grads = torch.autograd.grad(inner, list(params.values()), create_graph=True)
            fast = {n: p - 0.01 * g for (n, p), g in zip(params.items(), grads, strict=True)}
            out = functional_call(model.net, fast, (batch.query_x[i],))
            losses.append(task_loss("regression", out, batch.query_y[i]))
        opt.zero_grad()
        torch.stack(losses).mean().backward()
        opt.step()

    results = {}
    for name, fn, n in (
        ("batched", batched, iterations),
        ("vmap", vmapped, iterations // 2),
        ("loop", loop, max(iterations // 5, 20)),
    ):
        for _ in range(10):
            fn()
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        results[name] = (time.process_time() - cpu) / n * 1e3
        results[name + "_wall"] = (time.perf_counter() - start) / n * 1e3
    return results


def sinusoid_section(quick: bool, iterations: int, es_iterations: int) -> list[str]:
    lines = ["## Sinusoid regression (Finn et al. 2017 protocol)", ""]
    per_epoch = 50 if quick else 1000
    epochs = max(iterations // per_epoch, 1)
    n_test = 100 if quick else 600
    adam = GradientDescent(optimizer="adam", lr=1e-3, epochs=epochs)
    es = RandomSearch(sigma=0.02, iterations=es_iterations, mode="antithetic", pairs=8, lr=3e-3)
    rows: list[tuple[str, str, Callable[[], MetaStrategy], Updater | None]] = [
        ("MAML (2nd order)", "gradient_descent", MAML, adam),
        ("MAML (2nd order, 5 inner steps)", "gradient_descent", lambda: MAML(inner_steps=5), adam),
        ("FOMAML", "gradient_descent", FOMAML, adam),
        ("Reptile (5 inner steps)", "gradient_descent", Reptile, adam),
        ("Meta-SGD", "gradient_descent", MetaSGD, adam),
        ("MAML objective, ES", "random_search", FOMAML, es),
        ("pretrain + fine-tune", "gradient_descent", Pretrain, adam),
        ("scratch", "-", Scratch, None),
    ]
    lines += [
        f"Net 1-40-40-1 ReLU, meta-batch 25, inner lr α=0.01 (1 inner step unless said), Adam 1e-3 for "
        f"{epochs * per_epoch} meta-iterations (ES: {es_iterations} iterations of 8 antithetic pairs, "
        f"σ=0.02, Adam 3e-3); test on {n_test} meta-test tasks, K support and 100 query points, "
        "SGD α=0.01; query MSE mean ± 95% CI; one CPU thread.",
        "",
    ]
    for k in (5, 10):
        family = Sinusoid(k_shot=k, k_query=k)
        lines += [f"### K = {k}", ""]
        lines.append("| strategy | updater | train s | " + " | ".join(f"{s} steps" for s in SIN_STEPS) + " |")
        lines.append("|---" * (3 + len(SIN_STEPS)) + "|")
        for label, updater_name, make, updater in rows:
            strategy = make()
            model, seconds = _train(strategy, family, updater, draws_per_epoch=per_epoch, meta_batch=25)
            curve = evaluate_adaptation(
                strategy, model, family, steps=SIN_STEPS, n_tasks=n_test, query_size=100
            )
            cells = " | ".join(_fmt(curve.at(s).mean, curve.at(s).ci95) for s in SIN_STEPS)
            lines.append(f"| {label} | {updater_name} | {seconds:.0f} | {cells} |")
            print(f"sinusoid K={k} {label}: done in {seconds:.0f}s", flush=True)
        lines.append("")
    return lines


def speed_section(quick: bool) -> list[str]:
    t = _time_maml(10, 50 if quick else 1000)
    rows = [
        ("batched MLP forward (built-in `mlp` network)", "batched"),
        ("`torch.func.vmap(functional_call)` (any network)", "vmap"),
        ("per-task Python loop (autograd, create_graph)", "loop"),
    ]
    return [
        "## Speed (second-order MAML, sinusoid K=10, meta-batch 25, net 1-40-40-1, one thread)",
        "",
        "Per meta-iteration: sample the meta-batch, meta-loss through one inner step, backward, Adam step. "
        "CPU time of the bench process (wall-clock time in brackets; other processes inflate it).",
        "",
        "| implementation | CPU ms / meta-iteration (wall) | speed-up over the loop (CPU) |",
        "|---|---|---|",
        *(
            f"| {label} | {t[key]:.2f} ({t[key + '_wall']:.2f}) | {t['loop'] / t[key]:.1f}x |"
            for label, key in rows
        ),
        "",
    ]


def _digits_curve(
    label: str,
    strategy: MetaStrategy,
    model: MetaModel,
    family: TaskFamily,
    n_test: int,
    steps: tuple[int, ...],
) -> AdaptationCurve:
    curve = evaluate_adaptation(strategy, model, family, steps=steps, n_tasks=n_test)
    print(f"digits {label}: {[round(p.mean, 4) for p in curve.points]}", flush=True)
    return curve


def digits_section(quick: bool, split_seed: int = 0) -> list[str]:
    n_test = 100 if quick else 600
    proto_iters = 100 if quick else 2000
    maml_iters = 40 if quick else 1000
    lines = [
        "## Digits 5-way classification (Omniglot construction on sklearn's 8x8 digits)",
        "",
        "40 classes = 10 digits x 4 rotations; split 24 meta-train / 8 meta-val / 8 meta-test "
        f"classes (split seed {split_seed}: meta-test classes "
        f"{Digits(seed=split_seed).pool_classes('meta_test')}, class = 4 x digit + quarter turns); "
        f"accuracy on 15 query images per class, mean ± 95% CI over {n_test} meta-test tasks; "
        "one CPU thread. ProtoNet: conv 64-64 embedding, 20-way episodes (5 query/class), Adam 1e-3, "
        f"{proto_iters} episodes. MAML: conv 32-32, inner lr 0.4, 1 step (10 at test), meta-batch 8, "
        f"Adam 1e-3, {maml_iters} iterations. "
        f"Pretrain: same net trained on the meta-train episodes without adaptation, fine-tuned with lr 0.4.",
        "",
        "| strategy | train s | 1-shot, 0 steps | 1-shot, 10 steps | 5-shot, 0 steps | 5-shot, 10 steps |",
        "|---|---|---|---|---|---|",
    ]
    results: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    for shot in (1, 5):
        test = Digits(n_way=5, k_shot=shot, k_query=15, seed=split_seed)
        train20 = Digits(n_way=20, k_shot=shot, k_query=5, seed=split_seed)
        entries: list[tuple[str, MetaStrategy, TaskFamily, TaskFamily | None, Updater | None, int, int]] = [
            ("nearest centroid, raw pixels", ProtoNet(network="identity"), test, None, None, 1, 1),
            (
                "prototypical network",
                ProtoNet(),
                train20,
                test,
                GradientDescent(optimizer="adam", lr=1e-3, epochs=max(proto_iters // 100, 1)),
                100,
                1,
            ),
            (
                "MAML",
                MAML(network="conv", hidden=(32, 32), inner_lr=0.4),
                test,
                None,
                GradientDescent(optimizer="adam", lr=1e-3, epochs=max(maml_iters // 20, 1)),
                20,
                8,
            ),
            (
                "pretrain + fine-tune",
                Pretrain(network="conv", hidden=(32, 32), inner_lr=0.4),
                test,
                None,
                GradientDescent(optimizer="adam", lr=1e-3, epochs=max(maml_iters // 20, 1)),
                20,
                8,
            ),
        ]
        for label, strategy, fam, val_fam, updater, per_epoch, batch in entries:
            model, secs = _train(
                strategy, fam, updater, draws_per_epoch=per_epoch, meta_batch=batch, val_family=val_fam
            )
            seconds[label] = seconds.get(label, 0.0) + secs
            curve = _digits_curve(f"{label} {shot}-shot", strategy, model, test, n_test, (0, 10))
            results.setdefault(label, []).extend(
                _fmt(curve.at(s).mean, curve.at(s).ci95, 1, 100.0) + "%" for s in (0, 10)
            )
    for label, cells in results.items():
        lines.append(f"| {label} | {seconds[label]:.0f} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test in a minute or two")
    parser.add_argument("--part", choices=("all", "sinusoid", "speed", "digits"), default="all")
    parser.add_argument("--iterations", type=int, default=20000, help="sinusoid meta-iterations (gradient)")
    parser.add_argument("--es-iterations", type=int, default=2000, help="sinusoid ES iterations")
    parser.add_argument(
        "--digits-split-seed",
        type=int,
        default=0,
        help="seed of the digits class split (meta-test classes vary)",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks_fewshot.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    lines = [
        "# Few-shot meta-learning benchmarks",
        "",
        "Produced by `python bench/fewshot.py" + (" --quick" if args.quick else "") + "`.",
        "",
    ]
    if args.part in ("all", "sinusoid"):
        iters = 200 if args.quick else args.iterations
        lines += sinusoid_section(args.quick, iters, 20 if args.quick else args.es_iterations)
    if args.part in ("all", "speed"):
        lines += speed_section(args.quick)
    if args.part in ("all", "digits"):
        lines += digits_section(args.quick, args.digits_split_seed)
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
