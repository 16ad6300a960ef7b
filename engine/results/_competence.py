"""Reading a competence map back: the study ``<search>/competence`` of a meta-mode search.

Each finished trial of the study is one point of the map: the family parameters it explored and the
query score (mean ± 95% CI over meta-test tasks) of the best meta-learned θ after adaptation there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from engine.errors import StratagemError, UnknownNameError
from engine.storage import Database, SearchRow, reads
from engine.storage.optuna_adapter import open_optuna_storage
from engine.vocabulary import ATTR, competence_study_name

__all__ = ["CompetenceMap", "CompetencePoint", "competence"]


@dataclass(frozen=True)
class CompetencePoint:
    """One point of a competence map.

    Attributes:
        trial: The competence trial's number.
        params: The explored family parameters, by name.
        mean: Mean query score over the point's meta-test tasks after ``steps`` adaptation steps.
        ci95: Half-width of its 95% confidence interval.
        zero_steps: Mean score of θ itself (0 steps), for comparison.
        n_tasks: Meta-test tasks averaged.
        competent: Whether ``mean`` meets the map's threshold (``None`` without one).
        theta_trial: The meta trial whose θ was scored.
    """

    trial: int
    params: dict[str, float | int]
    mean: float
    ci95: float
    zero_steps: float
    n_tasks: int
    competent: bool | None
    theta_trial: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CompetenceMap:
    """Where a meta-mode search's best meta-strategy stays competent across its family's parameters.

    Attributes:
        search: The search; ``study`` its competence study.
        family: The family (name and options) θ was meta-trained on.
        strategy: The best meta-strategy, whose θ (from meta trial ``theta_trial``) was scored.
        metric: ``mse`` (lower is better) or ``accuracy`` (higher is better).
        steps: Adaptation steps before scoring.
        parameters: The explored parameters with their ``[low, high]``.
        threshold: The competence threshold, if the spec gave one.
        points: The finished points, by trial number; ``failed`` counts failed trials.
    """

    search: str
    study: str
    family: dict[str, Any]
    strategy: str
    theta_trial: int
    metric: str
    steps: int
    parameters: dict[str, list[float]]
    threshold: float | None
    points: list[CompetencePoint]
    failed: int

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["points"] = [p.to_dict() for p in self.points]
        return out


def competence(*, search: str, storage: str | None = None) -> CompetenceMap:
    """The competence map of a meta-mode search, as ``stratagem competence`` shows it.

    Raises:
        UnknownNameError: No such search in the storage.
        StratagemError: The search has no competence study (its spec had no ``[competence]`` table,
            or the run stopped before it).
    """
    db = Database(storage, create=False)
    if not db.has_tables():
        raise UnknownNameError(f"no search {search!r}: the storage holds no Stratagem data yet")
    with db.session() as s:
        row = SearchRow.by_name(s, search)
        if row is None:
            raise reads.unknown_search(s, search)
        asked = bool(row.spec.get("competence"))
    name = competence_study_name(search)
    try:
        study = optuna.load_study(study_name=name, storage=open_optuna_storage(db.url, create=False))
    except KeyError:
        if asked:  # the run stopped (or is still at work) before the map
            raise StratagemError(
                f"search {search!r} has no competence map yet: its run stopped before drawing it, or is "
                "still meta-training; run the same spec again (finished trials are kept)"
            ) from None
        raise StratagemError(
            f"search {search!r} has no competence map: give its meta-mode spec a [competence] table "
            "(n_trials and [competence.parameters]) and run it again"
        ) from None
    attrs: dict[str, Any] = study.user_attrs.get(ATTR, {})
    threshold = attrs.get("threshold")
    higher = attrs.get("metric") == "accuracy"
    points = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        record = t.user_attrs.get(ATTR, {})
        mean = float(record.get("mean", t.value if t.value is not None else "nan"))
        competent = None if threshold is None else (mean >= threshold if higher else mean <= threshold)
        points.append(
            CompetencePoint(
                trial=t.number,
                params=dict(t.params),
                mean=mean,
                ci95=float(record.get("ci95", "nan")),
                zero_steps=float(record.get("zero_steps", "nan")),
                n_tasks=int(record.get("n_tasks", 0)),
                competent=competent,
                theta_trial=int(record.get("theta_trial", attrs.get("theta_trial", -1))),
            )
        )
    return CompetenceMap(
        search=search,
        study=name,
        family=dict(attrs.get("family", {})),
        strategy=str(attrs.get("strategy", "")),
        theta_trial=int(attrs.get("theta_trial", -1)),
        metric=str(attrs.get("metric", "")),
        steps=int(attrs.get("steps", 0)),
        parameters={k: list(v) for k, v in attrs.get("parameters", {}).items()},
        threshold=threshold,
        points=sorted(points, key=lambda p: p.trial),
        failed=len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))),
    )
