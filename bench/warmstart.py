"""Warm-start benchmark: leave-one-task-out over classification tasks, five ways to start a search.

Run from the repository root::

    python bench/warmstart.py            # full: 10 tasks x 3 seeds, 20 trials per target task
    python bench/warmstart.py --quick    # smoke run: 4 tasks, 1 seed, 8 trials, docs left alone

Every method runs the real engine (:func:`engine.search.run`) with the built-in strategies (``linear``,
``mlp``) and updaters (``gradient_descent``, ``random_search``), Optuna's TPE sampler and the median
pruner, holdout validation, accuracy. For each seed:

* **cold TPE**: each task searched alone with warm start off, all into one storage, the *history*;
* **random**: the same with Optuna's ``RandomSampler``;
* **kNN** and **transfer**: each target task searched in a copy of that seed's history with warm start
  on (``$STRATAGEM_WARM_START`` = ``knn`` / ``transfer``); the target's own cold study is in the copy,
  and the engine must (and does) leave it out, so the sources are the other tasks' cold-TPE studies;
* **zero-shot**: the first configuration :func:`engine.recommendation.recommend` returns from that history
  (the target excluded), evaluated as a single trial.

The incumbent after ``n`` trials is the complete trial with the best validation value among the first
``n`` (pruned and failed trials count as trials); it is scored by its test-split accuracy. A task's regret
is ``(best - incumbent) / (best - worst)`` with ``best`` / ``worst`` the highest / lowest test accuracy
of any trial of any method and seed on that task (1 before the first complete trial). "Trials to 1%" is
the first ``n`` whose incumbent is within 1% (relative) of ``best``; a run that never gets there counts
as ``budget + 1``. Tables show the mean over tasks and seeds, ``±`` the standard deviation over seeds of
the per-seed means.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import shutil
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _docs import replace_section

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECTION = "## Warm start (bench/warmstart.py)"
METHODS = ("cold TPE", "random", "kNN-enqueue", "transfer", "zero-shot")
CHECKPOINTS = (1, 3, 5, 10, 20)
STRATEGIES = ("linear", "mlp")
UPDATERS = ("gradient_descent", "random_search")

# (name, source, options): varied in rows (150-569), columns (2-40) and classes (2-6).
TASKS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("iris", "sklearn", {"dataset": "iris"}),
    ("wine", "sklearn", {"dataset": "wine"}),
    ("breast_cancer", "sklearn", {"dataset": "breast_cancer"}),
    ("moons", "synthetic", {"generator": "moons", "n_samples": 300, "noise": 0.3, "seed": 4}),
    ("circles", "synthetic", {"generator": "circles", "n_samples": 300, "noise": 0.15, "seed": 5}),
    (
        "blobs-d6-k5",
        "synthetic",
        {"generator": "blobs", "n_samples": 300, "n_features": 6, "n_classes": 5, "noise": 2.5, "seed": 6},
    ),
    ("clf-d10-k2", "synthetic", {"n_samples": 300, "n_features": 10, "seed": 1}),
    (
        "clf-d20-k4",
        "synthetic",
        {"n_samples": 400, "n_features": 20, "n_informative": 8, "n_classes": 4, "seed": 2},
    ),
    ("clf-d40-k3", "synthetic", {"n_samples": 200, "n_features": 40, "n_classes": 3, "seed": 3}),
    (
        "clf-d15-k6-noisy",
        "synthetic",
        {"n_samples": 500, "n_features": 15, "n_informative": 8, "n_classes": 6, "noise": 0.1, "seed": 7},
    ),
)
QUICK_TASKS = ("iris", "wine", "moons", "clf-d10-k2")


@dataclass(frozen=True)
class Job:
    """One search to run: ``method`` on task ``task`` with seed ``seed``."""

    method: str
    task: str
    seed: int
    budget: int
    workdir: str


def _task_spec(name: str) -> Any:
    from engine.spec import TaskSpec

    _, source, options = next(t for t in TASKS if t[0] == name)
    return TaskSpec(source, options, name=name)


def _spec(
    search: str, task: str, job: Job, *, warm_start: bool, sampler: str = "tpe", n_trials: int | None = None
) -> Any:
    from engine.spec import SearchSpec

    return SearchSpec(
        name=search,
        tasks=(_task_spec(task),),
        seed=job.seed,
        n_trials=n_trials or job.budget,
        strategies=STRATEGIES,
        updaters=UPDATERS,
        warm_start=warm_start,
        sampler={"name": sampler},
    )


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _history(job: Job) -> Path:
    return Path(job.workdir) / f"history-s{job.seed}.db"


def _copy_db(src: Path, dst: Path) -> None:
    """Copy an SQLite database consistently (the engine keeps it in WAL mode)."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def _trials(url: str, study_name: str) -> list[dict[str, Any]]:
    import optuna

    study = optuna.load_study(study_name=study_name, storage=url)
    out = []
    for t in sorted(study.trials, key=lambda t: t.number):
        if t.state in (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING):
            continue
        record = t.user_attrs.get("stratagem", {})
        out.append({"state": t.state.name, "value": t.value, "test": record.get("test_value")})
    return out


