"""The final choice: re-judge a task's top trials by k-fold before naming its best.

With a small validation split, the trial that scores best on it is a noisy pick: among many trials, the
luckiest on a few rows wins. With ``[evaluation] recheck = N``, once a task's study has its ``n_trials``,
the ``N`` best finished trials (by validation value) are trained and judged again by k-fold
cross-validation over the training and validation rows (``evaluation.folds`` folds, on a partition drawn
with a seed of its own, so that with ``validation = "kfold"`` it is a second repetition), each with its
trial's own seed. The one with the best mean becomes the task's best, and what was judged is what is
kept: its value is the k-fold mean, its model the ensemble of its fold models (which together saw every
training and validation row), and its test value that ensemble's on the test split. The test split is
never used to choose.

What it costs: ``N × folds`` trainings per task, each on ``(folds - 1) / folds`` of the training and
validation rows (``folds`` more to keep the chosen ensemble if a crash lost it before it was stored).

The study is the system of record: the recheck is stored on it (:data:`~engine.vocabulary.RECHECK_ATTR`:
the settings, the trial count it covers, each candidate's fold values, mean and standard error, and the
trial chosen), and the best row is derived from it (:func:`repair`), so a worker killed at any point
loses nothing but the recheck in progress, which the next run repeats. One process rechecks a study at a
time (a claim on the study, taken over once its process is gone, or, from another machine, after
:data:`CLAIM_TTL`); the others go on. A later run with more trials makes the recheck stale: the best is
the validation best again until the study has its trials and is rechecked, reusing the candidates
already judged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.search.progress import ProgressSink
from engine.search.recorder import Outcome, StrategyRecorder, better, ranked
from engine.search.remote import TrialResult, run_trial
from engine.storage import Database
from engine.study import StrategyObjective
from engine.trained import ModelKeeper
from engine.vocabulary import ATTR, DONE_STATES, RECHECK_ATTR, RECHECK_CLAIM_ATTR

__all__ = [
    "CLAIM_TTL",
    "Candidate",
    "Replay",
    "final_choice",
    "recheck_objective",
    "recheck_timeout",
    "repair",
    "replay_here",
]

log = logging.getLogger("stratagem")

CLAIM_TTL = 600.0
"""Seconds after which another process takes over a recheck whose claimer has said nothing more."""


@dataclass(frozen=True)
class Candidate:
    """A finished trial to judge again."""

    number: int
    params: dict[str, Any]
    value: float
    record: dict[str, Any]

    @classmethod
    def of(cls, trial: FrozenTrial) -> Candidate:
        return cls(
            trial.number, dict(trial.params), float(trial.value or 0.0), dict(trial.user_attrs.get(ATTR, {}))
        )

    def outcome(self, judged: dict[str, Any] | None = None) -> Outcome:
        """The trial as the best row holds it: as it ran, or as the recheck judged it."""
        if judged is None or "mean" not in judged:
            return Outcome(self.number, self.value, self.params, self.record)
        record = {**self.record, "test_value": judged.get("test_value"), "validation": "recheck"}
        return Outcome(self.number, float(judged["mean"]), self.params, record)


Replay = Callable[
    [StrategyObjective, Sequence[Candidate], bool, Callable[[], None]], list["TrialResult | str"]
]
"""Trains ``objective`` on each candidate's parameters and seed (keeping the models if asked), calls the
callback after each, and returns each result, or why it failed, in order."""


def replay_here(trial_timeout: float | None) -> Replay:
    """A :data:`Replay` that trains the candidates one after the other in this process."""

    def replay(
        objective: StrategyObjective, candidates: Sequence[Candidate], keep: bool, tick: Callable[[], None]
    ) -> list[TrialResult | str]:
        out: list[TrialResult | str] = []
        for c in candidates:
            try:
                out.append(
                    run_trial(
                        objective,
                        c.params,
                        c.number,
                        keep_model=keep,
                        trial_timeout=trial_timeout,
                        threads=None,
                    )
                )
            except Exception as exc:  # a plugin's error: that candidate is out, the others count
                out.append(f"{type(exc).__name__}: {exc}")
            tick()
        return out

    return replay


def recheck_timeout(trial_timeout: float | None, folds: int) -> float | None:
    """The time limit of one candidate's recheck: ``folds`` trainings, each given a trial's limit."""
    return None if trial_timeout is None else trial_timeout * folds


def recheck_objective(objective: StrategyObjective, folds: int) -> StrategyObjective:
    """``objective`` judged by ``folds``-fold cross-validation on a partition of its own."""
    return dataclasses.replace(objective, validation="kfold", folds=folds, fold_seed=objective.split.seed + 1)


def repair(recorder: StrategyRecorder, study: optuna.Study, top: int, folds: int) -> None:
    """Make the best row what the study says: the recheck's choice if it is current, else the
    validation best (see :meth:`~engine.search.recorder.BestRecorder.repair`)."""
    state = _current(study, top, folds)
    chosen = None if state is None else _trial(study, state["chosen"])
    if state is not None and chosen is not None:
        recorder.choose(Candidate.of(chosen).outcome(_judged_of(state)), study, _notes(state))
        return
    if recorder.rechecked():  # a recheck that no longer covers every trial: back to the validation best
        best = ranked(study.get_trials(deepcopy=False), _maximize(study))[:1]
        if best:
            recorder.choose(Candidate.of(best[0]).outcome(), study, "")
    recorder.repair(study)


def final_choice(
    *,
    db: Database,
    study: optuna.Study,
    recorder: StrategyRecorder,
    objective: StrategyObjective,
    n_trials: int,
    top: int,
    folds: int,
    replay: Replay,
    keeper: ModelKeeper | None,
    progress: ProgressSink,
    task_key: str,
) -> dict[str, Any] | None:
    """Recheck ``study``'s top trials if it has its ``n_trials`` and no current recheck, then make the
    choice the task's best (and keep its model). Return the recheck stored, or ``None`` when there is
    none (recheck off, trials missing, or another process rechecking now)."""
    if top < 2:
        return None
    trials = study.get_trials(deepcopy=False)
    done = sum(t.state in DONE_STATES for t in trials)
    if done < n_trials:
        return None
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    with db.lock(f"stratagem.recheck:{study.study_name}"):
        state = _current(study, top, folds, done)
        if state is None:
            claim = study.user_attrs.get(RECHECK_CLAIM_ATTR) or {}
            if claim.get("n_trials") == done and _alive(claim, me):
                return None  # another process is on it
            study.set_user_attr(RECHECK_CLAIM_ATTR, {**me, "n_trials": done, "at": time.time()})
    trained: dict[int, TrialResult] = {}
    if state is None:
        try:
            state = _recheck(
                study, trials, done, objective, top, folds, replay, progress, task_key, trained, keeper
            )
        except BaseException:  # Ctrl-C, SIGTERM: the next run rechecks at once
            with db.lock(f"stratagem.recheck:{study.study_name}"):
                study.set_user_attr(RECHECK_CLAIM_ATTR, {})
            raise
        with db.lock(f"stratagem.recheck:{study.study_name}"):
            study.set_user_attr(RECHECK_ATTR, state)
            study.set_user_attr(RECHECK_CLAIM_ATTR, {})
    chosen = _trial(study, state["chosen"])
    if chosen is None:
        return state
    candidate = Candidate.of(chosen)
    judged = _judged_of(state)
    recorder.choose(candidate.outcome(judged), study, _notes(state))
    if (
        keeper is not None
        and judged is not None
        and "mean" in judged
        and not keeper.has_artifact(state.get("artifact"))
    ):
        artifact = _keep(
            keeper, study, recheck_objective(objective, folds), candidate, judged, trained, replay
        )
        if artifact is not None:
            state = {**state, "artifact": artifact}
            with db.lock(f"stratagem.recheck:{study.study_name}"):
                study.set_user_attr(RECHECK_ATTR, state)
    return state


def _recheck(
    study: optuna.Study,
    trials: list[FrozenTrial],
    done: int,
    objective: StrategyObjective,
    top: int,
    folds: int,
    replay: Replay,
    progress: ProgressSink,
    task_key: str,
    trained: dict[int, TrialResult],
    keeper: ModelKeeper | None,
) -> dict[str, Any]:
    """Judge the top trials (those not judged already with these settings); the models trained are
    left in ``trained`` when ``keeper`` keeps models."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    candidates = [Candidate.of(t) for t in ranked(trials, _maximize(study))[:top]]
    old = study.user_attrs.get(RECHECK_ATTR) or {}
    judged: dict[str, dict[str, Any]] = {}
    if old.get("top") == top and old.get("folds") == folds:  # the same judging: reuse what it found
        judged = {
            k: v for k, v in old.get("candidates", {}).items() if k in {str(c.number) for c in candidates}
        }
    todo = [c for c in candidates if str(c.number) not in judged] if len(candidates) > 1 else []
    if todo:
        label = f"{task_key} (recheck)"
        progress.task_started(label, len(todo))
        try:
            results = replay(
                recheck_objective(objective, folds),
                todo,
                keeper is not None,
                lambda: progress.trial_finished(label),
            )
        finally:
            progress.task_finished(label)
        for c, result in zip(todo, results, strict=True):
            judged[str(c.number)] = _judged(result)
            if not isinstance(result, str):
                trained[c.number] = result
    scored = [c for c in candidates if "mean" in judged.get(str(c.number), {})]
    best = candidates[0] if candidates else None
    for c in scored:
        mean = judged[str(c.number)]["mean"]
        if (
            best is None
            or "mean" not in judged.get(str(best.number), {})
            or better(mean, judged[str(best.number)]["mean"], maximize)
        ):
            best = c
    state = {
        "top": top,
        "folds": folds,
        "n_trials": done,
        "among": len(candidates),
        "validation_best": candidates[0].number if candidates else None,
        "chosen": best.number if best is not None else None,
        "candidates": judged,
    }
    same = old.get("top") == top and old.get("folds") == folds and old.get("chosen") == state["chosen"]
    if same and old.get("artifact"):
        state["artifact"] = old["artifact"]  # its ensemble is kept already
    return state


