"""Per-trial overhead of the engine against a plain Optuna loop doing the same work on the same storage.

Both paths run the same trivial trial: a ``constant`` strategy (one linear layer with zero weights)
trained by a ``noop`` updater (zero steps), scored on iris's validation and test rows with the same
:mod:`engine.study.training` functions, with the same sampler and pruner, on one SQLite file per repetition.

* engine: :func:`engine.search.run` with a spec that selects ``constant`` and ``noop``, loaded from this
  very file as a local plugin (``search.plugins``), as a user's ``--plugin`` file would be;
* plain: ``optuna.create_study(storage=...)`` and ``study.optimize`` with an objective that suggests the
  same parameters (same names) and calls the same build, fit and evaluation functions.

Per-trial time is read back from the storage: (last trial's completion - first trial's start) / trials,
so the engine's one-off start-up (plugins, data, meta-features, studies) is reported apart. Repetitions
alternate which path goes first. The target is ``engine <= 1.1 x plain + 2 ms`` per trial.

Usage::

    python bench/overhead.py [--trials 200] [--reps 3] [--samplers random,tpe] [--no-write] [--profile]

It prints a table and replaces the ``## Per-trial overhead (bench/overhead.py)`` section of
``docs/benchmarks.md`` (other sections are left as they are). ``--profile`` also prints where an engine
run's time goes (cProfile, by cumulative time) next to the plain loop's.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import optuna
from _docs import replace_section
from optuna.study import StudyDirection
from sqlalchemy import event
from sqlalchemy.engine import Engine

import engine
from engine.updater import FitResult, Report, TrainingProblem

THIS_FILE = Path(__file__).resolve()
DOC = THIS_FILE.parents[1] / "docs" / "benchmarks.md"
SECTION = "## Per-trial overhead (bench/overhead.py)"
DATASET = "iris"
TARGET_RATIO = 1.1
TARGET_EXTRA_MS = 2.0


# -- the throw-away plugin both paths use (the engine loads this file with search.plugins) -----------


class ConstantStrategy(engine.Strategy):
    """A model that predicts a constant: one linear layer whose weights start at zero.

    Args:
        bias_init: The starting value of every output.
    """

    name: ClassVar[str] = "constant"

    def __init__(self, bias_init: float = 0.0) -> None:
        self.bias_init = bias_init

    @classmethod
    def suggest(cls, trial: optuna.Trial, info: engine.TaskInfo) -> dict[str, Any]:
        return {"bias_init": trial.suggest_float("bias_init", -1.0, 1.0)}

    def build(self, info: engine.TaskInfo) -> Any:
        import torch

        layer = torch.nn.Linear(info.n_features, info.n_outputs)
        with torch.no_grad():
            layer.weight.zero_()
            layer.bias.fill_(self.bias_init)
        return layer


class NoopUpdater(engine.Updater):
    """Trains for zero steps and reports nothing, so a trial costs only the engine's own work.

    Args:
        lr: Unused; sampled so the updater has a search space like real ones.
    """

    name: ClassVar[str] = "noop"

    def __init__(self, lr: float = 1e-3) -> None:
        self.lr = lr

    @classmethod
    def suggest(cls, trial: optuna.Trial, info: engine.TaskInfo) -> dict[str, Any]:
        return {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True)}

    def fit(self, model: Any, problem: TrainingProblem, report: Report) -> FitResult:
        return FitResult(steps=0, train_loss=0.0)


@engine.hookimpl
def stratagem_register_strategies(registry: engine.Registry[type[engine.Strategy]]) -> None:
    """Register ``constant``."""
    registry.add(ConstantStrategy)


@engine.hookimpl
def stratagem_register_updaters(registry: engine.Registry[type[engine.Updater]]) -> None:
    """Register ``noop``."""
    registry.add(NoopUpdater)


# -- the two paths ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """One path's run: per-trial milliseconds (from the stored timestamps) and total wall seconds."""

    per_trial_ms: float
    wall_s: float
    trials: int


def _spec(name: str, sampler: str, n_trials: int, seed: int) -> Any:
    from engine.spec import SearchSpec, TaskSpec

    return SearchSpec(
        name=name,
        tasks=(TaskSpec("sklearn", {"dataset": DATASET}),),
        seed=seed,
        n_trials=n_trials,
        strategies=(ConstantStrategy.name,),
        updaters=(NoopUpdater.name,),
        plugins=(str(THIS_FILE),),
        warm_start=False,
        sampler={"name": sampler},
        pruner={"name": "median"},
    )


