"""The records results are read into: frozen, with JSON-ready ``to_dict()`` forms."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.configuration import Configuration
from engine.warmstarter import WarmStartRecord

if TYPE_CHECKING:
    from engine.results._meta import BestMeta

__all__ = [
    "BestDefault",
    "BestReport",
    "BestStrategy",
    "HasConfiguration",
    "Recheck",
    "SearchSummary",
    "StoredTask",
    "TrialFailures",
]


@dataclass(frozen=True)
class Recheck:
    """How the final recheck chose a task's best (``[evaluation] recheck``).

    Attributes:
        folds: Folds of the k-fold cross-validation over the training and validation rows.
        among: How many top trials (by validation) were judged again.
        mean: The chosen trial's mean over the folds, also the record's ``value`` (``None`` if every
            candidate failed: the validation best stayed).
        stderr: The standard error of that mean.
        validation_best: The trial that the validation split alone would have chosen.
    """

    folds: int
    among: int
    mean: float | None
    stderr: float | None
    validation_best: int | None

    @classmethod
    def from_notes(cls, notes: str | None) -> Recheck | None:
        """Read a best row's notes; ``None`` when the row was not chosen by a recheck."""
        try:
            data = json.loads(notes or "{}").get("recheck")
        except (ValueError, AttributeError):
            return None
        if not isinstance(data, dict):
            return None
        return cls(
            folds=int(data.get("folds", 0)),
            among=int(data.get("among", 0)),
            mean=data.get("mean"),
            stderr=data.get("stderr"),
            validation_best=data.get("validation_best"),
        )

    def summary(self, trial: int) -> str:
        """One cell: how the recheck chose ``trial`` (the best row's)."""
        if self.mean is None and self.among <= 1:
            return "one finished trial: nothing to recheck it against, validation value kept"
        if self.mean is None:
            return f"top {self.among}: every recheck failed, validation best kept"
        text = f"± {self.stderr or 0.0:.2g} over {self.folds} folds, best of top {self.among}"
        if self.validation_best is not None and self.validation_best != trial:
            text += f"; validation alone picked trial {self.validation_best}"
        return text


class HasConfiguration:
    """Read-only access to a record's ``config`` by its four parts, as the records had them before."""

    config: Configuration

    @property
    def strategy(self) -> str:
        """The strategy's registry name."""
        return self.config.strategy

    @property
    def strategy_params(self) -> Mapping[str, Any]:
        """The strategy's ``__init__`` keyword arguments."""
        return self.config.strategy_params

    @property
    def updater(self) -> str:
        """The updater's registry name."""
        return self.config.updater

    @property
    def updater_params(self) -> Mapping[str, Any]:
        """The updater's ``__init__`` keyword arguments."""
        return self.config.updater_params


@dataclass(frozen=True)
class BestStrategy(HasConfiguration):
    """The best strategy found for one task of one search.

    Attributes:
        search: The search's name.
        task: The task's name in that search.
        fingerprint: The task's data fingerprint (same data, same fingerprint, across searches).
        study: The Optuna study that explored strategies for the task.
        trial: Number of the best trial in that study.
        config: The best trial's strategy and updater with their hyperparameters.
        evaluator: Evaluator name; ``direction`` says whether higher or lower is better.
        value: The evaluator's value on the validation split (the mean over folds for k-fold; with a
            final recheck, the mean over the recheck's folds).
        test_value: The same strategy's value on the untouched test split (with a recheck: its fold
            ensemble's, the model that is kept).
        n_trials: Finished (complete or pruned) trials in the study.
        updated_at: When the row last changed.
        warm_start: How the study was warm-started, if a record was stored (sources and reasons).
        recheck: How the final recheck chose this trial, with ``[evaluation] recheck``.
    """

    search: str
    task: str
    fingerprint: str
    study: str
    trial: int
    config: Configuration
    evaluator: str
    direction: str
    value: float
    test_value: float | None
    n_trials: int
    updated_at: datetime | None = None
    warm_start: WarmStartRecord | None = None
    recheck: Recheck | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; the configuration's four fields sit at the top level."""
        return {
            "search": self.search,
            "task": self.task,
            "fingerprint": self.fingerprint,
            "study": self.study,
            "trial": self.trial,
            **self.config.to_dict(),
            "evaluator": self.evaluator,
            "direction": self.direction,
            "value": self.value,
            "test_value": self.test_value,
            "n_trials": self.n_trials,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "warm_start": self.warm_start.to_dict() if self.warm_start is not None else None,
            "recheck": asdict(self.recheck) if self.recheck is not None else None,
        }


