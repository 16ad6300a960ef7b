"""Tasks: the data a strategy learns from, how sources deliver it, how it is split and described.

A :class:`TaskSource` plugin turns options from a study spec into a :class:`Dataset`. The engine
fingerprints the dataset, splits it once into train / validation / test with a seed derived from the
fingerprint, computes its meta-features, and stores all three, so every strategy ever tried on a task is
compared on the same rows.
"""

from __future__ import annotations

from engine.task.dataset import (
    MAX_ABS_VALUE,
    TASK_KINDS,
    Dataset,
    TaskInfo,
    TaskKind,
    fingerprint,
    magnitude_problems,
    out_of_range_cell,
)
from engine.task.encoding import FeatureColumn, RowEncoding, read_number
from engine.task.source import Option, TaskSource
from engine.task.split import Split, make_split

__all__ = [
    "MAX_ABS_VALUE",
    "TASK_KINDS",
    "Dataset",
    "FeatureColumn",
    "Option",
    "RowEncoding",
    "Split",
    "TaskInfo",
    "TaskKind",
    "TaskSource",
    "fingerprint",
    "magnitude_problems",
    "make_split",
    "out_of_range_cell",
    "read_number",
]
