"""Registering a search: storing it and its tasks (reused by fingerprint) before any trial runs.

A task's split and meta-features are computed once, when its data is first stored; a rerun of the same
search finds its rows and checks that nothing was changed that would mix incomparable values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from engine.errors import SpecError
from engine.spec import Plan, ResolvedTask, SearchSpec
from engine.storage import Database, SearchRow, SearchTaskRow, TaskRow
from engine.task import Split, make_split
from engine.task.metafeatures import compute_meta_features
from engine.vocabulary import (
    ATTR,
    KIND_COMPETENCE,
    KIND_CROSS_TASK,
    KIND_META,
    KIND_STRATEGIES,
    KIND_TASKS,
    RECHECK_ATTR,
    cross_task_study_name,
    in_search_namespace,
    strategy_study_name,
)

__all__ = ["MODE_KINDS", "SearchTask", "check_resumable", "register", "validation_attrs"]


@dataclass(frozen=True)
class SearchTask:
    """A task of a running search, as stored: its data, split, fingerprint and database ids."""

    resolved: ResolvedTask
    row_id: int
    search_task_id: int
    fingerprint: str
    split: Split
    meta_features: dict[str, float]

    @property
    def key(self) -> str:
        return self.resolved.key


MODE_KINDS: dict[str, frozenset[str]] = {
    "per_task": frozenset({KIND_TASKS, KIND_STRATEGIES}),
    "cross_task": frozenset({KIND_CROSS_TASK}),
    "meta": frozenset({KIND_META, KIND_COMPETENCE}),
}
"""The kinds of study each mode makes (user attribute :data:`ATTR`'s ``kind``)."""


def check_resumable(plan: Plan, storage: optuna.storages.BaseStorage) -> None:
    """Refuse, before writing anything, to run a search whose stored studies this run cannot continue.

    - A study in the search's namespace (its name, ``<name>/...``) with trials that no search of this
      name made: an Optuna study made by hand or by another program is never taken over.
    - Studies of another mode (a per-task search run again as cross-task, ...).
    - A task's other strategy or updater choices (Optuna fixes a categorical parameter's choices for the
      life of a study), or another validation (holdout and k-fold values would be mixed).
    """
    spec = plan.spec
    studies = [s for s in storage.get_all_studies() if in_search_namespace(s.study_name, spec.name)]
    for study in studies:
        if storage.get_n_trials(storage.get_study_id_from_name(study.study_name)) == 0:
            continue  # an empty study (a run killed between creating and describing it) is taken over
        mine = study.user_attrs.get(ATTR)
        mine = mine if isinstance(mine, dict) else {}
        owner = mine.get("search")
        if owner != spec.name:
            made_by = f"by the search {owner!r}" if owner else "outside Stratagem"
            raise SpecError(
                f"this storage already holds an Optuna study named {study.study_name!r}, made {made_by}; "
                "Stratagem will not add trials to it: give this search another name (search.name) or use "
                "another storage",
                source=spec.source,
                key="search.name",
            )
        kind = mine.get("kind")
        if kind and kind not in MODE_KINDS[spec.mode]:
            was = next((m for m, kinds in MODE_KINDS.items() if kind in kinds), kind)
            raise SpecError(
                f"search {spec.name!r} was run with mode = {was!r} (its study {study.study_name!r}); this "
                f"spec has mode = {spec.mode!r}. Keep the mode, or rename the search to start a new one",
                source=spec.source,
                key="search.mode",
            )
    attrs = {s.study_name: s.user_attrs.get(ATTR, {}) for s in studies}
    rechecked = {s.study_name for s in studies if s.user_attrs.get(RECHECK_ATTR)}
    for task in plan.tasks:
        if not spec.evaluation.recheck and strategy_study_name(spec.name, task.key) in rechecked:
            raise SpecError(
                f"search {spec.name!r} chose task {task.key!r}'s best by a final recheck and kept only the "
                "rechecked model; this run turns the recheck off, which would name a best whose model is "
                "gone. Keep a recheck (any recheck = N above 1), or rename the search to start a new one",
                source=spec.source,
                key="evaluation.recheck",
            )
        old = attrs.get(strategy_study_name(spec.name, task.key))
        if not old:
            continue
        for kind, new in (("strategies", task.strategies), ("updaters", task.updaters)):
            names = [x.name for x in new]
            if kind in old and old[kind] != names:
                raise SpecError(
                    f"search {spec.name!r} explored task {task.key!r} with {kind} {old[kind]}; this run "
                    f"asks for {names}. Optuna cannot change a study's choices: keep the list, or rename "
                    "the search to start a new one",
                    source=spec.source,
                    key=f"search.{kind}",
                )
        validation = validation_attrs(spec)
        if "validation" in old and {k: old.get(k) for k in validation} != validation:
            was = {k: old.get(k) for k in validation}
            raise SpecError(
                f"search {spec.name!r} judged task {task.key!r} with {was}; this run asks for {validation}, "
                "and its values would be mixed with the stored ones. Keep the validation, or rename the "
                "search to start a new one",
                source=spec.source,
                key="evaluation.validation",
            )


def validation_attrs(spec: SearchSpec) -> dict[str, Any]:
    """How a strategy study's values are measured (stored on the study, checked on resume)."""
    evaluation = spec.evaluation
    folds = evaluation.folds if evaluation.validation == "kfold" else None
    return {"validation": evaluation.validation, "folds": folds}


def register(db: Database, plan: Plan) -> tuple[int, list[SearchTask]]:
    """Store the search and its tasks (reusing tasks by fingerprint); return their ids."""
    spec = plan.spec
    keys = [t.key for t in plan.tasks]
    prepared: list[tuple[ResolvedTask, str]] = [(t, t.fingerprint) for t in plan.tasks]
    with db.session() as s:
        known = {fp: row for fp, row in ((fp, TaskRow.by_fingerprint(s, fp)) for _, fp in prepared) if row}
    new_rows: dict[str, dict[str, Any]] = {}
    for task, fp in prepared:  # compute outside any transaction: it takes a moment
        if fp not in known and fp not in new_rows:
            ds = task.dataset
            split = make_split(ds, seed=int(fp[:8], 16) % (2**31 - 1))
            new_rows[fp] = {
                "name": task.key,
                "kind": ds.kind,
                "source": task.spec.source,
                "options": _jsonable(task.spec.options),
                "n_samples": ds.n_samples,
                "n_features": ds.n_features,
                "n_classes": ds.n_classes,
                "meta_features": compute_meta_features(ds),
                "split": split.to_json(),
            }
    with db.lock("stratagem.register"), db.session() as s:  # workers starting together: one at a time
        search = SearchRow.by_name(s, spec.name)
        if search is None:
            search = SearchRow(name=spec.name, spec=spec.to_dict(), status="running")
            s.add(search)
        else:
            old_keys = [t.key for t in search.tasks]
            if old_keys and sorted(old_keys) != sorted(keys):
                raise SpecError(
                    f"search {spec.name!r} already exists in this storage with tasks {sorted(old_keys)}, "
                    f"but this spec has {sorted(keys)}; rename the search (search.name) to start a new one",
                    source=spec.source,
                    key="search.name",
                )
            search.spec = spec.to_dict()
            search.status = "running"
        s.flush()
        out: list[SearchTask] = []
        for task, fp in prepared:
            row = TaskRow.by_fingerprint(s, fp)
            if row is None:
                row = TaskRow(fingerprint=fp, **new_rows[fp])
                s.add(row)
                s.flush()
            link = next((st for st in search.tasks if st.key == task.key), None)
            if link is None:
                link = SearchTaskRow(
                    search=search,
                    task_id=row.id,
                    key=task.key,
                    study_name=(
                        cross_task_study_name(spec.name)
                        if spec.mode == "cross_task"
                        else strategy_study_name(spec.name, task.key)
                    ),
                    evaluator=task.evaluator.name,
                    direction=task.evaluator.direction,
                )
                s.add(link)
                s.flush()
            elif link.task_id != row.id:
                raise SpecError(
                    f"task {task.key!r} of search {spec.name!r} had different data when the search was "
                    "first run (its fingerprint changed); give the changed task a new name or the search a "
                    "new name",
                    source=spec.source,
                    key="tasks",
                )
            elif link.evaluator != task.evaluator.name:
                raise SpecError(
                    f"search {spec.name!r} judged task {task.key!r} with evaluator {link.evaluator!r}; "
                    f"resuming it with {task.evaluator.name!r} would mix values. Keep the evaluator or "
                    "rename the search",
                    source=spec.source,
                    key="evaluation",
                )
            out.append(
                SearchTask(task, row.id, link.id, fp, Split.from_json(row.split), dict(row.meta_features))
            )
        return search.id, out


def _jsonable(options: Any) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(options).items()}
