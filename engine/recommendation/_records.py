"""The records a recommendation answers with, and the errors it raises."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.configuration import Configuration
from engine.errors import StratagemError
from engine.results import HasConfiguration

__all__ = ["Evidence", "NoHistoryError", "Recommendation", "Recommended", "TaskChoiceError"]


class NoHistoryError(StratagemError):
    """The storage holds no finished strategy studies of tasks of the asked kind."""


class TaskChoiceError(StratagemError, ValueError):
    """The task to recommend for was not given as exactly one of a CSV file, a dataset or a stored task."""


@dataclass(frozen=True)
class Evidence:
    """What one neighbour task says about a recommended configuration.

    Attributes:
        task: The neighbour's name; ``search`` and ``study`` hold its largest strategy study.
        search: The search of that study.
        study: The study's name.
        fingerprint: The neighbour's data fingerprint.
        distance: Normalised meta-feature distance to the task recommended for.
        weight: The neighbour's share of the ensemble (similarity only, sums to 1 over neighbours).
        predicted_rank: The neighbour's surrogate's rank-normalised prediction (1 = its best).
        value: The evaluator's validation value the configuration got there, if it was tried there.
        test_value: Its test-split value there, if it was tried there.
        evaluator: The neighbour study's evaluator.
    """

    task: str
    search: str
    study: str
    fingerprint: str
    distance: float
    weight: float
    predicted_rank: float
    value: float | None
    test_value: float | None
    evaluator: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class Recommended(HasConfiguration):
    """One recommended configuration.

    Attributes:
        rank: 1 for the best recommendation.
        config: The strategy and updater with their hyperparameters.
        score: Its predicted rank-normalised value on the task (1 = best), by the model learned across
            the stored tasks (:func:`engine.transfer.portfolio.learned_ranking`).
        origin: Where the configuration was tried (study and trial number, or a cross-task search).
        evidence: The most similar neighbours' view of it, nearest first.
    """

    rank: int
    config: Configuration
    score: float
    origin: str
    evidence: tuple[Evidence, ...]

    @property
    def params(self) -> dict[str, Any]:
        """The configuration as flat Optuna trial parameters (``study.enqueue_trial(params)`` takes them)."""
        return self.config.to_params()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; the configuration's four fields sit at the top level, then ``params``."""
        return {
            "rank": self.rank,
            **self.config.to_dict(),
            "params": self.params,
            "score": self.score,
            "origin": self.origin,
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True)
class Recommendation:
    """The answer of a recommendation: the top configurations and the tasks they rest on.

    Attributes:
        task: The name of the task recommended for.
        kind: Its kind.
        storage: The storage the history was read from (password hidden).
        configs: The recommended configurations, best first.
        neighbours: The most weighted neighbour tasks: ``task``, ``search``, ``study``, ``fingerprint``,
            ``distance``, ``weight`` and ``n_trials`` each.
        excluded_fingerprint: The task whose own history was left out, if any.
    """

    task: str
    kind: str
    storage: str
    configs: tuple[Recommended, ...]
    neighbours: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    excluded_fingerprint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (what ``stratagem recommend --json`` prints)."""
        return {
            "task": self.task,
            "kind": self.kind,
            "storage": self.storage,
            "configs": [c.to_dict() for c in self.configs],
            "neighbours": [dict(n) for n in self.neighbours],
            "excluded_fingerprint": self.excluded_fingerprint,
        }
