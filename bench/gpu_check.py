"""Checks that need a CUDA GPU, which CI and the test suite cannot run: per-task training on ``device =
"cuda"``, the final recheck there, the parallel driver with its workers on the GPU, and kept models
exported and reloaded on the GPU and on the CPU.

Run on a machine with a GPU, from the repository root::

    python bench/gpu_check.py [--workdir DIR]

It prints one line per check and exits 1 if any failed (2 without a GPU). What it checks:

1. A search on ``device = "cuda"`` over every built-in strategy and updater, on a classification and a
   regression task, with ``recheck = 3``: every trial completes, each recorded test value is finite.
2. Each task's kept model, exported and reloaded with ``load_model(device="cuda")`` and ``"cpu"``, gives
   the same predictions on both devices (to 1e-4), and its evaluator on the task's test split gives the
   stored test value (to 1e-4: the GPU's kernels are not bit-for-bit those of the original run).
3. The same spec run on the CPU: the same trials complete (values differ a little; shown, not checked).
4. ``run(..., n_jobs=2)`` with ``device = "cuda"``: a local Dask cluster whose workers train on the GPU,
   exactly ``n_trials`` complete trials per task, the recheck run on those workers.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import torch  # noqa: E402

import engine  # noqa: E402
from engine.plugin import PluginHost  # noqa: E402
from engine.spec import EvaluationSpec, SearchSpec, TaskSpec  # noqa: E402
from engine.storage import Database, TaskRow  # noqa: E402
from engine.task import Split  # noqa: E402
from engine.vocabulary import RECHECK_ATTR, strategy_study_name  # noqa: E402

TASKS = ("breast_cancer", "diabetes")
GPU = "cuda"
failed: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        failed.append(what)


def spec(name: str, device: str, n_trials: int = 8) -> SearchSpec:
    return SearchSpec(
        name=name,
        tasks=tuple(TaskSpec("sklearn", {"dataset": d}) for d in TASKS),
        n_trials=n_trials,
        strategies=("linear", "mlp"),
        updaters=("gradient_descent", "random_search"),
        warm_start=False,
        device=device,
        evaluation=EvaluationSpec(recheck=3, folds=3),
    )


def trials(url: str, search: str, task: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=strategy_study_name(search, task), storage=url).get_trials()


def searched(url: str, search: str, n: int) -> None:
    for task in TASKS:
        ts = trials(url, search, task)
        states = [t.state.name for t in ts]
        check(
            states.count("COMPLETE") + states.count("PRUNED") == n,
            f"{search}/{task}: {n} finished ({states})",
        )
        failures = [t.user_attrs.get("stratagem.failure") for t in ts if t.state.name == "FAIL"]
        check(not failures, f"{search}/{task}: no failed trial {failures[:2]}")
        tests = [t.user_attrs["stratagem"]["test_value"] for t in ts if t.state.name == "COMPLETE"]
        check(all(math.isfinite(v) for v in tests), f"{search}/{task}: finite test values")
        state = optuna.load_study(study_name=strategy_study_name(search, task), storage=url).user_attrs
        judged = state.get(RECHECK_ATTR, {}).get("candidates", {})
        check(len(judged) == 3 and all("mean" in v for v in judged.values()), f"{search}/{task}: recheck ran")


def reloaded(url: str, work: Path) -> None:
    host = PluginHost.load(entry_points=False)
    for b in engine.best(storage=url, search="gpu"):
        out = engine.export(
            search="gpu", task=b.task, out=work / f"model-{b.task}", storage=url, overwrite=True
        )
        on_gpu, on_cpu = engine.load_model(out, device=GPU), engine.load_model(out, device="cpu")
        with Database(url).session() as s:
            split = Split.from_json(next(r for r in s.query(TaskRow) if r.name == b.task).split)
        data = host.task_sources.get("sklearn").load({"dataset": b.task}, ROOT)
        rows = data.X[split.test]
        if data.kind == "classification":
            a, c = on_gpu.predict_proba(rows), on_cpu.predict_proba(rows)
        else:
            a, c = on_gpu.predict(rows), on_cpu.predict(rows)
        check(
            np.allclose(a, c, atol=1e-4),
            f"{b.task}: same predictions on cuda and cpu (max diff {np.abs(a - c).max():.2e})",
        )
        value = float(host.evaluators.get(b.evaluator)(data.y[split.test], a))
        check(
            abs(value - (b.test_value or math.nan)) < 1e-4,
            f"{b.task}: reloaded test value {value:.6f} = stored {b.test_value:.6f}",
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workdir", default="/tmp/stratagem-gpu-check")
    parser.add_argument(
        "--device", default="cuda", help='"cpu" tries the script itself on a machine without a GPU'
    )
    args = parser.parse_args()
    global GPU
    GPU = args.device
    if GPU.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU: nothing checked")
        return 2
    name = torch.cuda.get_device_name(0) if GPU.startswith("cuda") else "no GPU"
    print(f"torch {torch.__version__}, {name}, optuna {optuna.__version__}")
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    url = f"sqlite:///{work / 'gpu.db'}"
    times: dict[str, float] = {}
    for name, device in (("gpu", GPU), ("cpu", "cpu")):
        started = time.perf_counter()
        engine.run(spec(name, device), storage=url)
        times[name] = time.perf_counter() - started
        searched(url, name, 8)
    reloaded(url, work)
    for b in engine.best(storage=url):
        print(
            f"     best {b.search}/{b.task}: {b.strategy}/{b.updater} "
            f"validation {b.value:.4f} test {b.test_value:.4f}"
        )
    print(f"     wall: {GPU} {times['gpu']:.1f} s, cpu {times['cpu']:.1f} s (small tasks)")
    par_url = f"sqlite:///{work / 'par.db'}"
    started = time.perf_counter()
    result = engine.run(spec("par", GPU, n_trials=6), storage=par_url, n_jobs=2)
    check(
        result.trials_run == 12,
        f"n_jobs=2 on cuda: 12 trials run ({result.trials_run}), {time.perf_counter() - started:.1f} s",
    )
    searched(par_url, "par", 6)
    print("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