def _timing(study: optuna.Study, wall_s: float) -> Timing:
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    start = min(_dt(t.datetime_start) for t in trials)
    end = max(_dt(t.datetime_complete) for t in trials)
    return Timing((end - start).total_seconds() * 1000 / len(trials), wall_s, len(trials))


def _dt(value: datetime | None) -> datetime:
    if value is None:
        raise RuntimeError("a finished trial has no start or completion time in the storage")
    return value


def run_engine(url: str, name: str, sampler: str, n_trials: int, seed: int) -> Timing:
    """One engine search over ``n_trials`` trials of ``constant`` + ``noop``."""
    from engine.search import run

    started = time.perf_counter()
    result = run(_spec(name, sampler, n_trials, seed), storage=url)
    wall = time.perf_counter() - started
    (best,) = result.best
    return _timing(optuna.load_study(study_name=best.study, storage=url), wall)


def plain_objective(sampler: str, seed: int) -> tuple[Callable[[optuna.Trial], float], StudyDirection]:
    """The plain-Optuna objective doing the engine's trial work; returns it and the direction."""
    import torch

    from engine.plugin.host import PluginHost
    from engine.spec import resolve
    from engine.study import training
    from engine.study.objective import PrefixedTrial, trial_seed
    from engine.task import fingerprint, make_split

    plan = resolve(_spec("plain", sampler, 1, seed), PluginHost.load((str(THIS_FILE),), entry_points=False))
    dataset, evaluator = plan.tasks[0].dataset, plan.tasks[0].evaluator
    split = make_split(dataset, seed=int(fingerprint(dataset)[:8], 16) % (2**31 - 1))
    info = dataset.info()

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("strategy", [ConstantStrategy.name])
        s_params = ConstantStrategy.suggest(PrefixedTrial(trial, ConstantStrategy.name), info)  # type: ignore[arg-type]
        trial.suggest_categorical("updater", [NoopUpdater.name])
        u_params = NoopUpdater.suggest(PrefixedTrial(trial, NoopUpdater.name), info)  # type: ignore[arg-type]
        seed_ = trial_seed(seed, DATASET, trial.number)
        torch.manual_seed(seed_)
        prepared = training.prepare(dataset, split.train)
        model = ConstantStrategy(**s_params).build(prepared.info)
        problem = training.make_problem(dataset, prepared, split.validation, evaluator, seed_)

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        NoopUpdater(**u_params).fit(model, problem, report)
        value = training.evaluate(model, prepared, dataset, split.validation, evaluator)
        training.evaluate(model, prepared, dataset, split.test, evaluator)
        return value

    return (
        objective,
        StudyDirection.MAXIMIZE if evaluator.direction == "maximize" else StudyDirection.MINIMIZE,
    )


def run_plain(url: str, name: str, sampler: str, n_trials: int, seed: int, *, tuned: bool = True) -> Timing:
    """One plain Optuna study over ``n_trials`` trials of the same work.

    Args:
        tuned: Give Optuna's SQLite connections the settings the engine gives its own (WAL journal,
            ``synchronous=NORMAL``: no fsync per commit), so that only the engine's extra work differs.
            ``False`` keeps Optuna's defaults (an fsync per commit), as a user's own loop would have.
    """
    from engine.storage.database import tune_sqlite
    from engine.study import make_sampler

    objective, direction = plain_objective(sampler, seed)
    started = time.perf_counter()
    storage = optuna.storages.RDBStorage(url)
    if tuned:
        tune_sqlite(storage.engine)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=direction,
        sampler=make_sampler({"name": sampler}, seed),
        pruner=optuna.pruners.MedianPruner(),
    )
    study.optimize(objective, n_trials=n_trials)
    return _timing(study, time.perf_counter() - started)


# -- measuring, reporting ----------------------------------------------------------------------------


class _StatementCounter:
    """Counts SQL statements sent by every SQLAlchemy engine in the process while active."""

    def __init__(self) -> None:
        self.count = 0

    def _on_execute(self, *_args: Any) -> None:
        self.count += 1

    def __enter__(self) -> _StatementCounter:
        event.listen(Engine, "before_cursor_execute", self._on_execute)
        return self

    def __exit__(self, *_exc: Any) -> None:
        event.remove(Engine, "before_cursor_execute", self._on_execute)