@dataclass(frozen=True)
class BestDefault(HasConfiguration):
    """The best single configuration a cross-task search found over all its tasks.

    Attributes:
        search: The search's name.
        study: Its Optuna study (``<search>/cross_task``).
        kind: The tasks' kind, or ``"mixed"``.
        trial: Number of the best complete trial in that study.
        config: The configuration's strategy and updater with their hyperparameters.
        loss: Mean normalised validation loss over the tasks (0 perfect, 1 trivial predictor); see
            :mod:`engine.search.cross_task`.
        test_loss: The same mean on the test splits (``None`` if a task lacks a test value).
        per_task: ``{task: {"value", "loss", "test_value", "test_loss"}}``, values in each task's
            evaluator's units.
        n_trials: Finished (complete or pruned) trials in the study.
        task_evaluations: Task evaluations spent over all trials (racing keeps it below
            ``n_trials × tasks``).
        updated_at: When the row last changed.
    """

    search: str
    study: str
    kind: str
    trial: int
    config: Configuration
    loss: float
    test_loss: float | None
    per_task: dict[str, dict[str, Any]]
    n_trials: int
    task_evaluations: int
    updated_at: datetime | None = None

    @property
    def tasks(self) -> list[str]:
        """The tasks the default was judged on."""
        return sorted(self.per_task)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; the configuration's four fields sit at the top level."""
        return {
            "search": self.search,
            "study": self.study,
            "kind": self.kind,
            "trial": self.trial,
            **self.config.to_dict(),
            "loss": self.loss,
            "test_loss": self.test_loss,
            "per_task": {k: dict(v) for k, v in self.per_task.items()},
            "n_trials": self.n_trials,
            "task_evaluations": self.task_evaluations,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


@dataclass(frozen=True)
class BestReport:
    """What ``stratagem best`` shows: the best strategy per task and the best cross-task defaults."""

    best: list[BestStrategy]
    defaults: list[BestDefault]
    failures: list[TrialFailures] = field(default_factory=list)
    meta: list[BestMeta] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``{"best": [per task], "defaults": [per cross-task search], "failures": [per study that has
        failed trials], "meta": [the best meta-strategy per meta-mode search]}``."""
        return {
            "best": [b.to_dict() for b in self.best],
            "defaults": [d.to_dict() for d in self.defaults],
            "failures": [f.to_dict() for f in self.failures],
            "meta": [m.to_dict() for m in self.meta],
        }


@dataclass(frozen=True)
class TrialFailures:
    """The failed trials of one study of a search."""

    search: str
    study: str
    tasks: tuple[str, ...]
    failed: int
    reasons: tuple[str, ...]
    """The last distinct reasons, oldest first."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "search": self.search,
            "study": self.study,
            "tasks": list(self.tasks),
            "failed": self.failed,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class StoredTask:
    """A task stored in the database, with its meta-features and the searches that used it."""

    name: str
    fingerprint: str
    kind: str
    source: str
    options: dict[str, Any]
    n_samples: int
    n_features: int
    n_classes: int
    meta_features: dict[str, float]
    searches: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class SearchSummary:
    """A search stored in the database, with its size: Optuna studies and trials, kept models."""

    name: str
    status: str
    tasks: list[str]
    n_trials: int
    seed: int
    created_at: datetime
    updated_at: datetime
    studies: int = 0
    trials: int = 0
    artifacts: int = 0
    artifact_bytes: int = 0

    @property
    def last_run(self) -> datetime:
        """When the search last started or ended a run."""
        return self.updated_at

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, times in ISO 8601."""
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat()
        d["updated_at"] = self.updated_at.isoformat()
        return d
