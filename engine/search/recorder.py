"""The best-so-far recorders: keep a stored "best" row current while a study runs.

One mechanism for both tables that hold a best: ``stratagem_best`` (the best strategy of a task, from a
strategy study) and ``stratagem_defaults`` (the best single configuration of a cross-task study). The
best value is compared in memory and the row is written only when a finished trial improves on it, in one
transaction that re-reads the row first, so a better value stored by another worker is never overwritten;
two workers that both find no row insert it once (the loser compares with the winner's row). Non-finite
values never become a best.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.configuration import Configuration
from engine.storage import BestRow, Database, DefaultRow, queries
from engine.storage.optuna_adapter import trial_counts
from engine.vocabulary import ATTR, DONE_STATES, TIE_LOSS

__all__ = [
    "BestRecorder",
    "DefaultRecorder",
    "Outcome",
    "StrategyRecorder",
    "better",
    "rank_key",
    "ranked",
    "tie_loss",
]

RowT = TypeVar("RowT", BestRow, DefaultRow)


def better(a: float, b: float, maximize: bool) -> bool:
    """Whether ``a`` beats ``b`` in the study's direction."""
    return a > b if maximize else a < b


def tie_loss(record: Mapping[str, Any]) -> float | None:
    """A trial's tie-break: its validation loss (:data:`~engine.vocabulary.TIE_LOSS`), when recorded."""
    loss = record.get(TIE_LOSS)
    if isinstance(loss, int | float) and not isinstance(loss, bool) and math.isfinite(loss):
        return float(loss)
    return None


def rank_key(value: float, loss: float | None, maximize: bool) -> tuple[float, float]:
    """Sort key of finished trials, best first: the value in the study's direction, then, among equal
    values, the lower validation loss (a trial without one after those with one).

    Accuracy on a small validation split ties often (several configurations reach 1.0); the
    cross-entropy or squared error on the same rows tells the more confident of them apart.
    """
    return (-value if maximize else value, math.inf if loss is None else loss)


def ranked(trials: Iterable[FrozenTrial], maximize: bool) -> list[FrozenTrial]:
    """Complete trials with a finite value, best first: :func:`rank_key`'s order, then the earlier."""
    finished = [
        t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    return sorted(
        finished,
        key=lambda t: (*rank_key(t.value or 0.0, tie_loss(t.user_attrs.get(ATTR, {})), maximize), t.number),
    )


@dataclass(frozen=True)
class Outcome:
    """A finished trial as a recorder sees it."""

    number: int
    value: float
    params: dict[str, Any]
    record: dict[str, Any]

    @property
    def loss(self) -> float | None:
        return tie_loss(self.record)


class BestRecorder(ABC, Generic[RowT]):
    """Keeps one stored best row current. Subclasses say which row, and what it holds.

    The order is :func:`rank_key`'s. ``best_value`` and ``best_loss`` mirror the stored row in memory
    (``best_loss`` is ``None`` when unknown), so that most trials need no transaction.
    """

    def __init__(self, db: Database, maximize: bool) -> None:
        self.db = db
        self.maximize = maximize
        self.best_loss: float | None = None
        with db.session() as s:
            row = self._find(s)
            self.best_value: float | None = self._value(row) if row is not None else None

    def improves(self, value: float, loss: float | None) -> bool:
        """Whether a trial of ``value`` (and tie-break ``loss``) may beat the stored best, as far as
        this process knows."""
        if not math.isfinite(value):
            return False
        best = self.best_value
        if best is None or better(value, best, self.maximize):
            return True
        return value == best and loss is not None and (self.best_loss is None or loss < self.best_loss)

    def offer(self, outcome: Outcome, study: optuna.Study) -> None:
        """Store ``outcome`` if it is finite and beats the best known so far."""
        if not self.improves(outcome.value, outcome.loss):
            return
        counts = self._counts(study)  # read Optuna before the transaction: SQLite has one writer
        losses: dict[int, float | None] = {}
        if self.best_value is None or outcome.value == self.best_value:  # a tie may need the stored loss
            losses = {
                t.number: tie_loss(t.user_attrs.get(ATTR, {}))
                for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            }
        self._store(outcome, lambda row: self._fill(row, outcome, counts), losses=losses)

    def _store(
        self,
        outcome: Outcome,
        write: Callable[[RowT], None],
        force: bool = False,
        losses: Mapping[int, float | None] | None = None,
    ) -> None:
        """In one transaction, ``write`` the row if ``outcome`` beats the stored one (re-read under a row
        lock first), or whatever it holds when ``force``. On equal values, the stored trial's tie-break
        is looked up in ``losses`` (trial number to loss); a stored trial not in it stays.

        A missing row is inserted in a savepoint: when another worker inserted it in the meantime (the
        unique key refuses ours), the row that worker stored is read and compared instead.
        """
        with self.db.session() as s:
            row = self._find(s)
            if row is None:
                row = self._new()
                write(row)
                try:
                    with s.begin_nested():
                        s.add(row)
                except IntegrityError:
                    row = self._find(s)
                    if row is None:  # not a lost race: the session reports the real error
                        raise
                else:
                    self.best_value, self.best_loss = outcome.value, outcome.loss
                    return
            if not force and not self._beats(outcome, row, losses or {}):
                stored = self._number(row)
                self.best_value = self._value(row)  # another worker stored a better one (or this one)
                self.best_loss = (losses or {}).get(stored) if stored != outcome.number else outcome.loss
                return
            write(row)
            self.best_value, self.best_loss = outcome.value, outcome.loss

    def _beats(self, outcome: Outcome, row: RowT, losses: Mapping[int, float | None]) -> bool:
        stored, number = self._value(row), self._number(row)
        if outcome.value != stored or number == outcome.number or number not in losses:
            return better(outcome.value, stored, self.maximize)
        return rank_key(outcome.value, outcome.loss, self.maximize) < rank_key(
            stored, losses[number], self.maximize
        )

    def repair(self, study: optuna.Study) -> None:
        """Derive the best from the study itself and store it if the row is missing or worse.

        The row is a cache of the study: a worker killed between a trial and the row's update, or a
        row written by an older version, is mended here (each visit starts with it).
        """
        top = ranked(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), self.maximize)[:1]
        if not top:
            return
        best = top[0]
        self.best_value = None  # the row decides, re-read in the transaction
        self.offer(
            Outcome(best.number, best.value or 0.0, dict(best.params), dict(best.user_attrs.get(ATTR, {}))),
            study,
        )

    def finish(self, study: optuna.Study) -> None:
        """Refresh the counts on the stored row after a batch of trials."""
        counts = self._counts(study)
        with self.db.session() as s:
            row = self._find(s)
            if row is not None:
                self._apply(row, counts)

    @abstractmethod
    def _find(self, s: Session) -> RowT | None: ...

    @abstractmethod
    def _new(self) -> RowT: ...

    @abstractmethod
    def _value(self, row: RowT) -> float: ...

    def _number(self, row: RowT) -> int:
        return int(row.trial_number)

    @abstractmethod
    def _fill(self, row: RowT, outcome: Outcome, counts: dict[str, int]) -> None: ...

    @abstractmethod
    def _counts(self, study: optuna.Study) -> dict[str, int]: ...

    @abstractmethod
    def _apply(self, row: RowT, counts: dict[str, int]) -> None: ...


