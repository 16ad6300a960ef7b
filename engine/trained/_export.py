"""Exporting the best model of a task, and deleting a search with everything it stored.

Python API::

    import engine
    engine.export(search="quickstart", task="iris", out="iris-model")    # a model directory
    model = engine.load_model("iris-model")
    model.predict([{"sepal length (cm)": 5.1, ...}])
    engine.delete_search("old-search")                                   # studies, models, rows
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import download_artifact

from engine.errors import StorageError, StratagemError, UnknownNameError
from engine.storage import Database, SearchRow, queries, reads
from engine.storage.locations import locate, meta_artifacts
from engine.storage.optuna_adapter import GRACE_INTERVALS, live_trials, open_optuna_storage, study_id
from engine.trained._format import CARD_FILE, RERUN, WEIGHTS_FILE, ModelError, read_card
from engine.trained._store import ModelStore, remove_artifact
from engine.vocabulary import (
    ATTR,
    RECHECK_ATTR,
    cross_task_study_name,
    in_search_namespace,
    meta_study_name,
    search_study_names,
)

__all__ = ["Deleted", "delete_search", "export"]

EXPORTING = ".stratagem-export-"
"""Prefix of the folder an export writes its files in, inside ``out``, before renaming them into place."""


def export(
    *,
    search: str,
    task: str | None = None,
    out: str | Path,
    storage: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the kept model of a task's best trial to the directory ``out``; return its path.

    Args:
        search: The search's name.
        task: The task's name in the search (may be left out when the search has one task).
        out: The model directory to write (created; must not exist unless ``overwrite``).
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        overwrite: Replace the model files of an earlier export in ``out`` (nothing else in it).

    Raises:
        UnknownNameError: No such search or task.
        ModelError: No model is kept for the best trial, its file is gone or corrupted, ``out`` is a
            file or holds files (with ``overwrite``: files other than an earlier export's two), or the
            search is a meta-mode or cross-task search (which keep no model per task).
    """
    out = Path(out)
    db = Database(storage, create=False)
    if not db.has_tables():
        raise UnknownNameError(f"no search {search!r}: the storage holds no Stratagem data yet")
    with db.session() as s:
        row = SearchRow.by_name(s, search)
        if row is None:
            raise reads.unknown_search(s, search)
        _refuse_other_modes(search, row.spec)
        rows = reads.best_rows(s, search=search)
        keys = [link.key for _, link, _, _ in rows]
        if task is None and len(rows) == 1:
            task = keys[0]
        match = [(b, link) for b, link, _, _ in rows if link.key == task]
        if not match:
            hint = "name one with --task" if task is None else f"no best trial is stored for task {task!r}"
            raise UnknownNameError(
                f"search {search!r}: {hint}; tasks with a best trial: {', '.join(keys) or 'none'}"
            )
        best, link = match[0]
        art = reads.artifact_row(s, link.id, best.trial_number)
        number = best.trial_number
        study_name = link.study_name
    if art is None and _recheck_pending(db.url, study_name):
        raise ModelError(
            f"no trained model is kept for trial {number}, the best of task {task!r} in search {search!r} "
            "for now: the search's final recheck has not covered its latest trials (a run stopped before "
            "it), so the best is the validation best, whose own model the earlier recheck did not keep. "
            "Run the search again with the same spec to finish the recheck"
        )
    if art is None:
        raise ModelError(
            f"no trained model is kept for trial {number}, the best of task {task!r} in search {search!r}: "
            "models are kept in the artifact directory, beside a SQLite file, else only where "
            "search.artifacts or $STRATAGEM_ARTIFACTS name one (a PostgreSQL database needs one); with one "
            "set, run the search again with more trials, or under a new name, to keep a model"
        )
    _check_out(out, overwrite)
    location = locate(art.store, db.url, art.artifact_id)[0]
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        # Both files are written in a folder beside their place, then each is renamed into it: an
        # interrupted export or several at once leave whole files, and nothing else in ``out`` is touched.
        with tempfile.TemporaryDirectory(prefix=EXPORTING, dir=out) as tmp:
            weights = Path(tmp) / WEIGHTS_FILE
            try:
                download_artifact(
                    artifact_store=ModelStore(location), file_path=str(weights), artifact_id=art.artifact_id
                )
            except ModelError as exc:
                raise ModelError(f"the model of trial {number}, the best of task {task!r}: {exc}") from None
            card = read_card(weights, RERUN, shown=str(Path(location) / art.artifact_id))
            (Path(tmp) / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
            for name in (WEIGHTS_FILE, CARD_FILE):
                os.replace(Path(tmp) / name, out / name)
    except BaseException as exc:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # made for this export, which wrote nothing
        if isinstance(exc, OSError):
            raise ModelError(
                f"cannot write the model folder {str(out)!r}: {exc}; choose another --out"
            ) from exc
        raise
    return out


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, or a folder holding anything but an earlier export (with
    ``overwrite``; without it, anything at all): exporting replaces the model's two files only."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ModelError(f"{str(out)!r} is a file, not a model folder; choose another --out")
    try:
        present = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        raise ModelError(f"cannot read the folder {str(out)!r}: {exc}; choose another --out") from None
    if present and not overwrite:
        if set(present) <= {WEIGHTS_FILE, CARD_FILE}:
            raise ModelError(
                f"{str(out)!r} already exists and is not empty: it holds an earlier export; pass --overwrite "
                "to replace it, or choose another --out"
            )
        raise ModelError(f"{str(out)!r} already exists and is not empty; choose another --out or remove it")
    # another export's folder in flight (or left by a killed one) is no user file
    others = [
        name for name in present if name not in (WEIGHTS_FILE, CARD_FILE) and not name.startswith(EXPORTING)
    ]
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise ModelError(
            f"{str(out)!r} holds files that are not an exported model ({shown}); --overwrite replaces "
            f"only {CARD_FILE} and {WEIGHTS_FILE}: choose an empty or new --out"
        )


def _refuse_other_modes(search: str, spec: Any) -> None:
    """Meta-mode and cross-task searches keep no model per task: say what they keep instead."""
    mode = spec.get("search", {}).get("mode") if isinstance(spec, dict) else None
    if mode == "meta":
        raise ModelError(
            f"search {search!r} is a meta-mode search: it keeps a meta-learner to adapt to a new task, not "
            f"a model per task; adapt it to a few labelled rows with: stratagem adapt --search {search} "
            "--support rows.csv --target COLUMN --query new.csv"
        )
    if mode == "cross_task":
        raise ModelError(
            f"search {search!r} is a cross-task search: it stores one best default configuration for its "
            f"tasks (stratagem best --search {search}, engine.defaults()), not a trained model; to predict, "
            'run a per-task search (mode = "per_task") on the task and predict from that search'
        )


@dataclass(frozen=True)
class Deleted:
    """What :func:`delete_search` removed."""

    search: str
    task: str | None
    studies: list[str]
    trials: int
    artifacts: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "search": self.search,
            "task": self.task,
            "studies": self.studies,
            "trials": self.trials,
            "artifacts": self.artifacts,
        }


