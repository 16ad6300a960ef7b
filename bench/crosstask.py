"""What racing saves in the cross-task search mode, and what it costs in the best default found.

For each seed, three searches over the same six small classification tasks (three bundled, three
generated), with the same spec, sampler (TPE) and the cross-task default pruner, each in a fresh
SQLite file:

* **racing**: ``first_stage = 0.34``; every configuration sees 3 of 6 tasks, the pruner may stop it
  after each further task; ``n_trials`` trials;
* **no racing**: ``first_stage = 1.0``; every configuration sees all tasks; the same ``n_trials``;
* **racing, equal evaluations**: the racing search resumed (more trials) until it has spent as many task
  evaluations as the no-racing one: what the saved evaluations buy.

Reported per row: trials (pruned), task evaluations, evaluations per trial, the best default's mean
normalised validation loss (the selection criterion; 0 perfect, 1 class priors), the same
configuration's mean normalised test loss, and wall seconds (noisy on a shared machine; the
evaluations are the machine-independent cost).

Usage::

    python bench/crosstask.py [--seeds 0,1,2] [--trials 30] [--no-write]

It prints a table and replaces the ``## Cross-task objective (bench/crosstask.py)`` section of
``docs/benchmarks.md`` (other sections are left as they are).
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from _docs import replace_section
from optuna.trial import TrialState

from engine.results import defaults
from engine.search import run
from engine.spec import SearchSpec, TaskSpec
from engine.vocabulary import cross_task_study_name

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## Cross-task objective (bench/crosstask.py)"

TASKS = (
    TaskSpec("sklearn", {"dataset": "iris"}),
    TaskSpec("sklearn", {"dataset": "wine"}),
    TaskSpec("sklearn", {"dataset": "breast_cancer"}),
    TaskSpec(
        "synthetic",
        {"generator": "classification", "n_samples": 300, "n_features": 10, "n_classes": 3, "seed": 1},
    ),
    TaskSpec("synthetic", {"generator": "moons", "n_samples": 300, "seed": 2}),
    TaskSpec("synthetic", {"generator": "blobs", "n_samples": 300, "n_classes": 4, "seed": 3}),
)
RACING_STAGE = 0.34


@dataclass(frozen=True)
class Row:
    """One search's outcome."""

    seed: int
    method: str
    trials: int
    pruned: int
    evaluations: int
    loss: float
    test_loss: float | None
    seconds: float


def spec(seed: int, n_trials: int, first_stage: float) -> SearchSpec:
    """The benchmark's search: only ``first_stage`` differs between the methods."""
    return SearchSpec(
        name="bench-crosstask",
        tasks=TASKS,
        seed=seed,
        n_trials=n_trials,
        mode="cross_task",
        first_stage=first_stage,
        strategies=("linear", "mlp"),
        updaters=("gradient_descent",),
        warm_start=False,
        sampler={"name": "tpe"},
    )


def measure(url: str, seed: int, method: str, seconds: float) -> Row:
    """Read a finished search back from its storage."""
    study = optuna.load_study(study_name=cross_task_study_name("bench-crosstask"), storage=url)
    [best] = defaults(storage=url, search="bench-crosstask")
    trials = study.get_trials(deepcopy=False)
    return Row(
        seed=seed,
        method=method,
        trials=len(trials),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        evaluations=best.task_evaluations,
        loss=best.loss,
        test_loss=best.test_loss,
        seconds=seconds,
    )


