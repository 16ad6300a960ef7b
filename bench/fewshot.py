"""Few-shot benchmark: sinusoid regression (Finn et al. 2017 protocol) and 5-way digits.

    python bench/fewshot.py                      # every section, one CPU thread (an hour or more)
    python bench/fewshot.py --part speed digits  # only those sections (about ten minutes)
    python bench/fewshot.py --quick              # a minute or two, for a smoke test

Each run replaces its own sections of docs/benchmarks_fewshot.md and leaves the others.

Every meta-strategy is meta-trained through the ordinary updater plugins (gradient_descent with Adam,
random_search in its antithetic-ES mode) on :func:`engine.meta.meta_problem`, and scored by
:func:`engine.meta.evaluate_adaptation` on held-out meta-test tasks (mean ± 95% CI).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch
from _docs import replace_section
from torch.func import functional_call

from engine import Updater
from engine.meta import (
    MetaModel,
    MetaStrategy,
    NetworkName,
    TaskFamily,
    adaptation_scores,
    evaluate_adaptation,
    mean_ci95,
    meta_problem,
    task_loss,
)
from plugins.meta import FOMAML, MAML, Digits, MetaSGD, Pretrain, ProtoNet, Reptile, Scratch, Sinusoid
from plugins.updaters import GradientDescent, RandomSearch

SIN_STEPS = tuple(range(11))
TRANSDUCTIVE = 3
"""Soft k-means steps of the transductive digits rows (chosen on meta-validation classes)."""


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
    start = time.process_time()  # CPU time of this one-thread process: other processes inflate it less
    updater.fit(model, problem, lambda step, value: None)
    return model, time.process_time() - start


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
        ("MAML objective (2 inner steps), ES", "random_search", lambda: FOMAML(inner_steps=2), es),
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


DIGIT_SPLITS = (0, 1, 2, 3, 4)
"""Class splits of the digits table, fixed before any result was looked at: with 8 meta-test classes
the split decides how hard the test is (seed 0 puts digit 1 turned 90 and 270 degrees together), so
every figure pools the meta-test tasks of all five."""


def _pooled(values: list[torch.Tensor]) -> str:
    mean, ci = mean_ci95(torch.cat(values))
    return _fmt(mean, ci, 1, 100.0) + "%"


@dataclass(frozen=True)
class DigitsSetup:
    """The digits section's learners and budgets (the same for every class split)."""

    tasks_per_split: int
    proto_episodes: int
    maml_iters: int
    proto_hidden: tuple[int, ...] = (64, 64)
    proto_query: int = 5
    proto_network: NetworkName = "conv"
    proto_shift: int = 0
    proto_members: int = 3

    @property
    def net(self) -> str:
        return f"{self.proto_network} " + "-".join(str(h) for h in self.proto_hidden)

    def labels(self) -> tuple[str, ...]:
        """Rows: the baselines, the ProtoNet rows (the sixth is the final protocol), then the
        transductive rows (nearest centroid and the final protocol's model, refined with the query set)."""
        proto = f"prototypical network ({self.net}, 20-way episodes)"
        return (
            "nearest centroid, raw pixels",
            "MAML (conv 32-32)",
            "pretrain + fine-tune (conv 32-32)",
            proto,
            f"{proto}, {self.proto_members} members",
            f"{proto}, {self.proto_members} members, meta-train + meta-val classes",
            f"nearest centroid, raw pixels, transductive ({TRANSDUCTIVE} steps)",
            f"{proto}, {self.proto_members} members, meta-train + meta-val classes, transductive "
            f"({TRANSDUCTIVE} steps)",
        )


SplitResult = tuple[dict[tuple[str, int, int], torch.Tensor], dict[str, float], list[str]]


