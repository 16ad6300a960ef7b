"""Equal validation values: first-of-ties against the validation-loss tie-break, on the same trials.

Reads the ``--json`` output of ``bench/warmstart.py`` (every trial's validation value, validation loss and
test value) and scores each search's incumbent both ways: the first trial of the best value (before) and
the engine's order, equal values by lower validation loss (``engine.search.recorder.rank_key``). Prints the
regret tables side by side and the paired test gain per run. No search runs.

    python bench/warmstart.py --seeds 2 --no-docs --json ws.json && python bench/tie_break.py ws.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import warmstart as W

CHECKS = (1, 3, 5, 10, 20)


def first_of_ties(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same runs with no validation loss, so that the first trial of the best value stays the best."""
    return [{**r, "trials": [{**t, "loss": None} for t in r["trials"]]} for r in results]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("results", help="the --json file of bench/warmstart.py")
    args = parser.parse_args(argv)
    with open(args.results) as f:
        results = json.load(f)["results"]
    seeds = sorted({r["seed"] for r in results})
    budget = max(len(r["trials"]) for r in results)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(W.GROUP_OF[r["task"]], []).append(r)
    for group, runs in groups.items():
        after = W.summarise(runs, budget, seeds)["table"]
        before = W.summarise(first_of_ties(runs), budget, seeds)["table"]
        checks = [c for c in CHECKS if c <= budget]
        print(f"\n{group}: regret at {'/'.join(map(str, checks))} trials, first of ties -> tie-break")
        for method in after:
            cells = (
                f"{before[method][f'regret@{c}'][0]:.3f} -> {after[method][f'regret@{c}'][0]:.3f}"
                for c in checks
            )
            print(f"  {method:<10} " + "  ".join(cells))
        best, worst = W._bounds(runs)
        for c in (5, budget):
            gains = []
            for r in runs:
                if r["method"] not in W.METHODS:
                    continue
                new = W.incumbent_curve(r["trials"], budget)
                old = W.incumbent_curve(first_of_ties([r])[0]["trials"], budget)
                span = (best[r["task"]] - worst[r["task"]]) or 1.0
                if len(new) >= c and new[c - 1] is not None and old[c - 1] is not None:
                    gains.append((new[c - 1] - old[c - 1]) / span)
            g = np.asarray(gains)
            se = g.std(ddof=1) / math.sqrt(len(g))
            print(
                f"  test gain after {c} trials (normalised; + = the tie-break is better): "
                f"{g.mean():+.4f} ± {se:.4f}; better in {int((g > 1e-12).sum())}, "
                f"worse in {int((g < -1e-12).sum())} of {len(g)} runs"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