def _alive(claim: dict[str, Any], me: dict[str, Any]) -> bool:
    """Whether ``claim`` is held by another process that may still be at work: on this host, one whose
    process exists; on another, one that claimed less than :data:`CLAIM_TTL` seconds ago."""
    if not claim or claim.get("pid") is None or claim == {**claim, **me}:
        return False
    if claim.get("host") != me["host"]:
        return time.time() - float(claim.get("at", 0.0)) < CLAIM_TTL
    try:
        os.kill(int(claim["pid"]), 0)
    except ProcessLookupError:
        return False  # killed mid-recheck
    except (PermissionError, ValueError, OverflowError):
        pass
    return True


def _maximize(study: optuna.Study) -> bool:
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


def _judged(result: TrialResult | str) -> dict[str, Any]:
    if isinstance(result, str):
        return {"error": result}
    values = [float(v) for v in result.record.get("fold_values", [])]
    test = result.record.get("test_value")
    if not values or not all(math.isfinite(v) for v in values):
        return {"error": "a fold gave no finite value"}
    se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
    finite_test = float(test) if isinstance(test, int | float) and math.isfinite(test) else None
    return {"mean": float(np.mean(values)), "stderr": se, "folds": values, "test_value": finite_test}


def _judged_of(state: dict[str, Any]) -> dict[str, Any] | None:
    """The chosen trial's judgement, if the recheck judged it."""
    judged = state.get("candidates", {}).get(str(state.get("chosen")))
    return judged if isinstance(judged, dict) else None


