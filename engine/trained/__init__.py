"""Using what a search found: keep trained models, export one, load it and predict; delete a search.

* While a search runs, :class:`ModelKeeper` keeps the trained weights of each task's best trial (or of
  every trial, with ``keep = "all"``) as safetensors files in Optuna's artifact store, linked from the
  trial (:mod:`._keeper`, :mod:`._store`); they are read back through :class:`ModelStore`, which
  refuses a file that is gone or corrupted with a :class:`ModelError` naming it.
* :func:`export` writes a task's best model to a self-contained directory (:mod:`._format`);
  :func:`load_model` reads it back through the strategy's plugin and predicts on raw rows
  (:mod:`._predict`).
* :func:`delete_search` removes a search's studies, kept models and rows, and nothing else.
"""

from __future__ import annotations

from engine.trained._export import Deleted, delete_search, export
from engine.trained._format import (
    CARD_FILE,
    WEIGHTS_FILE,
    MemberCard,
    ModelCard,
    ModelError,
    save_model_dir,
    write_weights,
)
from engine.trained._keeper import KEEP_MODES, KeptModel, ModelKeeper
from engine.trained._predict import LoadedModel, load_best_model, load_model, predict_csv, read_csv_rows
from engine.trained._store import ARTIFACTS_ENV, ModelStore, open_store, resolve_artifacts

__all__ = [
    "ARTIFACTS_ENV",
    "CARD_FILE",
    "KEEP_MODES",
    "WEIGHTS_FILE",
    "Deleted",
    "KeptModel",
    "LoadedModel",
    "MemberCard",
    "ModelCard",
    "ModelError",
    "ModelKeeper",
    "ModelStore",
    "delete_search",
    "export",
    "load_best_model",
    "load_model",
    "open_store",
    "predict_csv",
    "read_csv_rows",
    "resolve_artifacts",
    "save_model_dir",
    "write_weights",
]