def run_job(job: Job) -> dict[str, Any]:
    """Run one search in a worker and return its trials (validation value, test value, state)."""
    import optuna

    from engine.search import run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    work = Path(job.workdir)
    key = job.task
    info: dict[str, Any] | None = None
    if job.method == "cold TPE":
        url = _url(_history(job))
        search = f"cold-s{job.seed}-{key}"
        run(_spec(search, key, job, warm_start=False), storage=url)
    elif job.method == "random":
        url = _url(work / f"random-s{job.seed}-{key}.db")
        search = "random"
        run(_spec(search, key, job, warm_start=False, sampler="random"), storage=url)
    elif job.method in ("kNN-enqueue", "transfer"):
        path = work / f"{'knn' if job.method == 'kNN-enqueue' else 'transfer'}-s{job.seed}-{key}.db"
        _copy_db(_history(job), path)
        url, search = _url(path), "warm"
        os.environ["STRATAGEM_WARM_START"] = "knn" if job.method == "kNN-enqueue" else "transfer"
        result = run(_spec(search, key, job, warm_start=True), storage=url)
        record = result.best[0].warm_start if result.best else None
        info = record.to_dict() if record is not None else None
    elif job.method == "zero-shot":
        url, search, info = _zero_shot(job)
    else:
        raise ValueError(f"unknown method {job.method!r}")
    return {
        "method": job.method,
        "task": key,
        "seed": job.seed,
        "trials": _trials(url, f"{search}/{key}"),
        "seconds": time.perf_counter() - started,
        "warm_start": info,
    }


def _zero_shot(job: Job) -> tuple[str, str, dict[str, Any]]:
    """Recommend from the seed's history (target excluded), then run that one configuration."""
    import optuna

    from engine.plugin.host import PluginHost
    from engine.recommendation import recommend
    from engine.search import run
    from engine.task import fingerprint

    spec = _task_spec(job.task)
    dataset = PluginHost.load(entry_points=False).task_sources.get(spec.source).load(spec.options, ROOT)
    rec = recommend(
        dataset,
        storage=_url(_history(job)),
        top=1,
        exclude_fingerprint=fingerprint(dataset),
        strategies=STRATEGIES,
        updaters=UPDATERS,
    )
    url = _url(Path(job.workdir) / f"zeroshot-s{job.seed}-{job.task}.db")
    study = optuna.create_study(storage=url, study_name=f"zeroshot/{job.task}", direction="maximize")
    study.enqueue_trial(rec.configs[0].params)
    run(_spec("zeroshot", job.task, job, warm_start=False, n_trials=1), storage=url)
    info = {
        "neighbours": [n["task"] for n in rec.neighbours[:3]],
        "score": rec.configs[0].score,
        "strategy": rec.configs[0].strategy,
        "updater": rec.configs[0].updater,
    }
    return url, "zeroshot", info


# ------------------------------------------------------------------------------------------ scoring


