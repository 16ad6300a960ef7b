"""What transfer learns from: the stored history of other tasks of one kind, read in one place.

:func:`load_history` gathers the :class:`~engine.warmstarter.Source` of every other task with finished
strategy trials, the cross-task best defaults whose search did not involve the target, and the
meta-features of every stored task of the kind (which scale task distances). Warm start and zero-shot
recommendation both start from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from engine.storage import Database, queries
from engine.storage.optuna_adapter import open_optuna_storage
from engine.transfer.sources import discover_sources
from engine.warmstarter import Candidate, Source

__all__ = ["History", "load_history"]


@dataclass(frozen=True)
class History:
    """Other tasks' history for one target (never the target's own studies).

    Attributes:
        sources: Other tasks with at least two complete strategy trials, ordered by fingerprint.
        defaults: Cross-task best defaults of the kind, lowest loss first.
        population: Meta-features of every stored task of the kind except the target.
    """

    sources: list[Source]
    defaults: list[Candidate]
    population: list[dict[str, float]]


def load_history(
    db: Database,
    kind: str,
    *,
    exclude_fingerprint: str | None,
    storage: optuna.storages.BaseStorage | None = None,
    defaults: bool = True,
) -> History:
    """Read the history that transfer to a task of ``kind`` may use.

    Args:
        db: The engine's tables.
        kind: ``"classification"`` or ``"regression"``.
        exclude_fingerprint: The target task, whose studies (in any search) are never read, and whose
            searches' cross-task defaults are left out.
        storage: Optuna storage of the same database (default: opened from ``db.url``, read-only).
        defaults: Whether to read the cross-task defaults.
    """
    storage = storage if storage is not None else open_optuna_storage(db.url, create=False)
    with db.session() as s:
        tasks = {
            r.fingerprint: (r.name, dict(r.meta_features))
            for r in queries.tasks_of_kind(s, kind)
            if r.fingerprint != exclude_fingerprint
        }
        found: list[Candidate] = []
        if defaults:
            covered = queries.fingerprints_by_search(s)
            for row, search in queries.defaults_of_kind(s, kind):
                if exclude_fingerprint is not None and exclude_fingerprint in covered.get(
                    row.search_id, set()
                ):
                    continue
                found.append(
                    Candidate(
                        row.configuration.to_params(),
                        None,
                        f"cross-task default of search {search!r}",
                        row.loss,
                        None,
                        None,
                    )
                )
    sources = discover_sources(storage, tasks, exclude_fingerprint=exclude_fingerprint)
    return History(sources, found, [mf for _, mf in tasks.values()])