def _digits_split(split: int, setup: DigitsSetup) -> SplitResult:
    """Train every learner of ``setup`` on one class split and score it on that split's meta-test tasks
    at 1 and 5 shots: ``({(label, shot, steps): per-task accuracy}, {label: CPU s}, per-split cells)``."""
    torch.set_num_threads(1)
    torch.manual_seed(split)
    labels = setup.labels()
    seconds = dict.fromkeys(labels, 0.0)
    tests = {shot: Digits(n_way=5, k_shot=shot, k_query=15, seed=split) for shot in (1, 5)}
    ncc = ProtoNet(network="identity")
    models: dict[str, tuple[MetaStrategy, MetaModel]] = {labels[0]: (ncc, ncc.build(tests[1].info()))}
    for label, strategy in (
        (labels[1], MAML(network="conv", hidden=(32, 32), inner_lr=0.4)),
        (labels[2], Pretrain(network="conv", hidden=(32, 32), inner_lr=0.4)),
    ):
        adam = GradientDescent(optimizer="adam", lr=1e-3, epochs=max(setup.maml_iters // 20, 1))
        models[label] = strategy, _timed(label, seconds, strategy, tests[1], adam, 20, 8)
    # ProtoNet rows: one network; an ensemble; the ensemble trained on the meta-validation classes too
    # (chosen on meta-validation classes before the meta-test run; its checkpoint is still picked on
    # meta-validation tasks, which it now trains on, so only the meta-test classes stay unseen).
    all_train = Digits().train_classes + Digits().val_classes
    for label, members, train_classes in (
        (labels[3], 1, Digits().train_classes),
        (labels[4], setup.proto_members, Digits().train_classes),
        (labels[5], setup.proto_members, all_train),
    ):
        protonet = ProtoNet(setup.proto_network, setup.proto_hidden, setup.proto_shift, members)
        val_classes = all_train - train_classes
        train20 = Digits(20, 1, setup.proto_query, train_classes, val_classes, seed=split)
        assert train20.pool_classes("meta_test") == tests[1].pool_classes("meta_test")
        adam = GradientDescent(optimizer="adam", lr=1e-3, epochs=max(setup.proto_episodes // 100, 1))
        model = _timed(label, seconds, protonet, train20, adam, 100, 1, val_family=tests[1])
        models[label] = protonet, model
    # Transductive rows: the same θ, prototypes refined with each task's query images.
    models[labels[6]] = ProtoNet(network="identity", transductive=TRANSDUCTIVE), models[labels[0]][1]
    final = models[labels[5]][0]
    models[labels[7]] = ProtoNet(**{**final.get_params(), "transductive": TRANSDUCTIVE}), models[labels[5]][1]
    scores: dict[tuple[str, int, int], torch.Tensor] = {}
    cells = []
    for shot, test in tests.items():
        for label, (strategy, model) in models.items():
            steps = (0, 10) if strategy.takes_steps else (0,)  # nearest centroid takes no step
            got = adaptation_scores(strategy, model, test, steps=steps, n_tasks=setup.tasks_per_split)
            for step in (0, 10):
                scores[(label, shot, step)] = got.get(step, got[0])
        cells += [_pooled([scores[(lab, shot, 0)]]) for lab in (labels[0], labels[5], labels[7])]
        cells.append(_pooled([scores[(labels[7], shot, 10)]]))
    print(f"digits split {split}: {cells}", flush=True)
    return scores, seconds, cells


def digits_section(splits: tuple[int, ...], setup: DigitsSetup, jobs: int = 1) -> list[str]:
    """5-way 1- and 5-shot accuracy, pooled over the meta-test tasks of several class splits.

    Per split, each meta-learner is trained once (ProtoNet on 20-way 1-shot episodes, MAML and
    pretraining on 5-way 1-shot episodes) and tested at both shots on the same meta-test tasks.
    ``jobs`` splits run at once, each in its own one-thread process.
    """
    labels = setup.labels()
    with ProcessPoolExecutor(max(1, min(jobs, len(splits))), mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_digits_split, splits, [setup] * len(splits)))
    scores: dict[tuple[str, int, int], list[torch.Tensor]] = {}
    seconds = dict.fromkeys(labels, 0.0)
    per_split = []
    for split, (split_scores, split_seconds, cells) in zip(splits, results, strict=True):
        for key, values in split_scores.items():
            scores.setdefault(key, []).append(values)
        for label, secs in split_seconds.items():
            seconds[label] += secs
        classes = Digits(seed=split).pool_classes("meta_test")
        per_split.append(f"| {split} | {classes} | " + " | ".join(cells) + " |")
    n_test = setup.tasks_per_split * len(splits)
    m = setup.proto_members
    lines = [
        "## Digits 5-way classification (Omniglot construction on sklearn's 8x8 digits)",
        "",
        "40 classes = 10 digits x 4 rotations (class = 4 x digit + quarter turns); each class split puts "
        f"24 classes in meta-train, 8 in meta-val, 8 in meta-test. Split seeds {list(splits)}, "
        f"{setup.tasks_per_split} meta-test tasks each: accuracy on 15 query images per class, mean ± 95% "
        f"CI over the {n_test} pooled tasks; one CPU thread per split ({jobs} at once). ProtoNet: "
        f"{setup.net} embedding trained on 20-way 1-shot episodes ({setup.proto_query} query/class"
        + (f", training images shifted by up to {setup.proto_shift} px" if setup.proto_shift else "")
        + f"), Adam 1e-3, {setup.proto_episodes} episodes per split, the checkpoint with the best "
        "accuracy on 100 5-way meta-validation tasks kept, one model tested at both shots. "
        f"`{m} members`: `ProtoNet(members={m})`, {m} such networks from their own initial weights, "
        "each with its own loss on the same episodes, their logits summed. `meta-train + meta-val "
        "classes`: the same ensemble with the 8 meta-validation classes added to the 24 training "
        "classes (the usual final protocol once the settings are chosen); the meta-test classes stay "
        "unseen. That last row was fixed as the final protocol before its meta-test run. MAML: conv "
        "32-32, inner lr 0.4, 1 step (10 at test), meta-batch 8, Adam 1e-3, "
        f"{setup.maml_iters} iterations on 5-way 1-shot episodes per split. Pretrain: the same net "
        "trained on those episodes without adaptation, fine-tuned with lr 0.4. Train CPU s: summed over "
        "splits.",
        "",
        "| strategy | train CPU s | 1-shot, 0 steps | 1-shot, 10 steps | 5-shot, 0 steps | 5-shot, 10 steps"
        " |",
        "|---|---|---|---|---|---|",
    ]
    for label in labels:
        cells = [_pooled(scores[(label, shot, steps)]) for shot in (1, 5) for steps in (0, 10)]
        lines.append(f"| {label} | {seconds[label]:.0f} | " + " | ".join(cells) + " |")
    lines += ["", *_verdict(scores, labels[:3], labels[5])]
    lines += [*_verdict(scores, (*labels[:3], labels[6]), labels[7]), ""]
    lines += [
        f"Transductive rows: `ProtoNet(transductive={TRANSDUCTIVE})` on the same θ (no retraining): the "
        "support and query embeddings of a task are centred on their joint median and scaled to unit length, "
        f"then the prototypes take {TRANSDUCTIVE} soft k-means steps with the task's 75 query images "
        "(Ren et al. 2018). Each query image's label then depends on the other query images, and the "
        "query sets here are balanced (15 per class); an inductive learner sees one image at a time. The "
        "setting was chosen on meta-validation classes (below) before its meta-test run.",
        "",
        "ProtoNet's steps: each adaptation step fine-tunes the task's own copy of the embedding networks "
        "with one Adam step (lr 3e-4, `ProtoNet(finetune_lr=...)`) on the support set's leave-one-out "
        "prototype loss, then the prototypes are computed as at 0 steps. A 1-shot task has no "
        "leave-one-out prototype, so its 10-step column equals its 0-step one. The learning rate was "
        "chosen on meta-validation classes (below) before its meta-test run.",
        "",
    ]
    lines += [
        "Per split (accuracy after 0 steps, and the transductive row after 10):",
        "",
        "| split seed | meta-test classes | NCC 1-shot | final ProtoNet 1-shot | transductive 1-shot | "
        "transductive 1-shot, 10 steps | NCC 5-shot | final ProtoNet 5-shot | transductive 5-shot | "
        "transductive 5-shot, 10 steps |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *per_split,
        "",
    ]
    return lines


def _timed(
    label: str,
    seconds: dict[str, float],
    strategy: MetaStrategy,
    family: TaskFamily,
    updater: Updater,
    per_epoch: int,
    batch: int,
    val_family: TaskFamily | None = None,
) -> MetaModel:
    model, secs = _train(
        strategy, family, updater, draws_per_epoch=per_epoch, meta_batch=batch, val_family=val_family
    )
    seconds[label] += secs
    return model


def _verdict(
    scores: dict[tuple[str, int, int], list[torch.Tensor]], baselines: tuple[str, ...], best: str
) -> list[str]:
    """Whether ``best`` beats every baseline row by more than the confidence intervals, per shot."""
    out = []
    for shot, target in ((1, 0.88), (5, 0.965)):
        rivals = []
        for label in baselines:
            if label != best:
                rivals += [
                    (mean_ci95(torch.cat(scores[(label, shot, s)])), label, s)
                    for s in _distinct(scores, label, shot)
                ]
        (r_mean, r_ci), r_label, r_steps = max(rivals)
        r_label += "" if r_steps == 0 else f" ({r_steps} steps)"
        for steps in _distinct(scores, best, shot):
            mean, ci = mean_ci95(torch.cat(scores[(best, shot, steps)]))
            ahead = mean - ci > r_mean + r_ci
            out.append(
                f"{shot}-shot: {best}, {steps} steps, {mean * 100:.1f} ± {ci * 100:.1f}% (target ≥ "
                f"{target * 100:.1f}%: {'met' if mean >= target else 'missed'}); best baseline {r_label} "
                f"{r_mean * 100:.1f} ± {r_ci * 100:.1f}%: "
                f"{'ahead by more than the CIs' if ahead else 'NOT ahead by more than the CIs'}."
            )
    return out


def _distinct(
    scores: dict[tuple[str, int, int], list[torch.Tensor]], label: str, shot: int
) -> tuple[int, ...]:
    """Step counts (0, 10) whose scores differ for ``label`` at ``shot``: (0,) if the steps changed none."""
    zero, ten = scores[(label, shot, 0)], scores[(label, shot, 10)]
    return (0,) if all(torch.equal(a, b) for a, b in zip(zero, ten, strict=True)) else (0, 10)


PREAMBLE = """# Few-shot meta-learning benchmarks

Each section is written by `python bench/fewshot.py --part <name>` (`--part all`, the default, writes
every one) and says with which options it was produced; a run replaces only its own sections.
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test in a minute or two")
    parser.add_argument(
        "--part", nargs="+", choices=("all", "sinusoid", "speed", "digits"), default=["all"], help="sections"
    )
    parser.add_argument("--iterations", type=int, default=20000, help="sinusoid meta-iterations (gradient)")
    parser.add_argument("--es-iterations", type=int, default=10000, help="sinusoid ES iterations")
    parser.add_argument(
        "--digits-splits",
        type=int,
        nargs="+",
        default=list(DIGIT_SPLITS),
        help="seeds of the digits class splits whose meta-test tasks are pooled",
    )
    parser.add_argument("--digits-tasks", type=int, default=120, help="meta-test tasks per digits split")
    parser.add_argument(
        "--proto-episodes", type=int, default=2000, help="ProtoNet episodes per split and shot"
    )
    parser.add_argument(
        "--proto-hidden", type=int, nargs="+", default=[64, 64], help="ProtoNet conv channels"
    )
    parser.add_argument("--proto-query", type=int, default=5, help="ProtoNet training query images per class")
    parser.add_argument(
        "--proto-network", choices=("conv", "convnorm"), default="conv", help="ProtoNet embedding network"
    )
    parser.add_argument("--proto-shift", type=int, default=0, help="ProtoNet training shift (pixels)")
    parser.add_argument("--proto-members", type=int, default=3, help="networks in the ProtoNet ensembles")
    parser.add_argument("--jobs", type=int, default=2, help="digits class splits run at once")
    parser.add_argument("--maml-iterations", type=int, default=300, help="digits MAML/pretrain iterations")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks_fewshot.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    parts = {"sinusoid", "speed", "digits"} if "all" in args.part else set(args.part)
    command = "python bench/fewshot.py " + " ".join(sys.argv[1:])
    sections: list[list[str]] = []
    if "sinusoid" in parts:
        iters = 200 if args.quick else args.iterations
        sections.append(sinusoid_section(args.quick, iters, 20 if args.quick else args.es_iterations))
    if "speed" in parts:
        sections.append(speed_section(args.quick))
    if "digits" in parts:
        q = args.quick
        sections.append(
            digits_section(
                (0,) if q else tuple(args.digits_splits),
                DigitsSetup(
                    50 if q else args.digits_tasks,
                    100 if q else args.proto_episodes,
                    40 if q else args.maml_iterations,
                    tuple(args.proto_hidden),
                    args.proto_query,
                    args.proto_network,
                    args.proto_shift,
                    args.proto_members,
                ),
                args.jobs,
            )
        )
    text = args.out.read_text(encoding="utf-8") if args.out.exists() else PREAMBLE
    if not text.startswith(PREAMBLE):
        text = PREAMBLE + "\n" + text[text.find("\n## ") + 1 :] if "\n## " in text else PREAMBLE
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    for lines in sections:
        lines.insert(2, f"Produced by `{command.strip()}` on {time.strftime('%Y-%m-%d')}.")
        lines.insert(3, "")
        section = "\n".join(lines) + "\n"
        print(section, flush=True)
        replace_section(args.out, lines[0], section)


if __name__ == "__main__":
    main()
