"""Warm start with the final recheck: do the warm starts' proposals beat cold search once the final choice
is made by k-fold among the top trials instead of by the one validation split?

Run from the repository root, after a full ``bench/warmstart.py`` run that left its searches in the same
``--workdir`` (its default)::

    nice python bench/warmstart.py --seeds 2 --no-docs
    nice python bench/warm_recheck.py --seeds 2

Each search of ``bench/warmstart.py`` (every method but zero-shot, which has one trial) is run again with
``[evaluation] recheck = 5`` and the same ``n_trials``: no new trial runs, and its 5 best trials by
validation value are judged by 5-fold, the best mean wins, and its fold ensemble's test value becomes the
search's result (:mod:`engine.search.recheck`; top 5 and 5 folds, the settings ``bench/recheck.py``
fixed before its first run). Regret uses ``bench/warmstart.py``'s bounds (per task, the best and worst
test value of any single trial of any method and seed), so it is comparable with its regret after 20
trials. A fold ensemble can beat every single trial: then its regret is below 0. Both task groups are
reported; nothing was tuned on either.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _docs import replace_section
from warmstart import (
    GROUP_OF,
    GROUPS,
    METHODS,
    WARM_METHODS,
    Job,
    _bounds,
    _load,
    _se,
    _spec,
    _stored,
    _url,
    _where,
    incumbent_curve,
)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECTION = "## Warm start with the final recheck (bench/warm_recheck.py)"
TOP, FOLDS = 5, 5
RECHECKED = tuple(m for m in METHODS if m != "zero-shot")


def recheck_job(job: Job) -> dict[str, Any]:
    """Run ``job``'s finished search again with the recheck on; its result's test value and the time."""
    import optuna
    import torch

    from engine.results import best
    from engine.search import run
    from engine.spec import EvaluationSpec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    path, search = _where(job)
    warm = job.method in WARM_METHODS
    if warm:
        os.environ["STRATAGEM_WARM_START"] = WARM_METHODS[job.method]
    sampler = {"name": "random"} if job.method == "random" else None
    spec = _spec(search, job.task, job, warm_start=warm, sampler=sampler)
    spec = dataclasses.replace(spec, evaluation=EvaluationSpec(recheck=TOP, folds=FOLDS))
    started = time.perf_counter()
    result = run(spec, storage=_url(path))
    (row,) = best(storage=_url(path), search=search)
    return {
        "method": job.method,
        "task": job.task,
        "seed": job.seed,
        "new_trials": result.trials_run,
        "rechecked": row.recheck is not None,
        "test": row.test_value,
        "seconds": time.perf_counter() - started,
    }


def _ran(job: Job) -> bool:
    """Whether the warm-start run left ``job``'s search in its workdir."""
    import optuna

    path, search = _where(job)
    if not path.exists():
        return False
    names = optuna.get_all_study_names(storage=_url(path))
    return f"{search}/{job.task}" in names