def statements_per_trial(folder: Path, sampler: str, n_trials: int = 21) -> dict[str, float]:
    """Marginal SQL statements per trial of each path: (runs of ``n_trials`` - runs of 1) / (n - 1).

    Unlike times, the counts do not depend on the machine or its load.
    """
    out: dict[str, float] = {}
    for label, fn in (("engine", run_engine), ("plain", run_plain)):
        counts = []
        for n in (1, n_trials):
            url = f"sqlite:///{folder / f'count-{sampler}-{label}-{n}.db'}"
            with _StatementCounter() as counter:
                fn(url, f"count-{label}", sampler, n, 0)
            counts.append(counter.count)
        out[label] = (counts[1] - counts[0]) / (n_trials - 1)
    return out


@dataclass(frozen=True)
class Row:
    """Medians over repetitions for one sampler."""

    sampler: str
    engine_ms: float
    plain_ms: float
    engine_wall_s: float
    plain_wall_s: float
    engine_reps: list[float]
    plain_reps: list[float]
    engine_sql: float
    plain_sql: float

    @property
    def ratio(self) -> float:
        return self.engine_ms / self.plain_ms

    @property
    def budget_ms(self) -> float:
        return TARGET_RATIO * self.plain_ms + TARGET_EXTRA_MS

    @property
    def meets_target(self) -> bool:
        return self.engine_ms <= self.budget_ms


def measure(folder: Path, sampler: str, n_trials: int, reps: int) -> Row:
    """Alternate engine and plain runs ``reps`` times each, one fresh SQLite file per repetition."""
    engine_t: list[Timing] = []
    plain_t: list[Timing] = []
    sql = statements_per_trial(folder, sampler)
    for rep in range(reps):
        url = f"sqlite:///{folder / f'{sampler}-{rep}.db'}"
        paths = [("engine", run_engine, engine_t), ("plain", run_plain, plain_t)]
        for label, fn, out in paths if rep % 2 == 0 else paths[::-1]:
            timing = fn(url, f"{label}-{sampler}-{rep}", sampler, n_trials, rep)
            if timing.trials != n_trials:
                raise RuntimeError(f"{label} run finished {timing.trials} trials, expected {n_trials}")
            out.append(timing)
            print(f"  {sampler:6} rep {rep} {label:6} {timing.per_trial_ms:7.2f} ms/trial", file=sys.stderr)
    return Row(
        sampler=sampler,
        engine_ms=statistics.median(t.per_trial_ms for t in engine_t),
        plain_ms=statistics.median(t.per_trial_ms for t in plain_t),
        engine_wall_s=statistics.median(t.wall_s for t in engine_t),
        plain_wall_s=statistics.median(t.wall_s for t in plain_t),
        engine_reps=[t.per_trial_ms for t in engine_t],
        plain_reps=[t.per_trial_ms for t in plain_t],
        engine_sql=sql["engine"],
        plain_sql=sql["plain"],
    )


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    return {
        "CPU cores": str(os.cpu_count()),
        "machine": f"{platform.system()} {platform.machine()} {platform.processor() or ''}".strip(),
        "Python": platform.python_version(),
        "optuna": version("optuna"),
        "SQLAlchemy": version("sqlalchemy"),
        "SQLite": sqlite3.sqlite_version,
        "torch": version("torch"),
        "load average (1 min) at the end": f"{os.getloadavg()[0]:.2f}",
    }


