"""Reading results back: the best strategy per task, the best default of cross-task searches, the
stored tasks and the searches, as frozen records with JSON-ready ``to_dict()`` forms.

Python API::

    from engine.results import best, best_report
    for row in best(storage="sqlite:///stratagem.db", search="quickstart"):
        row.task, row.config.strategy, row.value
    best_report(search="quickstart").to_dict()  # what `stratagem best --json` prints

The queries are in :mod:`engine.storage.reads`; ``_read`` shapes their rows into the records of
``_records``.
"""

from __future__ import annotations

from engine.results._competence import CompetenceMap, CompetencePoint, competence
from engine.results._meta import BestMeta, meta_best
from engine.results._plot import check_svg_path, competence_svg, plot_competence
from engine.results._read import best, best_report, defaults, failures, searches, tasks
from engine.results._records import (
    BestDefault,
    BestReport,
    BestStrategy,
    HasConfiguration,
    Recheck,
    SearchSummary,
    StoredTask,
    TrialFailures,
)

__all__ = [
    "BestDefault",
    "BestMeta",
    "BestReport",
    "BestStrategy",
    "CompetenceMap",
    "CompetencePoint",
    "HasConfiguration",
    "Recheck",
    "SearchSummary",
    "StoredTask",
    "TrialFailures",
    "best",
    "best_report",
    "check_svg_path",
    "competence",
    "competence_svg",
    "defaults",
    "failures",
    "meta_best",
    "plot_competence",
    "searches",
    "tasks",
]