def summarise(
    stored: Sequence[dict[str, Any]], rechecked: Sequence[dict[str, Any]], tasks: set[str], budget: int
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per method: regret after the budget by the validation pick and by the recheck, and the paired
    gain (mean, standard error over tasks of the per-task means over seeds)."""
    best, worst = _bounds([r for r in stored if r["task"] in tasks])
    picks = {
        (r["method"], r["task"], r["seed"]): incumbent_curve(r["trials"], budget)[-1]
        for r in stored
        if r["task"] in tasks
    }
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for method in RECHECKED:
        per: dict[str, dict[str, list[float]]] = {"validation": {}, "recheck": {}, "gain": {}}
        for r in rechecked:
            if r["method"] != method or r["task"] not in tasks or r["test"] is None:
                continue
            task = r["task"]
            span = best[task] - worst[task]
            pick = picks[(method, task, r["seed"])]
            if span <= 0 or pick is None:
                continue
            before, after = (best[task] - pick) / span, (best[task] - r["test"]) / span
            for key, value in (("validation", before), ("recheck", after), ("gain", before - after)):
                per[key].setdefault(task, []).append(value)
        if per["gain"]:
            table[method] = {
                key: (float(np.mean([x for v in d.values() for x in v])), _se(d)) for key, d in per.items()
            }
    return table


def render(
    tables: dict[tuple[str, str], dict[str, dict[str, tuple[float, float]]]], meta: dict[str, Any]
) -> str:
    lines = [
        SECTION,
        "",
        f"Every search of a `bench/warmstart.py` run ({meta['seeds']} seed(s), budget {meta['budget']}) run "
        "again with "
        f"`[evaluation] recheck = {TOP}` ({FOLDS} folds): no new trial, the {TOP} best trials by validation "
        "judged by k-fold, the fold ensemble of the best mean kept and scored on the test split. "
        f"{meta['runs']} rechecks in {meta['wall']:.0f} s on {meta['cpus']} CPU core(s) with "
        f"{meta['workers']} worker processes ({meta['when']}). Command: `{meta['command']}`.",
        "",
        "Regret as in `bench/warmstart.py` (per task, best and worst single-trial test value of any method "
        "and seed); below 0 where the fold ensemble beats every single trial. `validation pick`: the "
        "search's best-validation trial after all its trials (the warm-start tables' last regret "
        "column); `after recheck`: what the same search delivers with the recheck; `gain`: their paired "
        "difference. Cells: mean ± standard error over tasks. Nothing was tuned on these figures.",
        "",
    ]
    for (group, kind), table in tables.items():
        if not table:
            continue
        lines += [
            f"**{group}, {kind}**",
            "",
            "| method | validation pick | after recheck | gain |",
            "|---|---|---|---|",
        ]
        for method, row in table.items():
            cells = [f"{row[k][0]:.3f} ± {row[k][1]:.3f}" for k in ("validation", "recheck", "gain")]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--seeds", type=int, default=1, help="seeds of the bench/warmstart.py run (default 1)"
    )
    parser.add_argument("--budget", type=int, default=20, help="bench/warmstart.py's budget (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--workdir", default="/tmp/stratagem-bench-warmstart", help="bench/warmstart.py's --workdir"
    )
    parser.add_argument(
        "--docs", default=str(ROOT / "docs" / "benchmarks.md"), help="Markdown file to update"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not update the Markdown file")
    args = parser.parse_args(argv)
    work = Path(args.workdir)
    if not (work / "run.json").exists():
        parser.error(f"{work} holds no finished bench/warmstart.py run; run it first (see --help)")
    names = [n for tasks in GROUPS.values() for n, _, _ in tasks]
    seeds = range(args.seeds)
    jobs = [Job(m, n, s, args.budget, str(work)) for m in METHODS for s in seeds for n in names]
    jobs = [job for job in jobs if _ran(job)]  # a --quick or --group run has fewer
    stored = [_stored(job) for job in jobs]  # before any recheck: the trials and their test values
    todo = [job for job in jobs if job.method in RECHECKED]
    started = time.perf_counter()
    rechecked = []
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for r in pool.imap_unordered(recheck_job, todo):
            rechecked.append(r)
            print(
                f"[{time.perf_counter() - started:7.1f}s] {r['method']:<10} seed {r['seed']} {r['task']:<18} "
                f"test {r['test']} ({r['new_trials']} new trials) {r['seconds']:5.1f}s",
                flush=True,
            )
    wall = time.perf_counter() - started
    bad = [r for r in rechecked if r["new_trials"] or not r["rechecked"]]
    if bad:
        print(
            f"warning: {len(bad)} searches ran new trials or were not rechecked: {bad[:3]}", file=sys.stderr
        )
    names = [n for n in names if any(job.task == n for job in jobs)]
    kinds = {n: _load(n, str(work)).kind for n in names}
    tables = {}
    for group in GROUPS:
        for kind in ("all", "classification", "regression"):
            tasks = {n for n in names if GROUP_OF[n] == group and kind in ("all", kinds[n])}
            tables[(group, kind)] = summarise(stored, rechecked, tasks, args.budget)
    meta = {
        "seeds": args.seeds,
        "budget": args.budget,
        "runs": len(rechecked),
        "wall": wall,
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "when": time.strftime("%Y-%m-%d"),
        "command": f"nice python bench/warmstart.py --seeds {args.seeds} --no-docs && nice python "
        f"bench/warm_recheck.py --seeds {args.seeds}",
    }
    text = render(tables, meta)
    print(text)
    if not args.no_docs:
        replace_section(Path(args.docs), SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