def _keep(
    keeper: ModelKeeper,
    study: optuna.Study,
    objective: StrategyObjective,
    c: Candidate,
    judged: dict[str, Any],
    trained: dict[int, TrialResult],
    replay: Replay,
) -> str | None:
    """Keep the chosen trial's fold ensemble (trained again from its parameters and seeds if this process
    did not train it); return its artifact id."""
    result: TrialResult | str | None = trained.get(c.number)
    if result is None:
        (result,) = replay(objective, [c], True, lambda: None)
    if isinstance(result, str) or result.trained is None:
        log.warning(
            "trial %d was chosen by the recheck, but its models could not be kept: %s", c.number, result
        )
        return None
    outcome = c.outcome(judged)
    kept = keeper.upload(study, c.number, c.params, result.trained, outcome.value, outcome.record)
    keeper.settle(kept, sole=True)
    return kept.artifact_id


def _current(study: optuna.Study, top: int, folds: int, done: int | None = None) -> dict[str, Any] | None:
    """The stored recheck if it judged with these settings and covers every finished trial."""
    state = study.user_attrs.get(RECHECK_ATTR)
    if not isinstance(state, dict) or state.get("top") != top or state.get("folds") != folds:
        return None
    if done is None:
        done = sum(t.state in DONE_STATES for t in study.get_trials(deepcopy=False))
    return state if state.get("n_trials") == done and state.get("chosen") is not None else None


def _trial(study: optuna.Study, number: int | None) -> FrozenTrial | None:
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if trial.number == number and trial.value is not None:
            return trial
    return None


def _notes(state: dict[str, Any]) -> str:
    """What the best row says about how it was chosen (``stratagem best`` shows it)."""
    judged = state["candidates"].get(str(state["chosen"]), {})
    return json.dumps(
        {
            "recheck": {
                "folds": state["folds"],
                "among": state["among"],
                "mean": judged.get("mean"),
                "stderr": judged.get("stderr"),
                "validation_best": state["validation_best"],
            }
        }
    )
