"""Reading meta-mode searches back: the best meta-strategy per family, from each search's meta study.

There is no table of its own: the study ``<search>/meta`` (kind :data:`~engine.vocabulary.KIND_META`)
holds every trial with its meta-test curve, and its best trial is the answer, read through Optuna.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from engine.errors import UnknownNameError
from engine.storage import Database, SearchRow, reads
from engine.storage.optuna_adapter import open_optuna_storage
from engine.vocabulary import ATTR, META_ARTIFACT_ATTR, WARM_START_ATTR, meta_study_name

__all__ = ["BestMeta", "meta_best"]


@dataclass(frozen=True)
class BestMeta:
    """The best meta-strategy a meta-mode search found for its task family.

    Attributes:
        search: The search.
        study: Its meta study, ``<search>/meta``.
        family: The family's name and options.
        strategy: The meta-strategy's name; ``strategy_params`` its hyperparameters.
        updater: The updater that meta-trained θ (``None`` for a baseline that is not meta-trained).
        value: Meta-validation value (the trial's value): accuracy, or MSE (lower is better).
        metric: ``accuracy`` or ``mse``.
        test: Meta-test points, each ``{"steps", "mean", "ci95", "n_tasks"}``.
        trial: The trial's number; ``n_trials`` the study's finished trials.
        artifact_id: The kept θ (safetensors) in the artifact store at ``artifacts``, if kept.
        warm_start: What warm start did on the meta study (a
            :class:`~engine.warmstarter.WarmStartRecord` as a dict), if it ran.
    """

    search: str
    study: str
    family: dict[str, Any]
    strategy: str
    strategy_params: dict[str, Any]
    updater: str | None
    updater_params: dict[str, Any]
    value: float
    metric: str
    test: list[dict[str, Any]]
    trial: int
    n_trials: int
    artifact_id: str | None
    artifacts: str | None
    warm_start: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def meta_best(*, storage: str | None = None, search: str | None = None) -> list[BestMeta]:
    """The best meta-strategy of every meta-mode search (or of ``search``), by search name.

    Raises:
        UnknownNameError: ``search`` is given but not stored.
    """
    db = Database(storage, create=False)
    if not db.has_tables():
        if search is not None:
            raise UnknownNameError(f"no search {search!r}: the storage holds no Stratagem data yet")
        return []
    with db.session() as s:
        if search is not None and SearchRow.by_name(s, search) is None:
            raise reads.unknown_search(s, search)
        names = [
            r.name
            for r in reads.searches_newest_first(s)
            if r.spec.get("search", {}).get("mode") == "meta" and search in (None, r.name)
        ]
    if not names:  # no meta-mode search: Optuna's tables are not read (they may not even exist)
        return []
    optuna_storage = open_optuna_storage(db.url, create=False)
    out: list[BestMeta] = []
    for name in names:
        try:
            study = optuna.load_study(study_name=meta_study_name(name), storage=optuna_storage)
        except KeyError:  # registered, but no trial has run yet
            continue
        attrs = study.user_attrs.get(ATTR, {})
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            continue
        best = study.best_trial
        record = best.user_attrs.get(ATTR, {})
        out.append(
            BestMeta(
                search=attrs["search"],
                study=study.study_name,
                family=dict(attrs.get("family", {})),
                strategy=record.get("strategy", str(best.params.get("strategy"))),
                strategy_params=dict(record.get("strategy_params", {})),
                updater=record.get("updater"),
                updater_params=dict(record.get("updater_params", {})),
                value=float(best.value if best.value is not None else "nan"),
                metric=record.get("metric", attrs.get("metric", "")),
                test=list(record.get("test", [])),
                trial=best.number,
                n_trials=len(
                    study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
                ),
                artifact_id=best.user_attrs.get(META_ARTIFACT_ATTR),
                artifacts=attrs.get("artifacts"),
                warm_start=study.user_attrs.get(WARM_START_ATTR),
            )
        )
    return sorted(out, key=lambda b: b.search)