def markdown(rows: list[Row], n_trials: int, reps: int, command: str) -> str:
    """The ``docs/benchmarks.md`` section, heading included."""
    lines = [
        SECTION,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} with `{command}`.",
        "",
        f"Each trial trains a `constant` strategy with a `noop` updater on {DATASET} (no training steps, "
        "validation and test evaluation only), so the time per trial is the search machinery's own: the "
        "engine through `engine.search.run` against a plain `optuna.create_study(storage=...)` loop with "
        "the same sampler, pruner, parameters and build/evaluation calls on the same SQLite file, whose "
        "connections get the engine's SQLite settings (WAL, `synchronous=NORMAL`) so that only the "
        "engine's extra work differs. Time per trial = (last completion - first start) / trials, read "
        f"from the storage; medians of {reps} alternating repetitions of {n_trials} trials; torch on one "
        "thread. Start-up (plugins, data, meta-features, studies) is in the wall columns only. SQL "
        "statements per trial are counted (marginal over 20 trials) and do not depend on the machine's "
        "load; on a busy machine trust them more than the milliseconds.",
        "",
        "| sampler | engine ms/trial | plain ms/trial | ratio | target (1.1 x plain + 2 ms) | meets "
        "| engine wall s | plain wall s | SQL statements/trial engine / plain |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.sampler} | {r.engine_ms:.2f} | {r.plain_ms:.2f} | {r.ratio:.2f} | {r.budget_ms:.2f} | "
            f"{'yes' if r.meets_target else 'no'} | {r.engine_wall_s:.2f} | {r.plain_wall_s:.2f} | "
            f"{r.engine_sql:.1f} / {r.plain_sql:.1f} |"
        )
    lines += ["", "Per repetition (ms/trial):", ""]
    for r in rows:
        eng = ", ".join(f"{v:.2f}" for v in r.engine_reps)
        pla = ", ".join(f"{v:.2f}" for v in r.plain_reps)
        lines.append(f"- {r.sampler}: engine {eng}; plain {pla}")
    lines += ["", "Machine: " + "; ".join(f"{k} {v}" for k, v in machine().items()), ""]
    return "\n".join(lines)


def table(rows: list[Row]) -> str:
    """A plain-text table for the terminal."""
    head = (
        f"{'sampler':8} {'engine ms':>10} {'plain ms':>9} {'ratio':>6} {'target ms':>10} {'meets':>6}"
        f" {'engine wall s':>14} {'plain wall s':>13} {'SQL/trial e/p':>14}"
    )
    body = [
        f"{r.sampler:8} {r.engine_ms:10.2f} {r.plain_ms:9.2f} {r.ratio:6.2f} {r.budget_ms:10.2f}"
        f" {'yes' if r.meets_target else 'NO':>6} {r.engine_wall_s:14.2f} {r.plain_wall_s:13.2f}"
        f" {f'{r.engine_sql:.1f}/{r.plain_sql:.1f}':>14}"
        for r in rows
    ]
    return "\n".join([head, *body])


def profile(folder: Path, sampler: str, n_trials: int, top: int = 30) -> None:
    """Print the top calls (cumulative time) of one engine run and one plain run."""
    for label, fn in (("engine", run_engine), ("plain", run_plain)):
        url = f"sqlite:///{folder / f'profile-{sampler}.db'}"
        profiler = cProfile.Profile()
        profiler.enable()
        fn(url, f"profile-{label}", sampler, n_trials, 0)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
        print(f"\n==== cProfile: {label}, {sampler}, {n_trials} trials ====\n{out.getvalue()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=200, help="trials per run (default 200)")
    parser.add_argument("--reps", type=int, default=3, help="alternating repetitions per path (default 3)")
    parser.add_argument(
        "--samplers", default="random,tpe", help="comma-separated: random, tpe (default both)"
    )
    parser.add_argument("--no-write", action="store_true", help=f"do not update {DOC.name}")
    parser.add_argument("--profile", action="store_true", help="also print cProfile summaries of both paths")
    args = parser.parse_args(argv)
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    if args.trials < 2 or args.reps < 1 or not samplers:
        parser.error("--trials must be >= 2, --reps >= 1, and --samplers must name at least one sampler")

    import torch

    torch.set_num_threads(1)  # tiny tensors: thread hand-offs only add noise, and both paths share it
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("stratagem").setLevel(logging.ERROR)
    command = "python bench/overhead.py " + " ".join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="stratagem-overhead-") as tmp:
        folder = Path(tmp)
        for sampler in samplers:  # warm-up: imports, torch and SQLite first-use costs
            run_engine(f"sqlite:///{folder / 'warmup.db'}", f"warmup-engine-{sampler}", sampler, 5, 0)
            run_plain(f"sqlite:///{folder / 'warmup.db'}", f"warmup-plain-{sampler}", sampler, 5, 0)
        rows = [measure(folder, s, args.trials, args.reps) for s in samplers]
        print(table(rows))
        if args.profile:
            for sampler in samplers:
                profile(folder, sampler, args.trials)
    if not args.no_write:
        replace_section(DOC, SECTION, markdown(rows, args.trials, args.reps, command.strip()))
        print(f"wrote {DOC}")
    return 0 if all(r.meets_target for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