def bench_seed(seed: int, n_trials: int, folder: Path) -> list[Row]:
    """The three searches of one seed."""
    rows = []
    plain_url = f"sqlite:///{folder / f'plain-{seed}.db'}"
    started = time.perf_counter()
    run(spec(seed, n_trials, 1.0), storage=plain_url)
    plain = measure(plain_url, seed, "no racing", time.perf_counter() - started)

    race_url = f"sqlite:///{folder / f'race-{seed}.db'}"
    started = time.perf_counter()
    run(spec(seed, n_trials, RACING_STAGE), storage=race_url)
    racing = measure(race_url, seed, "racing", time.perf_counter() - started)
    rows += [racing, plain]

    spent, total, more = racing.evaluations, racing.seconds, n_trials
    while spent < plain.evaluations:
        more += max(1, (plain.evaluations - spent) // len(TASKS))
        started = time.perf_counter()
        run(spec(seed, more, RACING_STAGE), storage=race_url)
        total += time.perf_counter() - started
        spent = measure(race_url, seed, "", 0.0).evaluations
    rows.append(measure(race_url, seed, "racing, equal evaluations", total))
    return rows


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def markdown(rows: list[Row], n_trials: int, seeds: list[int], command: str) -> str:
    """The ``docs/benchmarks.md`` section, heading included."""
    lines = [
        SECTION,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} with `{command}`.",
        "",
        f"One cross-task search per row over {len(TASKS)} small classification tasks (iris, wine, "
        "breast_cancer, and generated 3-class, moons and 4-blob tasks), strategies `linear` and `mlp`, "
        "updater `gradient_descent`, TPE sampler, the cross-task default pruner (percentile 33.3, 3 startup "
        "trials: only the best third of configurations goes on after each task). *Racing* evaluates "
        f"every configuration on the first ceil({RACING_STAGE} × {len(TASKS)}) = "
        f"{math.ceil(RACING_STAGE * len(TASKS))} tasks of a fixed "
        "seeded order and lets the pruner stop it after each further task; *no racing* "
        "(`first_stage = 1.0`) evaluates all tasks for every configuration; *racing, equal evaluations* "
        "resumes the racing search until it has spent as many task evaluations as no racing. "
        "Loss: the best default's mean normalised validation loss (0 = perfect, 1 = training class "
        "priors), the selection criterion; test loss: the same configuration on the test splits. "
        "Seconds are wall time on a shared 2-core machine and noisy; task evaluations are the cost.",
        "",
        "| seed | method | trials (pruned) | task evaluations | per trial | loss | test loss | seconds |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.seed} | {r.method} | {r.trials} ({r.pruned}) | {r.evaluations} | "
            f"{r.evaluations / r.trials:.2f} | {_fmt(r.loss)} | {_fmt(r.test_loss)} | {r.seconds:.0f} |"
        )
    lines += ["", "Means over seeds:", ""]
    lines += [
        "| method | task evaluations | loss | test loss |",
        "|---|---:|---:|---:|",
    ]
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        tests = [r.test_loss for r in mine if r.test_loss is not None]
        lines.append(
            f"| {method} | {statistics.mean(r.evaluations for r in mine):.1f} | "
            f"{statistics.mean(r.loss for r in mine):.4f} | "
            f"{_fmt(statistics.mean(tests) if tests else None)} |"
        )
    lines += [
        "",
        f"{n_trials} trials per search, seeds {', '.join(map(str, seeds))}. Machine: {_machine()}",
    ]
    return "\n".join(lines) + "\n"


def _machine() -> str:
    import os

    return (
        f"CPU cores {os.cpu_count()}; {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}; "
        f"optuna {optuna.__version__}; torch {torch.__version__} ({torch.get_num_threads()} thread)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds (default 0,1,2).")
    parser.add_argument("--trials", type=int, default=30, help="Trials per search (default 30).")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave docs/benchmarks.md.")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    torch.set_num_threads(1)  # small models: threads only contend with each other on two cores
    logging.getLogger("optuna").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            rows += bench_seed(seed, args.trials, Path(tmp))
            for r in rows[-3:]:
                print(r, flush=True)
    command = "python bench/crosstask.py " + " ".join(argv if argv is not None else sys.argv[1:])
    section = markdown(rows, args.trials, seeds, command.strip())
    print(section)
    if not args.no_write:
        replace_section(DOC, SECTION, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