def incumbent_curve(trials: Sequence[dict[str, Any]], budget: int) -> list[float | None]:
    """Test value of the best-validation complete trial among the first ``n`` trials, ``n = 1..``."""
    curve: list[float | None] = []
    best_val: float | None = None
    best_test: float | None = None
    for t in list(trials)[:budget]:
        v = t["value"]
        usable = t["state"] == "COMPLETE" and v is not None and math.isfinite(v) and t["test"] is not None
        if usable and (best_val is None or v > best_val):
            best_val, best_test = v, t["test"]
        curve.append(best_test)
    return curve


def summarise(results: Sequence[dict[str, Any]], budget: int, seeds: Sequence[int]) -> dict[str, Any]:
    """Regret at the checkpoints and trials to 1% per method: mean, std over seeds, reach rate."""
    tests: dict[str, list[float]] = {}
    for r in results:
        tests.setdefault(r["task"], []).extend(t["test"] for t in r["trials"] if t["test"] is not None)
    best = {k: max(v) for k, v in tests.items()}
    worst = {k: min(v) for k, v in tests.items()}
    checkpoints = [c for c in CHECKPOINTS if c <= budget]
    table: dict[str, Any] = {}
    per_task: dict[str, dict[str, list[float]]] = {}
    for method in METHODS:
        rows = [r for r in results if r["method"] == method]
        if not rows:
            continue
        regrets: dict[int, dict[int, list[float]]] = {c: {s: [] for s in seeds} for c in checkpoints}
        reach: dict[int, list[float]] = {s: [] for s in seeds}
        for r in rows:
            task, seed = r["task"], r["seed"]
            span = best[task] - worst[task]
            curve = incumbent_curve(r["trials"], budget)
            reg = [1.0 if c is None else ((best[task] - c) / span if span > 0 else 0.0) for c in curve]
            for c in checkpoints:
                if c <= len(reg):
                    regrets[c][seed].append(reg[c - 1])
            hit = next(
                (
                    i + 1
                    for i, c in enumerate(curve)
                    if c is not None and c >= best[task] - 0.01 * abs(best[task])
                ),
                budget + 1,
            )
            reach[seed].append(float(hit))
            per_task.setdefault(method, {}).setdefault(task, []).append(float(hit))
        entry: dict[str, Any] = {}
        for c in checkpoints:
            per_seed = [float(np.mean(v)) for v in regrets[c].values() if v]
            if per_seed:
                entry[f"regret@{c}"] = (
                    float(np.mean([x for v in regrets[c].values() for x in v])),
                    float(np.std(per_seed)),
                )
        all_hits = [x for v in reach.values() for x in v]
        entry["trials_to_1pct"] = (
            float(np.mean(all_hits)),
            float(np.std([np.mean(v) for v in reach.values() if v])),
        )
        entry["reached"] = float(np.mean([h <= budget for h in all_hits]))
        entry["runs"] = len(rows)
        table[method] = entry
    return {"table": table, "best": best, "worst": worst, "per_task": per_task, "checkpoints": checkpoints}


def targets(summary: dict[str, Any], budget: int) -> list[tuple[str, bool | None, str]]:
    """The issue's targets: (statement, met, figures)."""
    t = summary["table"]
    out: list[tuple[str, bool | None, str]] = []

    def get(method: str, key: str) -> tuple[float, float] | None:
        value = t.get(method, {}).get(key)
        return tuple(value) if value is not None else None  # type: ignore[return-value]

    ours, cold = get("transfer", "trials_to_1pct"), get("cold TPE", "trials_to_1pct")
    if ours and cold:
        out.append(
            (
                "warm start needs at most 1/3 of the trials cold TPE needs to get within 1% of the best",
                ours[0] <= cold[0] / 3,
                f"{ours[0]:.2f} vs {cold[0]:.2f} / 3 = {cold[0] / 3:.2f}",
            )
        )
    ours5, knn5 = get("transfer", "regret@5"), get("kNN-enqueue", "regret@5")
    if ours5 and knn5:
        out.append(
            (
                "its regret after 5 trials is at most half of kNN-enqueue's",
                ours5[0] <= knn5[0] / 2,
                f"{ours5[0]:.3f} vs {knn5[0]:.3f} / 2 = {knn5[0] / 2:.3f}",
            )
        )
    last = f"regret@{max(c for c in CHECKPOINTS if c <= budget)}"
    oursN, coldN = get("transfer", last), get("cold TPE", last)
    if oursN and coldN:
        spread = max(oursN[1], coldN[1])
        out.append(
            (
                f"it is never worse than cold TPE at {budget} trials beyond the seeds' spread",
                oursN[0] - coldN[0] <= spread,
                f"{oursN[0]:.3f} vs {coldN[0]:.3f}; difference {oursN[0] - coldN[0]:+.3f}, "
                f"spread {spread:.3f}",
            )
        )
    zero = get("zero-shot", "regret@1")
    if zero and coldN:
        out.append(
            (
                f"zero-shot's first recommendation is as good as {budget} trials of cold TPE",
                zero[0] <= coldN[0],
                f"{zero[0]:.3f} vs {coldN[0]:.3f}",
            )
        )
    return out


