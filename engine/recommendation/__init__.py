"""Zero-shot recommendation: the strategies most likely to do well on a task, before any trial on it.

The storage's finished strategy studies of other tasks of the same kind are the evidence
(:func:`engine.transfer.history.load_history`). Every configuration tried there is a candidate, scored
by the :class:`~engine.transfer.surrogate.SourceEnsemble` with weights from meta-feature similarity
alone (there are no trials on the task to re-weight by): each source task's surrogate predicts the
candidate's rank-normalised value there (1 = as good as the best trial of that task) and the score is
the similarity-weighted mean. The top ``K`` distinct candidates are returned with their evidence: the
nearest tasks, their distance and weight, the rank each predicts for the candidate, and the value the
candidate actually got on a task where it was tried.

Python API::

    from engine.recommendation import recommend, recommend_for_source, recommend_for_task
    rec = recommend(dataset, storage="sqlite:///stratagem.db", top=3)
    rec.configs[0].config  # a Configuration: strategy, its params, updater, its params
    recommend_for_source(dataset="wine", top=3)  # as `stratagem recommend --dataset wine` does

The records and errors are in ``_records``, the scoring in ``_zero_shot``, and finding the task (stored,
a task source's entry, or the command line's choice) in ``_tasks``.
"""

from __future__ import annotations

from engine.recommendation._records import (
    Evidence,
    NoHistoryError,
    Recommendation,
    Recommended,
    TaskChoiceError,
)
from engine.recommendation._tasks import recommend_for_entry, recommend_for_source, recommend_for_task
from engine.recommendation._zero_shot import EVIDENCE_PER_CONFIG, recommend, recommend_for_features

__all__ = [
    "EVIDENCE_PER_CONFIG",
    "Evidence",
    "NoHistoryError",
    "Recommendation",
    "Recommended",
    "TaskChoiceError",
    "recommend",
    "recommend_for_entry",
    "recommend_for_features",
    "recommend_for_source",
    "recommend_for_task",
]