class StrategyRecorder(BestRecorder[BestRow]):
    """``stratagem_best``: the best strategy trial of one task of a search."""

    def __init__(self, db: Database, search_task_id: int, maximize: bool) -> None:
        self.search_task_id = search_task_id
        super().__init__(db, maximize)

    def _find(self, s: Session) -> BestRow | None:
        return queries.best_row(s, self.search_task_id)

    def _new(self) -> BestRow:
        return BestRow(search_task_id=self.search_task_id)

    def _value(self, row: BestRow) -> float:
        return row.value

    def choose(self, outcome: Outcome, study: optuna.Study, notes: str) -> None:
        """Store ``outcome`` as the task's best whatever its validation value: the final recheck's pick.

        ``notes`` says how it was chosen (JSON text); a later trial that beats it by validation replaces
        it as usual, and the recheck runs again when the study has its trials.
        """
        counts = self._counts(study)

        def write(row: BestRow) -> None:
            self._fill(row, outcome, counts)
            row.notes = notes

        self._store(outcome, write, force=True)

    def rechecked(self) -> bool:
        """Whether the stored row was chosen by a final recheck (its notes say so)."""
        with self.db.session() as s:
            row = self._find(s)
            return row is not None and bool(row.notes)

    def _fill(self, row: BestRow, outcome: Outcome, counts: dict[str, int]) -> None:
        row.notes = ""
        row.trial_number = outcome.number
        row.configuration = Configuration.from_params(outcome.params)
        row.value = outcome.value
        row.test_value = _finite(outcome.record.get("test_value"))
        self._apply(row, counts)

    def _counts(self, study: optuna.Study) -> dict[str, int]:
        counts = trial_counts(study)
        return {"n_trials": sum(counts.get(state, 0) for state in DONE_STATES)}

    def _apply(self, row: BestRow, counts: dict[str, int]) -> None:
        row.n_trials = _grown(row.n_trials, counts["n_trials"])


class DefaultRecorder(BestRecorder[DefaultRow]):
    """``stratagem_defaults``: the best configuration of a cross-task search (lowest mean loss)."""

    def __init__(self, db: Database, search_id: int, study_name: str, kind: str) -> None:
        self.search_id = search_id
        self.study_name = study_name
        self.kind = kind
        super().__init__(db, maximize=False)

    def _find(self, s: Session) -> DefaultRow | None:
        return queries.default_row(s, self.search_id)

    def _new(self) -> DefaultRow:
        return DefaultRow(search_id=self.search_id)

    def _value(self, row: DefaultRow) -> float:
        return row.loss

    def _fill(self, row: DefaultRow, outcome: Outcome, counts: dict[str, int]) -> None:
        row.study_name = self.study_name
        row.kind = self.kind
        row.trial_number = outcome.number
        row.configuration = Configuration.from_params(outcome.params)
        row.loss = outcome.value
        row.per_task = {  # JSON has no NaN or infinity (PostgreSQL refuses them): those become null
            key: {k: _finite(t.get(k)) for k in ("value", "loss", "test_value", "test_loss")}
            for key, t in outcome.record.get("tasks", {}).items()
        }
        self._apply(row, counts)

    def _counts(self, study: optuna.Study) -> dict[str, int]:
        trials = study.get_trials(deepcopy=False)
        return {
            "n_trials": sum(t.state in DONE_STATES for t in trials),
            "task_evaluations": sum(
                int(t.user_attrs.get(ATTR, {}).get("task_evaluations", 0)) for t in trials
            ),
        }

    def _apply(self, row: DefaultRow, counts: dict[str, int]) -> None:
        row.n_trials = _grown(row.n_trials, counts["n_trials"])
        row.task_evaluations = _grown(row.task_evaluations, counts["task_evaluations"])


def _grown(stored: int | None, counted: int) -> int:
    """A count only grows: a worker that counted before another's trial finished must not lower it."""
    return max(stored or 0, counted)


def _finite(value: Any) -> float | None:
    """A number fit for a JSON column or ``best --json``: non-finite values and non-numbers are ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
