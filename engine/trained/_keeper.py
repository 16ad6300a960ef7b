"""Keeping trained models while a search runs: the current best per task, or every trial's.

A trial's model is uploaded while the trial still runs (Optuna links an artifact to a running trial
only), when its value beats the task's best so far (``keep = "best"``) or always (``keep = "all"``).
Once the trial is recorded, :meth:`ModelKeeper.settle` writes the ``stratagem_artifacts`` row if the
trial is (still) the stored best, and with ``keep = "best"`` removes every other kept model of the task,
files included, so storage holds one model per task. With several workers each one settles against the
stored best row, so whatever the interleaving the one kept model is the best row's.

A worker killed after a trial finished but before its model was recorded leaves the file linked to the
trial and no row: :meth:`ModelKeeper.recover`, run as each visit starts, records it then, so a finished
trial's model is not lost with the process.

Optuna has no call to unlink an artifact from a trial: a removed model's ``artifacts:<id>`` system
attribute stays on its trial and points at nothing; ``stratagem_artifacts`` lists what is kept.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import upload_artifact
from optuna.trial import TrialState

from engine.configuration import Configuration
from engine.errors import ModelStoreError
from engine.settings import VERSION
from engine.storage import ArtifactRow, Database, queries
from engine.study.trained import TrainedModel
from engine.task import Dataset
from engine.trained._format import (
    WEIGHTS_FILE,
    MemberCard,
    ModelCard,
    ModelError,
    weights_metadata,
    write_weights,
)
from engine.trained._store import open_store, remove_artifact

__all__ = ["KEEP_MODES", "KeptModel", "ModelKeeper"]

log = logging.getLogger("stratagem")

KEEP_MODES = ("best", "all")

ARTIFACT_PREFIX = "artifacts:"
"""The system attribute by which Optuna links an uploaded artifact to its trial (``artifacts:<id>``)."""


@dataclass(frozen=True)
class KeptModel:
    """A model uploaded for a trial, not yet settled."""

    trial_number: int
    artifact_id: str
    n_bytes: int


class ModelKeeper:
    """Stores trained models of one task of a search in the artifact store at ``location``.

    Args:
        db: The engine's database.
        location: The artifact directory (see :func:`engine.trained.resolve_artifacts`).
        keep: ``"best"`` or ``"all"``.
        search_task_id: The search's task row.
        dataset: The task's data (its encoding, names and class labels go into the model card).
        origin: What the card records about where the model comes from (search, task, study, evaluator).
        plugin_of: The plugin that registered a strategy, by name.
    """

    def __init__(
        self,
        db: Database,
        location: str,
        keep: str,
        search_task_id: int,
        dataset: Dataset,
        origin: dict[str, Any],
        plugin_of: Any = None,
    ) -> None:
        if keep not in KEEP_MODES:
            raise ValueError(f"keep must be one of {KEEP_MODES}, got {keep!r}")
        self.db, self.location, self.keep = db, location, keep
        self.search_task_id, self.dataset, self.origin = search_task_id, dataset, origin
        self.plugin_of = plugin_of
        self.store = open_store(location)

    def wants(self, improves: bool) -> bool:
        """Whether a finished trial's model is uploaded: always with ``keep = "all"``, else if it improves."""
        return self.keep == "all" or improves

    def has_artifact(self, artifact_id: str | None) -> bool:
        """Whether the model ``artifact_id`` is kept for this task."""
        with self.db.session() as s:
            return any(a.artifact_id == artifact_id for a in queries.artifacts_of(s, [self.search_task_id]))

    def upload(
        self,
        link: optuna.Trial | optuna.Study,
        number: int,
        params: dict[str, Any],
        trained: TrainedModel,
        value: float,
        record: dict[str, Any],
    ) -> KeptModel:
        """Write trial ``number``'s model as one safetensors file and link it to ``link``: the trial while
        it runs (Optuna links artifacts to running trials only), or the study for a finished trial whose
        model was trained again from its parameters and seed (the final recheck's ensemble); the
        ``stratagem_artifacts`` row names the trial either way."""
        card = self.card(trained, number, params, value, record)
        try:
            with tempfile.TemporaryDirectory(prefix="stratagem-model-") as tmp:
                path = Path(tmp) / WEIGHTS_FILE
                write_weights(path, trained, card)
                n_bytes = path.stat().st_size
                artifact_id = upload_artifact(
                    artifact_store=self.store, file_path=str(path), study_or_trial=link
                )
        except OSError as exc:  # the disk, not the trial: every later model would fail the same way
            at = f" ({exc.filename})" if exc.filename else ""
            raise ModelStoreError(
                f"cannot keep trial {number}'s model in the model store {self.location}: "
                f"{exc.strerror or exc}{at}; free space there (or make it writable) and run the same "
                "command again: the trials finished before are kept"
            ) from exc
        return KeptModel(number, artifact_id, n_bytes)

    def card(
        self, trained: TrainedModel, number: int, params: dict[str, Any], value: float, record: dict[str, Any]
    ) -> ModelCard:
        ds = self.dataset
        config = Configuration.from_params(params)
        return ModelCard(
            kind=ds.kind,
            n_features=ds.n_features,
            n_classes=ds.n_classes,
            class_names=ds.class_names or tuple(str(i) for i in range(ds.n_classes)),
            feature_names=ds.feature_names,
            encoding=ds.row_encoding,
            strategy=trained.strategy,
            strategy_params=dict(trained.strategy_params),
            members=tuple(MemberCard(p.info.n_samples, p.y_mean, p.y_std) for _, p in trained.members),
            plugin=self.plugin_of(trained.strategy) if self.plugin_of else "",
            updater=config.updater,
            updater_params=dict(config.updater_params),
            origin={
                **self.origin,
                "trial": number,
                "value": value,
                "test_value": record.get("test_value"),
                "validation": record.get("validation"),
                "stratagem_version": VERSION,
            },
        )

    def settle(self, kept: KeptModel, sole: bool = False) -> None:
        """Record ``kept`` if it is to be kept; with ``keep = "best"`` drop every model but the best's
        (``sole``: but ``kept`` itself, when it replaces the best trial's other model)."""
        doomed: list[tuple[str, str]] = []
        with self.db.session() as s:
            best = queries.best_row(s, self.search_task_id)
            best_number = best.trial_number if best is not None else None
            if (self.keep == "all" or kept.trial_number == best_number) and not queries.artifact_kept(
                s, kept.artifact_id
            ):  # (recover() may have recorded it: settling twice keeps one row)
                s.add(
                    ArtifactRow(
                        search_task_id=self.search_task_id,
                        trial_number=kept.trial_number,
                        artifact_id=kept.artifact_id,
                        store=self.location,
                        n_bytes=kept.n_bytes,
                    )
                )
            else:
                doomed.append((kept.artifact_id, self.location))
            if self.keep == "best" and best_number is not None:
                doomed += queries.drop_artifacts(
                    s,
                    self.search_task_id,
                    keep_trial=best_number,
                    keep_artifact=kept.artifact_id if sole and kept.trial_number == best_number else None,
                )
        for artifact_id, location in doomed:
            remove_artifact(location, artifact_id, self.db.url)

    def recover(self, study: optuna.Study, rechecked: bool = False) -> None:
        """Record the models that finished trials uploaded but no row records (their worker was killed
        in between): the best trial's with ``keep = "best"`` (unless a final recheck chose the best:
        its model is the recheck's, which the recheck keeps itself), every complete trial's with
        ``keep = "all"``. A file that is gone or damaged is passed over."""
        with self.db.session() as s:
            best = queries.best_row(s, self.search_task_id)
            recorded = {a.trial_number for a in queries.artifacts_of(s, [self.search_task_id])}
        wanted = None  # keep = "all": every complete trial without a row
        if self.keep == "best":
            if best is None or rechecked or best.trial_number in recorded:
                return
            wanted = best.trial_number
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if trial.number in recorded or (wanted is not None and trial.number != wanted):
                continue
            for artifact_id in _linked(trial):
                path = Path(self.location) / artifact_id
                try:
                    weights_metadata(path, "")
                except ModelError:
                    continue  # gone (another store, or removed) or cut short
                self.settle(KeptModel(trial.number, artifact_id, path.stat().st_size))
                break

    def sweep(self, study: optuna.Study) -> None:
        """Remove the model files of failed trials (a worker killed after uploading a trial's model and
        before the trial was stored leaves one): a failed trial's model is never kept. A file that cannot
        be removed is left, with a warning: the search goes on."""
        failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        linked = [(t.number, a) for t in failed for a in _linked(t)]
        if not linked:
            return  # the usual case: no row to read
        with self.db.session() as s:
            recorded = {a.artifact_id for a in queries.artifacts_of(s, [self.search_task_id])}
        for number, artifact_id in linked:
            if artifact_id not in recorded:
                try:
                    remove_artifact(self.location, artifact_id, self.db.url)
                except OSError as exc:
                    log.warning("cannot remove failed trial %d's model file: %s", number, exc)


def _linked(trial: optuna.trial.FrozenTrial) -> list[str]:
    """The artifacts uploaded for ``trial`` (Optuna links each by a system attribute)."""
    prefix = ARTIFACT_PREFIX
    return [key.removeprefix(prefix) for key in trial.system_attrs if key.startswith(prefix)]