def delete_search(
    search: str, *, task: str | None = None, storage: str | None = None, force: bool = False
) -> Deleted:
    """Delete a search (or one task of it): its Optuna studies, kept models and engine rows.

    Other searches are left as they are, and so are stored tasks (``stratagem_tasks``), which other
    searches may share. Deleting one task keeps the search's task-exploration study (its visits to the
    task stay as history); the search cannot be resumed with the same spec afterwards, since its task
    list changed: run it under a new name.

    A search marked ``running`` is refused, since a worker may be at work on it between trials or in
    its final recheck (deleting then crashed it). ``force`` deletes it anyway, for a search whose every
    worker was killed outright (which leaves it marked running); studies with trials whose workers still
    send heartbeats are refused even then.

    Raises:
        UnknownNameError: No such search, or no such task in it.
        StratagemError: The search is marked running (without ``force``) or has live trials, or one
            task of a cross-task search is asked for.
    """
    db = Database(storage, create=False)
    if not db.has_tables():
        raise UnknownNameError(f"no search {search!r}: the storage holds no Stratagem data yet")
    optuna_storage: optuna.storages.BaseStorage | None = None
    present: set[str] = set()
    try:
        optuna_storage = open_optuna_storage(db.url, create=False)
        present = {st.study_name for st in optuna_storage.get_all_studies()}
    except StorageError:  # registered, but no study ever ran: only the engine's rows to delete
        optuna_storage = None
    search_id: int | None = None
    link_ids: list[int] = []
    artifacts: list[tuple[str, str]] = []
    with db.session() as s:
        row = SearchRow.by_name(s, search)
        if row is None:
            # Studies of a search whose rows are gone (deleted while a worker still ran it) stay deletable.
            studies = _orphans(optuna_storage, search) if task is None and optuna_storage else set()
            if not studies:
                raise reads.unknown_search(s, search)
        else:
            links = [t for t in row.tasks if task is None or t.key == task]
            if task is not None and not links:
                keys = ", ".join(t.key for t in row.tasks)
                raise UnknownNameError(f"search {search!r} has no task {task!r}; its tasks: {keys}")
            if task is not None and row.spec.get("search", {}).get("mode") == "cross_task":
                raise StratagemError(
                    f"search {search!r} is a cross-task search: its default is judged on all its tasks "
                    "together, so one task cannot be taken out of it; delete the whole search (no --task)"
                )
            if row.status == "running" and not force:
                raise StratagemError(
                    f"search {search!r} is marked running: a worker may be at work on it (between trials, "
                    "or in its final recheck). Stop its workers first (Ctrl-C marks it interrupted); if "
                    "none is left (a worker killed outright leaves it marked running), delete with --force"
                )
            search_id = row.id
            link_ids = [t.id for t in links]
            studies = {t.study_name for t in links}
            if task is None:
                studies = search_study_names(search, studies)
            elif any(t.study_name == cross_task_study_name(search) for t in links):
                studies.discard(cross_task_study_name(search))  # every task's: not one task's to delete
            artifacts = [(a.artifact_id, a.store) for a in queries.artifacts_of(s, link_ids)]
    studies &= present
    _refuse_running(db.url, search, studies)
    deleted: list[str] = []
    trials = 0
    for name in sorted(studies):
        assert optuna_storage is not None  # studies are among those it holds
        trials += optuna_storage.get_n_trials(study_id(optuna_storage, name))
        if name == meta_study_name(search):
            artifacts += meta_artifacts(optuna_storage, name)
        optuna.delete_study(study_name=name, storage=optuna_storage)
        deleted.append(name)
    removed = sum(remove_artifact(store, artifact_id, db.url) for artifact_id, store in artifacts)
    if search_id is not None:
        with db.session() as s:
            queries.delete_search_rows(s, search_id, None if task is None else link_ids)
    return Deleted(search, task, deleted, trials, removed)


