"""Warm-start benchmark: leave-one-task-out within a training and a held-out group of tasks.

Run from the repository root::

    nice python bench/warmstart.py            # full: both groups, 1 seed, 20 trials per target task
    python bench/warmstart.py --quick         # smoke run: 12 tasks, 1 seed, 8 trials, docs left alone
    python bench/warmstart.py --samplers      # also the per-task sampler variants (training group only)

Two groups of tasks, each with classification (accuracy) and regression (R²) tasks: ``TRAINING``, on
which the methods and the default warm start were chosen, and ``HELD_OUT``, whose generators, shapes,
noise levels and seeds were fixed (and written below) before any of its results was seen; nothing is
tuned on it. Its CSV tasks (string labels, a string column) are written by :func:`_write_csv` from fixed
parameters; nothing is downloaded.

Every method runs the real engine (:func:`engine.search.run`) with the built-in strategies (``linear``,
``mlp``) and updaters (``gradient_descent``, ``random_search``), the default sampler and the median
pruner, holdout validation. For each seed and group:

* **cold TPE**: each task searched alone with warm start off, all into one storage, the group's *history*;
* **random**: the same with Optuna's ``RandomSampler``;
* **kNN**, **transfer**, **guided**: each target task searched in a copy of that history with warm start
  on (``$STRATAGEM_WARM_START`` = ``knn`` / ``transfer`` / ``guided``); the target's own cold study is in
  the copy, and the engine must (and does) leave it out, so the sources are the group's other tasks;
* **zero-shot**: the first configuration :func:`engine.recommendation.recommend` returns from that history
  (the target excluded), evaluated as a single trial.

The incumbent after ``n`` trials is the complete trial with the best validation value among the first
``n`` (pruned and failed trials count as trials); it is scored by its test-split value. A task's regret
is ``(best - incumbent) / (best - worst)`` with ``best`` / ``worst`` the highest / lowest test value of
any trial of any method and seed on that task (1 before the first complete trial). "Trials to 1%" is
the first ``n`` whose incumbent is within 1% (relative) of ``best``; a run that never gets there counts
as ``budget + 1``. Tables show the mean over tasks and seeds, ``±`` the standard error over tasks of the
per-task means over seeds. A last table per group, *proposals alone*, scores the same searches with the
best test value among the first ``n`` trials as the incumbent (:func:`oracle_curve`): a pick no method can
make, which separates what a search proposes from what the validation split's pick loses.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _docs import replace_section

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.search.recorder import rank_key, tie_loss  # noqa: E402

SECTION = "## Warm start (bench/warmstart.py)"
PROPOSALS = "proposals"
"""Summary key of the oracle-pick table: what each method proposes, judged without the validation pick."""
NEW = "guided"
WARM_METHODS = {"kNN": "knn", "transfer": "transfer", NEW: "guided"}
"""Warm-start methods: table name -> warm starter name (``$STRATAGEM_WARM_START``)."""
METHODS = ("cold TPE", "random", "kNN", "transfer", NEW, "zero-shot")
SAMPLER_VARIANTS: dict[str, dict[str, Any]] = {
    "TPE, 10 startup (Optuna's)": {"name": "tpe", "n_startup_trials": 10},
    "TPE multivariate+group": {"name": "tpe", "multivariate": True, "group": True},
}
"""Per-task sampler settings measured with ``--samplers`` (cold, training group only)."""
CHECKPOINTS = (1, 3, 5, 10, 20)
STRATEGIES = ("linear", "mlp")
UPDATERS = ("gradient_descent", "random_search")

# ---------------------------------------------------------------------------------------------- tasks
# Two groups. The TRAINING group is what the warm-start methods and their defaults were chosen on. The
# HELD-OUT group was written down (generators, shapes, noise levels, seeds) before any result of it was
# seen, and nothing is tuned on it: only reported. Within a group, each target's history is the group's
# other tasks of the same kind (leave-one-task-out); the groups never see each other.

# (name, source, options). TRAINING: classification varied in rows (150-569), columns (2-40), classes (2-6).
TRAINING: tuple[tuple[str, str, dict[str, Any]], ...] = (
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
    # regression (r2)
    ("diabetes", "sklearn", {"dataset": "diabetes"}),
    ("friedman1-d8", "synthetic", {"generator": "friedman1", "n_samples": 300, "n_features": 8, "seed": 11}),
    (
        "reg-d10",
        "synthetic",
        {"generator": "regression", "n_samples": 300, "n_features": 10, "n_informative": 5, "seed": 12},
    ),
    ("friedman2", "synthetic", {"generator": "friedman2", "n_samples": 300, "noise": 10.0, "seed": 13}),
    (
        "reg-d30-noisy",
        "synthetic",
        {
            "generator": "regression",
            "n_samples": 200,
            "n_features": 30,
            "n_informative": 10,
            "noise": 40.0,
            "seed": 14,
        },
    ),
    ("friedman3", "synthetic", {"generator": "friedman3", "n_samples": 400, "noise": 0.1, "seed": 15}),
)

# HELD-OUT: fixed before any result was seen. CSV tasks are written by _write_csv (below) from these
# parameters: string labels, a string-valued feature column one-hot encoded by the csv source.
HELD_OUT: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("csv-churn", "csv", {"csv": "churn", "rows": 400, "features": 6, "seed": 101}),
    ("csv-species", "csv", {"csv": "species", "rows": 300, "features": 5, "seed": 102}),
    ("csv-grade", "csv", {"csv": "grade", "rows": 500, "features": 8, "seed": 103}),
    (
        "ho-clf-d12-k3",
        "synthetic",
        {"n_samples": 350, "n_features": 12, "n_informative": 4, "n_classes": 3, "noise": 0.05, "seed": 201},
    ),
    (
        "ho-clf-d30-k2",
        "synthetic",
        {"n_samples": 250, "n_features": 30, "n_informative": 6, "noise": 0.02, "seed": 202},
    ),
    ("ho-moons", "synthetic", {"generator": "moons", "n_samples": 400, "noise": 0.35, "seed": 203}),
    (
        "ho-blobs-d4-k4",
        "synthetic",
        {"generator": "blobs", "n_samples": 350, "n_features": 4, "n_classes": 4, "noise": 3.0, "seed": 204},
    ),
    ("ho-circles", "synthetic", {"generator": "circles", "n_samples": 250, "noise": 0.2, "seed": 205}),
    # regression (r2)
    ("csv-price", "csv", {"csv": "price", "rows": 400, "features": 5, "seed": 301}),
    (
        "ho-friedman1-d10",
        "synthetic",
        {"generator": "friedman1", "n_samples": 350, "n_features": 10, "noise": 2.0, "seed": 302},
    ),
    ("ho-friedman2", "synthetic", {"generator": "friedman2", "n_samples": 300, "noise": 50.0, "seed": 303}),
    (
        "ho-reg-d15",
        "synthetic",
        {
            "generator": "regression",
            "n_samples": 300,
            "n_features": 15,
            "n_informative": 5,
            "noise": 30.0,
            "seed": 304,
        },
    ),
    ("ho-friedman3", "synthetic", {"generator": "friedman3", "n_samples": 300, "noise": 0.05, "seed": 305}),
)

GROUPS: dict[str, tuple[tuple[str, str, dict[str, Any]], ...]] = {"training": TRAINING, "held-out": HELD_OUT}
TASKS = {name: (source, options) for group in GROUPS.values() for name, source, options in group}
GROUP_OF = {name: group for group, tasks in GROUPS.items() for name, _, _ in tasks}
QUICK_TASKS = (
    "iris",
    "wine",
    "moons",
    "diabetes",
    "friedman1-d8",
    "reg-d10",
    "csv-churn",
    "ho-moons",
    "ho-clf-d12-k3",
    "csv-price",
    "ho-friedman2",
    "ho-reg-d15",
)
CSV_TARGET = {"churn": "label", "species": "label", "grade": "label", "price": "price"}


def _write_csv(path: Path, csv: str, rows: int, features: int, seed: int) -> None:
    """Write a held-out CSV task: numeric columns ``x0..``, one string column, a string or numeric target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)) if csv != "price" else rng.uniform(size=(rows, features))
    header = [f"x{i}" for i in range(features)]
    if csv == "churn":  # 2 classes: logistic model with an interaction and a plan effect
        plan = rng.choice(["basic", "plus", "pro"], size=rows)
        w = rng.normal(size=features)
        logit = (
            X @ w + 0.8 * X[:, 0] * X[:, 1] + np.select([plan == "basic", plan == "pro"], [-1.0, 1.0], 0.0)
        )
        y = np.where(logit + rng.logistic(size=rows) > 0, "leave", "stay")
        cat, cat_name = plan, "plan"
    elif (
        csv == "species"
    ):  # 3 classes: Gaussian blobs, and a colour that agrees with the class 60% of the time
        labels = np.array(["alpha", "beta", "gamma"])
        k = rng.integers(0, 3, size=rows)
        centres = rng.normal(scale=2.0, size=(3, features))
        X = centres[k] + rng.normal(scale=1.5, size=(rows, features))
        colours = np.array(["red", "green", "blue"])
        cat = np.where(rng.uniform(size=rows) < 0.6, colours[k], colours[rng.integers(0, 3, size=rows)])
        y, cat_name = labels[k], "colour"
    elif csv == "grade":  # 4 ordered classes from quartiles of a nonlinear score, plus a school offset
        school = rng.choice(["north", "south", "east"], size=rows)
        score = (
            np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] ** 2 + rng.normal(scale=0.3, size=rows)
        )
        score += np.select([school == "north", school == "east"], [0.4, -0.4], 0.0)
        y = np.array(["A", "B", "C", "D"])[np.digitize(score, np.quantile(score, [0.25, 0.5, 0.75]))]
        cat, cat_name = school, "school"
    elif csv == "price":  # regression: nonlinear price with a city offset
        city = rng.choice(["aix", "brest", "caen", "dijon"], size=rows)
        y = (
            100
            + 50 * X[:, 0]
            + 30 * np.sin(3 * X[:, 1])
            + 20 * X[:, 2] * X[:, 3]
            + np.select([city == "aix", city == "brest", city == "caen"], [25.0, -10.0, 5.0], 0.0)
            + rng.normal(scale=10.0, size=rows)
        )
        y = np.round(y, 2) + 0.001  # never whole numbers: read as a regression target
        cat, cat_name = city, "city"
    else:
        raise ValueError(f"unknown CSV task {csv!r}")
    lines = [",".join([*header, cat_name, CSV_TARGET[csv]])]
    lines += [",".join([*(f"{v:.5f}" for v in X[i]), str(cat[i]), str(y[i])]) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_csv_tasks(folder: Path, names: Sequence[str]) -> None:
    """Write the CSV files of the CSV tasks among ``names`` into ``folder``."""
    for name in names:
        source, options = TASKS[name]
        if source == "csv":
            _write_csv(
                folder / f"{name}.csv", options["csv"], options["rows"], options["features"], options["seed"]
            )


@dataclass(frozen=True)
class Job:
    """One search to run: ``method`` on task ``task`` with seed ``seed``."""

    method: str
    task: str
    seed: int
    budget: int
    workdir: str


def _task_spec(name: str, workdir: str) -> Any:
    from engine.spec import TaskSpec

    source, options = TASKS[name]
    if source == "csv":
        return TaskSpec(
            "csv",
            {"path": str(Path(workdir) / "data" / f"{name}.csv"), "target": CSV_TARGET[options["csv"]]},
            name=name,
        )
    return TaskSpec(source, options, name=name)


def _spec(
    search: str,
    task: str,
    job: Job,
    *,
    warm_start: bool,
    sampler: Mapping[str, Any] | None = None,
    n_trials: int | None = None,
) -> Any:
    from engine.spec import SearchSpec

    return SearchSpec(
        name=search,
        tasks=(_task_spec(task, job.workdir),),
        seed=job.seed,
        n_trials=n_trials or job.budget,
        strategies=STRATEGIES,
        updaters=UPDATERS,
        warm_start=warm_start,
        sampler=dict(sampler or {"name": "tpe"}),
    )


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _history(job: Job) -> Path:
    return Path(job.workdir) / f"history-{GROUP_OF[job.task]}-s{job.seed}.db"


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
        out.append(
            {
                "state": t.state.name,
                "value": t.value,
                "loss": tie_loss(record),
                "test": record.get("test_value"),
            }
        )
    return out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


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
    elif job.method in SAMPLER_VARIANTS or job.method == "random":
        url = _url(work / f"{_slug(job.method)}-s{job.seed}-{key}.db")
        search = "cold"
        sampler = {"name": "random"} if job.method == "random" else SAMPLER_VARIANTS[job.method]
        run(_spec(search, key, job, warm_start=False, sampler=sampler), storage=url)
    elif job.method in WARM_METHODS:
        path = work / f"{WARM_METHODS[job.method]}-s{job.seed}-{key}.db"
        _copy_db(_history(job), path)
        url, search = _url(path), "warm"
        os.environ["STRATAGEM_WARM_START"] = WARM_METHODS[job.method]
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


def _where(job: Job) -> tuple[Path, str]:
    """The database file and search name a job writes its target study to."""
    work, key = Path(job.workdir), job.task
    if job.method == "cold TPE":
        return _history(job), f"cold-s{job.seed}-{key}"
    if job.method in SAMPLER_VARIANTS or job.method == "random":
        return work / f"{_slug(job.method)}-s{job.seed}-{key}.db", "cold"
    if job.method in WARM_METHODS:
        return work / f"{WARM_METHODS[job.method]}-s{job.seed}-{key}.db", "warm"
    return work / f"zeroshot-s{job.seed}-{key}.db", "zeroshot"


def _stored(job: Job) -> dict[str, Any]:
    """A finished job's trials read back from the workdir (``--rescore``), as :func:`run_job` returns them."""
    path, search = _where(job)
    trials = _trials(_url(path), f"{search}/{job.task}")
    return {"method": job.method, "task": job.task, "seed": job.seed, "trials": trials, "seconds": None}


def _load(name: str, workdir: str) -> Any:
    from engine.plugin.host import PluginHost

    spec = _task_spec(name, workdir)
    return PluginHost.load(entry_points=False).task_sources.get(spec.source).load(spec.options, ROOT)


def _zero_shot(job: Job) -> tuple[str, str, dict[str, Any]]:
    """Recommend from the seed's history (target excluded), then run that one configuration."""
    import optuna

    from engine.recommendation import recommend
    from engine.search import run
    from engine.task import fingerprint
    from engine.vocabulary import ATTR, KIND_STRATEGIES

    dataset = _load(job.task, job.workdir)
    rec = recommend(
        dataset,
        storage=_url(_history(job)),
        top=1,
        exclude_fingerprint=fingerprint(dataset),
        strategies=STRATEGIES,
        updaters=UPDATERS,
    )
    url = _url(Path(job.workdir) / f"zeroshot-s{job.seed}-{job.task}.db")
    direction = "maximize"  # accuracy and r2, the defaults of the spec
    study = optuna.create_study(storage=url, study_name=f"zeroshot/{job.task}", direction=direction)
    # made for the search "zeroshot": the engine takes over only its own searches' studies
    study.set_user_attr(ATTR, {"search": "zeroshot", "kind": KIND_STRATEGIES})
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
    """Test value of the engine's best among the first ``n`` trials, ``n = 1..``: the best-validation
    complete trial, equal values ordered by validation loss (``rank_key``, as ``stratagem best``)."""
    curve: list[float | None] = []
    best_key: tuple[float, float] | None = None
    best_test: float | None = None
    for t in list(trials)[:budget]:
        v = t["value"]
        usable = t["state"] == "COMPLETE" and v is not None and math.isfinite(v) and t["test"] is not None
        key = rank_key(v, t.get("loss"), maximize=True) if usable else None
        if key is not None and (best_key is None or key < best_key):
            best_key, best_test = key, t["test"]
        curve.append(best_test)
    return curve


def oracle_curve(trials: Sequence[dict[str, Any]], budget: int) -> list[float | None]:
    """Best test value among the first ``n`` complete trials, ``n = 1..``: a pick no method can make (it
    looks at the test split), so its regret measures what a search proposes, free of the validation
    split's noise; the gap to :func:`incumbent_curve`'s regret is what the validation pick loses."""
    curve: list[float | None] = []
    best_test: float | None = None
    for t in list(trials)[:budget]:
        v, test = t["value"], t["test"]
        if t["state"] == "COMPLETE" and v is not None and math.isfinite(v) and test is not None:
            best_test = test if best_test is None else max(best_test, test)
        curve.append(best_test)
    return curve


def _bounds(results: Sequence[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Per task, the best and worst test value of any trial of the compared methods, any seed."""
    tests: dict[str, list[float]] = {}
    for r in results:
        if r["method"] in METHODS:
            tests.setdefault(r["task"], []).extend(t["test"] for t in r["trials"] if t["test"] is not None)
    return {k: max(v) for k, v in tests.items()}, {k: min(v) for k, v in tests.items()}


def _se(per_task: Mapping[str, Sequence[float]]) -> float:
    """Standard error of the mean over tasks of the per-task means (over seeds); 0 with one task."""
    means = [float(np.mean(v)) for v in per_task.values() if v]
    return float(np.std(means, ddof=1) / math.sqrt(len(means))) if len(means) > 1 else 0.0


def summarise(
    results: Sequence[dict[str, Any]],
    budget: int,
    seeds: Sequence[int],
    methods: Sequence[str] = METHODS,
    curve_of: Callable[[Sequence[dict[str, Any]], int], list[float | None]] = incumbent_curve,
) -> dict[str, Any]:
    """Regret at the checkpoints and trials to 1% per method: mean, and standard error over tasks.
    ``curve_of`` gives a search's incumbent test value after each trial (:func:`oracle_curve` for the
    proposals alone)."""
    best, worst = _bounds(results)
    checkpoints = [c for c in CHECKPOINTS if c <= budget]
    table: dict[str, Any] = {}
    per_task: dict[str, dict[str, list[float]]] = {}
    for method in methods:
        rows = [r for r in results if r["method"] == method and r["task"] in best]
        if not rows:
            continue
        regrets: dict[int, dict[str, list[float]]] = {c: {} for c in checkpoints}
        reach: dict[str, list[float]] = {}
        for r in rows:
            task = r["task"]
            span = best[task] - worst[task]
            curve = curve_of(r["trials"], budget)
            reg = [1.0 if c is None else ((best[task] - c) / span if span > 0 else 0.0) for c in curve]
            for c in checkpoints:
                # a one-trial method (zero-shot) keeps its single result at every budget
                regrets[c].setdefault(task, []).append(reg[min(c, len(reg)) - 1] if reg else 1.0)
            hit = next(
                (
                    i + 1
                    for i, c in enumerate(curve)
                    if c is not None and c >= best[task] - 0.01 * abs(best[task])
                ),
                budget + 1,
            )
            reach.setdefault(task, []).append(float(hit))
            per_task.setdefault(method, {}).setdefault(task, []).append(float(hit))
        entry: dict[str, Any] = {}
        for c in checkpoints:
            entry[f"regret@{c}"] = (
                float(np.mean([x for v in regrets[c].values() for x in v])),
                _se(regrets[c]),
            )
        all_hits = [x for v in reach.values() for x in v]
        entry["trials_to_1pct"] = (
            float(np.mean(all_hits)),
            _se(reach),
        )
        entry["reached"] = float(np.mean([h <= budget for h in all_hits]))
        entry["runs"] = len(rows)
        table[method] = entry
    return {"table": table, "per_task": per_task, "checkpoints": checkpoints}


def targets(summary: dict[str, Any], budget: int) -> list[tuple[str, bool | None, str]]:
    """The issue's targets for the new method: (statement, met, figures)."""
    t = summary["table"]
    out: list[tuple[str, bool | None, str]] = []

    def get(method: str, key: str) -> tuple[float, float] | None:
        value = t.get(method, {}).get(key)
        return tuple(value) if value is not None else None  # type: ignore[return-value]

    ours5, knn5 = get(NEW, "regret@5"), get("kNN", "regret@5")
    if ours5 and knn5:
        out.append(
            (
                f"{NEW}'s regret after 5 trials is at most half of kNN's",
                ours5[0] <= knn5[0] / 2,
                f"{ours5[0]:.3f} vs {knn5[0]:.3f} / 2 = {knn5[0] / 2:.3f}",
            )
        )
    last = f"regret@{max(c for c in CHECKPOINTS if c <= budget)}"
    oursN, knnN, coldN = get(NEW, last), get("kNN", last), get("cold TPE", last)
    if oursN and knnN:
        out.append(
            (
                f"its regret after {budget} trials is no worse than kNN's",
                oursN[0] <= knnN[0],
                f"{oursN[0]:.3f} vs {knnN[0]:.3f}",
            )
        )
    worse = []
    for c in summary["checkpoints"]:
        o, cold = get(NEW, f"regret@{c}"), get("cold TPE", f"regret@{c}")
        if o and cold and o[0] > cold[0]:
            worse.append(f"@{c}: {o[0]:.3f} vs {cold[0]:.3f} (SE {o[1]:.3f}, {cold[1]:.3f})")
    out.append(
        (
            "it is never worse than cold TPE at any checkpoint (mean regret)",
            not worse,
            "; ".join(worse) if worse else "lower or equal at every checkpoint",
        )
    )
    zero = get("zero-shot", "regret@1")
    if zero and coldN:
        out.append(
            (
                f"zero-shot's first configuration is no worse than cold TPE's incumbent after {budget} "
                "trials",
                zero[0] <= coldN[0],
                f"{zero[0]:.3f} vs {coldN[0]:.3f}",
            )
        )
    return out


def _table(summary: dict[str, Any], budget: int) -> list[str]:
    t, cps = summary["table"], summary["checkpoints"]
    lines = [
        "| method | " + " | ".join(f"regret@{c}" for c in cps) + " | trials to 1% | reached 1% |",
        "|---" * (len(cps) + 3) + "|",
    ]
    for method, e in t.items():
        cells = [f"{e[f'regret@{c}'][0]:.3f} ± {e[f'regret@{c}'][1]:.3f}" for c in cps]
        tt = e["trials_to_1pct"]
        lines.append(
            f"| {method} | " + " | ".join(cells) + f" | {tt[0]:.2f} ± {tt[1]:.2f} | "
            f"{100 * e['reached']:.0f}% |"
        )
    return lines


def render(summaries: dict[str, dict[str, Any]], budget: int, meta: dict[str, Any]) -> str:
    """The Markdown section for docs/benchmarks.md."""
    lines = [
        SECTION,
        "",
        f"Leave-one-task-out within two groups of tasks, classification (accuracy) and regression (R²), "
        f"{meta['n_seeds']} seed(s), budget {budget} trials per target task; {meta['runs']} searches in "
        f"{meta['wall']:.0f} s wall time ({meta['wall'] / 60:.1f} min) on {meta['cpus']} CPU core(s) with "
        f"{meta['workers']} worker processes ({meta['python']}, {meta['when']}).",
        "",
        f"Command: {meta['command']}.",
        "",
        "Groups: the **training** group is the one the methods and the default were chosen on; the "
        "**held-out** group (generators, shapes, noise and seeds in `HELD_OUT` of `bench/warmstart.py`; "
        "three of its classification tasks and one regression task are CSV files with string labels or a "
        "string column, "
        "written from fixed parameters) was fixed before any of its results was seen and nothing was tuned "
        "on it. A target's history is its own group's other tasks of the same kind (cold-TPE studies, same "
        "seed); the groups never see each other.",
        "",
    ]
    for group, names in meta["tasks"].items():
        lines.append(f"Tasks ({group}): " + ", ".join(f"`{n}` ({meta['shapes'][n]})" for n in names) + ".")
        lines.append("")
    lines += [
        "Setup: built-in strategies `linear` and `mlp`, updaters `gradient_descent` and `random_search`, "
        "the default sampler (TPE as `engine/study/factories.py` configures it) or `RandomSampler`, median "
        "pruner, holdout validation. The incumbent after n trials is the best-validation complete trial "
        "among the first n (pruned and failed trials count), scored on the test split. Regret is (best - "
        "incumbent) / (best - worst) per task, with best / worst the highest / lowest test value any trial "
        "of any method and seed reached on that task (1 before the first complete trial). Trials to 1%: "
        f"the first n whose incumbent is within 1% (relative) of that best, {budget + 1} when never reached. "
        "Cells: mean over tasks and seeds ± standard error over tasks (of the per-task means over seeds). "
        "Zero-shot is one trial, the top configuration `recommend` gives before any trial, shown at every "
        "budget. "
        f"`{NEW}` is the default warm starter, `transfer` the default before it. With `--samplers`, the rows "
        + ", ".join(f"`{v}`" for v in SAMPLER_VARIANTS)
        + " (training group only) are cold searches with those TPE settings instead of the default's "
        "(TPE with 5 startup trials, `engine/study/factories.py`).",
        "",
    ]
    for group in summaries:
        for kind in ("all", "classification", "regression"):
            s = summaries[group].get(kind)
            if not s or not s["table"]:
                continue
            lines += [f"**{group}, {kind}**" + (" (both kinds pooled)" if kind == "all" else ""), ""]
            lines += _table(s, budget)
            lines.append("")
        lines += [f"Targets of the issue on the {group} group (both kinds pooled):", ""]
        for statement, met, figures in targets(summaries[group]["all"], budget):
            lines.append(f"- {'met' if met else 'NOT met'}: {statement} ({figures}).")
        lines.append("")
        oracle = summaries[group].get(PROPOSALS)
        if oracle and oracle["table"]:
            lines += [
                f"**{group}, proposals alone** (both kinds pooled): the same searches, each incumbent "
                "replaced by the best *test* value among the first n trials. No method can pick so (it "
                "looks at the test split); the regret left is what the search proposed, and the gap to the "
                "table above is what the validation split's pick lost.",
                "",
            ]
            lines += _table(oracle, budget)
            lines.append("")
            lines += [f"The targets read on proposals alone ({group} group):", ""]
            for statement, met, figures in targets(oracle, budget):
                lines.append(f"- {'met' if met else 'NOT met'}: {statement} ({figures}).")
            lines.append("")
    return "\n".join(lines) + "\n"


def _print_table(summary: dict[str, Any], budget: int) -> None:
    cps = summary["checkpoints"]
    print(f"{'method':<22}" + "".join(f"{'regret@' + str(c):>16}" for c in cps) + f"{'trials to 1%':>16}")
    for method, e in summary["table"].items():
        cells = "".join(f"{e[f'regret@{c}'][0]:>8.3f} ± {e[f'regret@{c}'][1]:.3f}" for c in cps)
        tt = e["trials_to_1pct"]
        print(f"{method:<22}{cells}{tt[0]:>8.2f} ± {tt[1]:.2f}")


def _create_storages(work: Path, seeds: Sequence[int]) -> None:
    """Create each history storage up front, so parallel workers never race to create tables."""
    import optuna

    from engine.storage import Database

    for group in GROUPS:
        for seed in seeds:
            url = _url(work / f"history-{group}-s{seed}.db")
            Database(url)
            optuna.storages.RDBStorage(url)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="12 tasks, 1 seed, budget 8; docs left alone")
    parser.add_argument(
        "--group", choices=(*GROUPS, "both"), default="both", help="which group (default both)"
    )
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 1)")
    parser.add_argument(
        "--budget", type=int, default=None, help="trials per target task (default 20; quick 8)"
    )
    parser.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    parser.add_argument(
        "--samplers",
        action="store_true",
        help="also run the per-task sampler variants (cold, training group only): "
        + ", ".join(SAMPLER_VARIANTS),
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--workdir", default="/tmp/stratagem-bench-warmstart", help="scratch folder (wiped)")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="run nothing: score the searches a finished run with the same options left in --workdir",
    )
    parser.add_argument(
        "--rerun",
        default=None,
        help="with --rescore: first run these methods (comma-separated, not cold TPE) again in --workdir",
    )
    parser.add_argument(
        "--docs", default=str(ROOT / "docs" / "benchmarks.md"), help="Markdown file to update"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not update the Markdown file")
    parser.add_argument("--json", dest="json_out", default=None, help="also write raw results to this file")
    args = parser.parse_args(argv)

    groups = list(GROUPS) if args.group == "both" else [args.group]
    names = [n for g in groups for n, _, _ in GROUPS[g] if not args.quick or n in QUICK_TASKS]
    seeds = list(range(args.seeds or 1))
    budget = args.budget or (8 if args.quick else 20)
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else list(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {list(METHODS)}")
    work = Path(args.workdir)
    if not args.rescore:
        shutil.rmtree(work, ignore_errors=True)
        (work / "data").mkdir(parents=True)
    if not args.rescore:
        write_csv_tasks(work / "data", names)
    datasets = {n: _load(n, str(work)) for n in names}
    started = time.perf_counter()
    if not args.rescore:
        _create_storages(work, seeds)
    ctx = multiprocessing.get_context("spawn")
    results: list[dict[str, Any]] = []
    first = [Job("cold TPE", n, s, budget, str(work)) for s in seeds for n in names]
    second = [
        Job(m, n, s, budget, str(work)) for m in methods if m != "cold TPE" for s in seeds for n in names
    ]
    if args.samplers:
        second += [
            Job(m, n, s, budget, str(work))
            for m in SAMPLER_VARIANTS
            for s in seeds
            for n in names
            if GROUP_OF[n] == "training"
        ]
    if args.rescore:
        recorded = json.loads((work / "run.json").read_text())
        if args.rerun:
            again = [j for j in second if j.method in {m.strip() for m in args.rerun.split(",")}]
            for job in again:
                path, _ = _where(job)
                for extra in ("", "-wal", "-shm"):
                    Path(f"{path}{extra}").unlink(missing_ok=True)
            with ctx.Pool(args.workers) as pool:
                list(pool.imap_unordered(run_job, again))
            before = recorded.get("rerun", {})  # reruns add up: each one's methods and wall time
            recorded["rerun"] = {
                "methods": [*_as_list(before.get("methods", [])), args.rerun],
                "wall": float(before.get("wall", 0.0)) + time.perf_counter() - started,
            }
            (work / "run.json").write_text(json.dumps(recorded))
        results = [_stored(job) for job in first + second]
        wall = float(recorded["wall"]) + float(recorded.get("rerun", {}).get("wall", 0.0))
    else:
        with ctx.Pool(args.workers) as pool:
            for phase in (first, second):
                for r in pool.imap_unordered(run_job, phase):
                    results.append(r)
                    print(
                        f"[{time.perf_counter() - started:7.1f}s] {r['method']:<22} seed {r['seed']} "
                        f"{r['task']:<18} {len(r['trials']):>3} trials {r['seconds']:6.1f}s",
                        flush=True,
                    )
        wall = time.perf_counter() - started
        (work / "run.json").write_text(json.dumps({"wall": wall, "searches": len(results)}))
    summaries: dict[str, dict[str, Any]] = {}
    for group in groups:
        summaries[group] = {}
        for kind in ("all", "classification", "regression"):
            chosen = {n for n in names if GROUP_OF[n] == group and kind in ("all", datasets[n].kind)}
            rows = [r for r in results if r["task"] in chosen]
            if rows:
                summaries[group][kind] = summarise(rows, budget, seeds, (*METHODS, *SAMPLER_VARIANTS))
        pooled = [r for r in results if GROUP_OF[r["task"]] == group]
        if pooled:
            summaries[group][PROPOSALS] = summarise(pooled, budget, seeds, METHODS, curve_of=oracle_curve)
        for kind, s in summaries[group].items():
            print(f"\n{group}, {kind}")
            _print_table(s, budget)
        for what in ("all", PROPOSALS):
            label = group if what == "all" else f"{group}, proposals alone"
            if what not in summaries[group]:
                continue
            for statement, met, figures in targets(summaries[group][what], budget):
                print(f"[{'met' if met else 'NOT met'}] {label}: {statement}: {figures}")
    print(f"\n{len(results)} searches in {wall:.0f} s ({wall / 60:.1f} min), {args.workers} workers")
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"results": results, "summaries": summaries}, indent=1, default=str)
        )
    if not (args.quick or args.no_docs):
        meta = {
            "n_seeds": len(seeds),
            "runs": len(results),
            "wall": wall,
            "cpus": os.cpu_count(),
            "workers": args.workers,
            "tasks": {g: [n for n in names if GROUP_OF[n] == g] for g in groups},
            "shapes": {n: _shape(datasets[n]) for n in names},
            "python": f"Python {platform.python_version()}",
            "when": time.strftime("%Y-%m-%d"),
            "command": "`nice python bench/warmstart.py"
            + (" --samplers" if args.samplers else "")
            + (f" --seeds {args.seeds}" if args.seeds else "")
            + (f" --workers {args.workers}" if args.workers != 2 else "")
            + "`"
            + (
                ", then the same with "
                + ", then ".join(f"`--rescore --rerun '{m}'`" for m in _as_list(recorded["rerun"]["methods"]))
                + " (those methods run again on the same history after a change to them; the wall time "
                "includes every run)"
                if args.rescore and recorded.get("rerun")  # a later --rescore still says what was rerun
                else ""
            ),
        }
        replace_section(Path(args.docs), SECTION, render(summaries, budget, meta))
        print(f"wrote the section {SECTION!r} of {args.docs}")
    return 0


def _as_list(methods: str | list[str]) -> list[str]:
    """Rerun methods as recorded in ``run.json``: a list, or one string (older runs)."""
    return [methods] if isinstance(methods, str) else list(methods)


def _shape(ds: Any) -> str:
    return f"{ds.n_samples}×{ds.n_features}, " + (
        f"{ds.n_classes} classes" if ds.kind == "classification" else "regression"
    )


if __name__ == "__main__":
    raise SystemExit(main())