def render(summary: dict[str, Any], budget: int, meta: dict[str, Any]) -> str:
    """The Markdown section for docs/benchmarks.md."""
    t = summary["table"]
    cps = summary["checkpoints"]
    lines = [
        SECTION,
        "",
        f"Leave-one-task-out over {meta['n_tasks']} classification tasks (regression is not benchmarked "
        "here), "
        f"{meta['n_seeds']} seeds, budget {budget} trials per target task; {meta['runs']} searches in "
        f"{meta['wall']:.0f} s wall time ({meta['wall'] / 60:.1f} min) on {meta['cpus']} CPU core(s) with "
        f"{meta['workers']} worker processes ({meta['python']}, {meta['when']}).",
        "",
        f"Command: `{meta['command']}`",
        "",
        "Tasks: " + ", ".join(f"`{n}` ({meta['shapes'][n]})" for n in meta["tasks"]) + ".",
        "",
        "Setup: built-in strategies `linear` and `mlp`, updaters `gradient_descent` and `random_search`, "
        "TPE (Optuna's default sampler) or `RandomSampler`, median pruner, holdout validation, accuracy. "
        "The history for a target is the other tasks' cold-TPE studies of the same seed (the target's own "
        "study is in the storage and warm start must leave it out). The incumbent after n trials is the "
        "best-validation complete trial among the first n (pruned and failed trials count), scored on the "
        "test split. Regret is (best - incumbent) / (best - worst) per task, with best / worst the highest "
        "/ lowest test accuracy any trial of any method and seed reached on that task (1 before the first "
        f"complete trial). Trials to 1%: the first n whose incumbent is within 1% (relative) of that best, "
        f"{budget + 1} when never reached. Cells: mean over tasks and seeds ± standard deviation over seeds "
        "of the per-seed means. Zero-shot is one trial: the top configuration `recommend` gives before any "
        "trial.",
        "",
        "| method | " + " | ".join(f"regret@{c}" for c in cps) + " | trials to 1% | reached 1% |",
        "|---" * (len(cps) + 3) + "|",
    ]
    for method in METHODS:
        if method not in t:
            continue
        e = t[method]
        cells = [
            f"{e[f'regret@{c}'][0]:.3f} ± {e[f'regret@{c}'][1]:.3f}" if f"regret@{c}" in e else "-"
            for c in cps
        ]
        tt = e["trials_to_1pct"]
        hit = f"{tt[0]:.2f} ± {tt[1]:.2f}" if method != "zero-shot" else "- (1 trial)"
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {hit} | {100 * e['reached']:.0f}% |")
    lines += ["", "Targets from the issue:", ""]
    for statement, met, figures in targets(summary, budget):
        lines.append(f"- {'met' if met else 'NOT met'}: {statement} ({figures}).")
    lines += [
        "",
        f"Trials to 1% per task (mean over seeds; zero-shot counts 1 when its single trial is within 1%, "
        f"{budget + 1} otherwise):",
        "",
        "| task | " + " | ".join(m for m in METHODS if m in summary["per_task"]) + " |",
        "|---" * (1 + len(summary["per_task"])) + "|",
    ]
    for task in meta["tasks"]:
        cells = [
            f"{np.mean(summary['per_task'][m].get(task, [np.nan])):.1f}"
            for m in METHODS
            if m in summary["per_task"]
        ]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _print_table(summary: dict[str, Any], budget: int) -> None:
    cps = summary["checkpoints"]
    header = (
        f"{'method':<13}"
        + "".join(f"{'regret@' + str(c):>17}" for c in cps)
        + f"{'trials to 1%':>17}{'reached':>9}"
    )
    print(header)
    for method, e in summary["table"].items():
        cells = "".join(
            f"{e[f'regret@{c}'][0]:>9.3f} ± {e[f'regret@{c}'][1]:.3f}" if f"regret@{c}" in e else f"{'-':>17}"
            for c in cps
        )
        tt = e["trials_to_1pct"]
        print(f"{method:<13}{cells}{tt[0]:>9.2f} ± {tt[1]:.2f}{100 * e['reached']:>8.0f}%")
    for statement, met, figures in targets(summary, budget):
        print(f"[{'met' if met else 'NOT met'}] {statement}: {figures}")