def _orphans(storage: optuna.storages.BaseStorage, search: str) -> set[str]:
    """The studies that the search ``search`` made (their :data:`ATTR` says so), whatever rows remain."""
    return {
        st.study_name
        for st in storage.get_all_studies()
        if in_search_namespace(st.study_name, search)
        and isinstance(st.user_attrs.get(ATTR), dict)
        and st.user_attrs[ATTR].get("search") == search
    }


def _recheck_pending(url: str, study_name: str) -> bool:
    """Whether the strategy study ``study_name`` was rechecked before (a later run then made the recheck
    stale: its best is the validation best until the recheck is done again)."""
    try:
        study = optuna.load_study(study_name=study_name, storage=open_optuna_storage(url, create=False))
    except (KeyError, StorageError):
        return False
    return bool(study.user_attrs.get(RECHECK_ATTR))


def _refuse_running(url: str, search: str, studies: set[str]) -> None:
    """Refuse to delete studies that a live worker is running trials of (it would recreate them).

    Raises:
        StratagemError: Naming the study and its trials in flight, and what to do.
    """
    if not studies:
        return
    writer = open_optuna_storage(url)  # a writer's storage knows the heartbeat interval
    for name in sorted(studies):
        live = live_trials(writer, name)
        if live:
            raise StratagemError(
                f"search {search!r} is running: study {name!r} has trials in flight ({live}) whose workers "
                "still send heartbeats. Stop its workers first (Ctrl-C), then delete it; a worker killed "
                f"outright counts as stopped once it has missed {GRACE_INTERVALS} heartbeats"
            )
