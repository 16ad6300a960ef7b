"""Shared vocabulary: study kinds and names, attribute keys, finished states, search statuses.

A leaf module: everything in the engine may import it, and it imports nothing of the engine back
(as Optuna keeps ``optuna/trial/_state.py``), so no orchestrator becomes the place everyone imports from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from optuna.trial import TrialState

__all__ = [
    "ATTR",
    "DONE_STATES",
    "FAILURE_ATTR",
    "KIND_COMPETENCE",
    "KIND_CROSS_TASK",
    "KIND_META",
    "KIND_STRATEGIES",
    "KIND_TASKS",
    "META_ARTIFACT_ATTR",
    "RECHECK_ATTR",
    "RECHECK_CLAIM_ATTR",
    "RESERVED_TASK_NAMES",
    "SEARCH_STATUSES",
    "SKIPPED_REASON",
    "TIE_LOSS",
    "WARM_START_ATTR",
    "SearchStatus",
    "StudyKind",
    "competence_study_name",
    "cross_task_study_name",
    "in_search_namespace",
    "meta_study_name",
    "search_study_names",
    "strategy_study_name",
]

ATTR: Final = "stratagem"
"""User attribute (on studies and trials) holding the engine's record of it."""

WARM_START_ATTR: Final = "stratagem.warm_start"
"""Strategy-study user attribute recording what warm start used and why (or why it did not run)."""

RECHECK_ATTR: Final = "stratagem.recheck"
"""Strategy-study user attribute: the final recheck of the top trials by k-fold, and the trial it chose."""

RECHECK_CLAIM_ATTR: Final = "stratagem.recheck_claim"
"""Strategy-study user attribute: which process is rechecking the study, and since when."""

TIE_LOSS: Final = "validation_loss"
"""Key of a strategy trial's record: its loss on the validation rows (cross-entropy for classification,
squared error for regression), which orders trials of equal validation value."""

SKIPPED_REASON: Final = (
    "not run: enqueued (a warm start's suggestion) while other workers finished the budget"
)
"""The :data:`FAILURE_ATTR` of an enqueued trial failed unrun because its study had its trials; listings
of failures leave these out."""

FAILURE_ATTR: Final = "stratagem.failure"
"""Trial user attribute holding why a failed trial failed (optuna-dashboard shows it; so does ``best``)."""

StudyKind = Literal["task_exploration", "strategy_exploration", "cross_task", "meta", "competence"]
KIND_TASKS: Final = "task_exploration"
"""The study named after a search: each trial is a visit to a task."""
KIND_STRATEGIES: Final = "strategy_exploration"
"""A study ``<search>/<task>``: each trial is one strategy trained and evaluated on the task."""
KIND_CROSS_TASK: Final = "cross_task"
"""The study ``<search>/cross_task``: each trial is one configuration judged over all tasks."""

KIND_META: Final = "meta"
"""The study ``<search>/meta`` of a meta-mode search: each trial meta-trains one meta-strategy on a family."""

KIND_COMPETENCE: Final = "competence"
"""The study ``<search>/competence`` of a meta-mode search: each trial scores the best θ on meta-test tasks
drawn with other family parameters (task exploration at the meta level: the competence map)."""

META_ARTIFACT_ATTR: Final = "stratagem.meta_artifact"
"""Meta-trial user attribute: the artifact id of its θ (safetensors), set when it was the best so far."""

DONE_STATES: Final = (TrialState.COMPLETE, TrialState.PRUNED)
"""Trial states that count as finished: a search wants ``n_trials`` of them per study."""

SearchStatus = Literal["running", "finished", "interrupted", "failed"]
SEARCH_STATUSES: Final[tuple[SearchStatus, ...]] = ("running", "finished", "interrupted", "failed")


RESERVED_TASK_NAMES: Final = ("cross_task", "meta", "competence")
"""Task names that would give a task's study the name of one of the search's own studies."""


def strategy_study_name(search: str, task: str) -> str:
    """Name of the Optuna study that explores strategies for ``task`` in ``search``."""
    return f"{search}/{task}"


def cross_task_study_name(search: str) -> str:
    """Name of the one Optuna study of a cross-task search."""
    return f"{search}/cross_task"


def meta_study_name(search: str) -> str:
    """Name of the one Optuna study of a meta-mode search."""
    return f"{search}/meta"


def competence_study_name(search: str) -> str:
    """Name of the competence-map study of a meta-mode search."""
    return f"{search}/competence"


def search_study_names(search: str, task_studies: Iterable[str] = ()) -> set[str]:
    """Every study a search may have: its task-exploration study, its cross-task, meta and competence
    studies, and ``task_studies`` (the strategy studies of its tasks)."""
    return {
        search,
        cross_task_study_name(search),
        meta_study_name(search),
        competence_study_name(search),
        *task_studies,
    }


def in_search_namespace(study_name: str, search: str) -> bool:
    """Whether ``study_name`` is one of the search's studies by name (``search`` or ``search/...``)."""
    return study_name == search or study_name.startswith(f"{search}/")