def _create_storages(work: Path, seeds: Sequence[int]) -> None:
    """Create each seed's history storage up front, so parallel workers never race to create tables."""
    import optuna

    from engine.storage import Database

    for seed in seeds:
        url = _url(work / f"history-s{seed}.db")
        Database(url)
        optuna.storages.RDBStorage(url)


def _shape(name: str) -> str:
    from engine.plugin.host import PluginHost

    spec = _task_spec(name)
    ds = PluginHost.load(entry_points=False).task_sources.get(spec.source).load(spec.options, ROOT)
    return f"{ds.n_samples}×{ds.n_features}, {ds.n_classes} classes"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="4 tasks, 1 seed, budget 8; docs left alone")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; quick 1)")
    parser.add_argument(
        "--budget", type=int, default=None, help="trials per target task (default 20; quick 8)"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--workdir", default="/tmp/stratagem-bench-warmstart", help="scratch folder (wiped)")
    parser.add_argument(
        "--docs", default=str(ROOT / "docs" / "benchmarks.md"), help="Markdown file to update"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not update the Markdown file")
    parser.add_argument("--json", dest="json_out", default=None, help="also write raw results to this file")
    args = parser.parse_args(argv)

    names = list(QUICK_TASKS) if args.quick else [t[0] for t in TASKS]
    seeds = list(range(args.seeds or (1 if args.quick else 3)))
    budget = args.budget or (8 if args.quick else 20)
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    _create_storages(work, seeds)
    ctx = multiprocessing.get_context("spawn")
    results: list[dict[str, Any]] = []
    first = [Job("cold TPE", n, s, budget, str(work)) for s in seeds for n in names]
    second = [
        Job(m, n, s, budget, str(work))
        for m in ("transfer", "kNN-enqueue", "random")
        for s in seeds
        for n in names
    ]
    second += [Job("zero-shot", n, s, budget, str(work)) for s in seeds for n in names]
    with ctx.Pool(args.workers) as pool:
        for phase in (first, second):
            for r in pool.imap_unordered(run_job, phase):
                results.append(r)
                print(
                    f"[{time.perf_counter() - started:7.1f}s] {r['method']:<12} seed {r['seed']} "
                    f"{r['task']:<18} {len(r['trials']):>3} trials {r['seconds']:6.1f}s",
                    flush=True,
                )
    wall = time.perf_counter() - started
    summary = summarise(results, budget, seeds)
    print()
    _print_table(summary, budget)
    print(f"\n{len(results)} searches in {wall:.0f} s ({wall / 60:.1f} min), {args.workers} workers")
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"results": results, "summary": summary}, indent=1, default=str)
        )
    if not (args.quick or args.no_docs):
        meta = {
            "n_tasks": len(names),
            "n_seeds": len(seeds),
            "runs": len(results),
            "wall": wall,
            "cpus": os.cpu_count(),
            "workers": args.workers,
            "tasks": names,
            "shapes": {n: _shape(n) for n in names},
            "python": f"Python {platform.python_version()}",
            "when": time.strftime("%Y-%m-%d"),
            "command": "python bench/warmstart.py"
            + (f" --workers {args.workers}" if args.workers != 2 else ""),
        }
        replace_section(Path(args.docs), SECTION, render(summary, budget, meta))
        print(f"wrote the section {SECTION!r} of {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
