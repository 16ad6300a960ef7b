"""A task family from a user's table: one task per value of a column (store, patient, sensor, ...)."""

from __future__ import annotations

import csv
import hashlib
import logging
import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from engine import (
    EpisodeBatch,
    FamilyError,
    FamilyInfo,
    ParameterBounds,
    Pool,
    TaskFamily,
    TaskKind,
    check_int,
    check_pool,
    pool_generator,
    read_number,
)
from plugins.tasks import MISSING_TOKENS

__all__ = ["CsvFamily"]

log = logging.getLogger("stratagem")


def _missing(cell: str) -> bool:
    """An empty cell or a missing-value token (``NA``, ``nan``, ...), as the ``csv`` source reads it."""
    return cell.strip().lower() in MISSING_TOKENS


def _number(cell: str) -> float:
    """The cell as a number (:func:`engine.read_number`, as the ``csv`` source reads it), ``nan`` when it
    is none."""
    number = read_number(cell.strip())
    return math.nan if number is None else number


def _shown(cell: str) -> str:
    return "empty" if not cell.strip() else repr(cell)


class CsvFamily(TaskFamily):
    """Few-shot tasks from a CSV file whose ``task_column`` names the task of each row.

    The tasks (distinct values of ``task_column``) are split by a seeded permutation between the pools,
    ``val_fraction`` and ``test_fraction`` of them (at least one each) to meta-validation and meta-test,
    so meta-test tasks are never seen in meta-training. Every other column but ``target`` is a feature
    (numeric, standardised with the meta-train rows' mean and deviation; so is a regression target, and
    a meta search's losses are in units of its deviation). A regression episode draws
    ``k_shot`` support and ``k_query`` query rows of one task; a classification episode draws
    ``n_way`` of the task's target values (relabelled ``0..n_way-1``) and ``k_shot``/``k_query`` rows of
    each.

    Args:
        path: The CSV file (with a header row); in a spec, relative to the spec's folder.
        task_column: The column naming each row's task.
        target: The column to predict.
        kind: ``regression`` or ``classification``.
        k_shot: Support rows per task (per class for classification).
        k_query: Query rows per task (per class).
        n_way: Classes per episode (classification).
        val_fraction: Share of the tasks for meta-validation.
        test_fraction: Share of the tasks for meta-test.
        seed: Seed of the task split and of the episode streams.
    """

    name: ClassVar[str] = "csv"
    description: ClassVar[str] = "Tasks from a CSV file, one per value of a task column."
    path_options: ClassVar[tuple[str, ...]] = ("path",)

    def __init__(
        self,
        path: str,
        task_column: str,
        target: str,
        kind: TaskKind = "regression",
        k_shot: int = 5,
        k_query: int = 5,
        n_way: int = 2,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.path = path
        self.task_column = task_column
        self.target = target
        self.kind = kind
        self.k_shot = k_shot
        self.k_query = k_query
        self.n_way = n_way
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = seed

    def _error(self, key: str, message: str) -> FamilyError:
        return FamilyError(self.name, key, message)

    def _load(self) -> tuple[dict[Pool, list[tuple[np.ndarray, np.ndarray]]], FamilyInfo]:
        """The pools of standardised tasks, and the family's info with its columns and standardisation."""
        cached = getattr(self, "_pools_", None)
        if cached is not None and cached[0] == self.get_params():
            return cached[1], cached[2]
        if self.kind not in ("regression", "classification"):
            raise self._error("kind", f"must be 'regression' or 'classification', got {self.kind!r}")
        n_out = check_int(self.name, "n_way", self.n_way, 2) if self.kind == "classification" else 1
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
                raise self._error(
                    key, f"must be a number between 0 and 1 (a share of the tasks), got {value!r}"
                )
        columns, rows = self._read()
        for key in ("task_column", "target"):
            if getattr(self, key) not in columns:
                raise self._error(key, f"no column {getattr(self, key)!r} in {self.path}; columns: {columns}")
        if self.target == self.task_column:
            raise self._error(
                "target", f"is the task column {self.task_column!r}; give the column to predict"
            )
        for line, r in enumerate(rows, start=1):
            if _missing(r[self.task_column]):
                raise self._error(
                    "task_column",
                    f"data row {line} names no task (column {self.task_column!r} is "
                    f"{_shown(r[self.task_column])}); name its task or drop the row",
                )
            if self.kind == "classification" and _missing(r[self.target]):
                raise self._error(
                    "target",
                    f"data row {line} has no class (column {self.target!r} is {_shown(r[self.target])}); "
                    "give its class or drop the row",
                )
        names = np.array([r[self.task_column].strip() for r in rows])
        tasks = sorted(set(names.tolist()))
        if len(tasks) < 3:
            raise self._error(
                "task_column",
                f"column {self.task_column!r} names {len(tasks)} task(s); meta-train, meta-validation "
                "and meta-test need at least 3 (one per pool)",
            )
        features = [c for c in columns if c not in (self.task_column, self.target)]
        if not features:
            raise self._error("path", f"{self.path} has no feature columns besides the task and target")
        X = np.full((len(rows), len(features)), np.nan)
        for line, r in enumerate(rows):
            for col, c in enumerate(features):
                X[line, col] = _number(r[c])
                if not np.isfinite(X[line, col]):
                    raise self._error(
                        "path",
                        f"feature columns must be numeric and finite: column {c!r} is {r[c]!r} in data row "
                        f"{line + 1}; drop, fill or encode such values",
                    )
        raw_y = [r[self.target].strip() for r in rows]
        if self.kind == "regression":
            y = np.array([_number(v) for v in raw_y])
            bad = np.flatnonzero(~np.isfinite(y))
            if bad.size:
                line, cell = int(bad[0]) + 1, raw_y[int(bad[0])]
                what = (
                    f"data row {line} has no value (column {self.target!r} is {_shown(cell)}); give its "
                    "value or drop the row"
                    if _missing(cell)
                    else f"column {self.target!r} must hold finite numbers for regression: it is {cell!r} in "
                    f"data row {line}; correct the cell or drop the row"
                )
                more = f" ({bad.size} such rows)" if bad.size > 1 else ""
                raise self._error("target", what + more)
        else:
            _, y = np.unique(np.array(raw_y), return_inverse=True)
        order = [tasks[i] for i in np.random.default_rng(int(self.seed)).permutation(len(tasks))]
        n_val = max(1, round(float(self.val_fraction) * len(tasks)))
        n_test = max(1, round(float(self.test_fraction) * len(tasks)))
        if n_val + n_test >= len(tasks):
            raise self._error(
                "val_fraction", f"leaves no meta-train task out of {len(tasks)}; lower the fractions"
            )
        split: dict[Pool, list[str]] = {
            "meta_val": order[:n_val],
            "meta_test": order[n_val : n_val + n_test],
            "meta_train": order[n_val + n_test :],
        }
        train_rows = np.isin(names, split["meta_train"])
        mean, std = X[train_rows].mean(axis=0), X[train_rows].std(axis=0)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise self._error("path", "feature values are too large to standardise; rescale the columns")
        std = np.where(std > 0, std, 1.0)
        X = (X - mean) / std
        y_mean, y_std = 0.0, 1.0
        if self.kind == "regression":  # raw targets (sales of a few hundred) overflow the losses
            y_mean, y_std = float(y[train_rows].mean()), float(y[train_rows].std())
            if not (math.isfinite(y_mean) and math.isfinite(y_std)):
                raise self._error("target", "values are too large to standardise; rescale the column")
            y_std = y_std if y_std > 0 else 1.0
            y = (y - y_mean) / y_std
        pools = {p: [(X[names == t], y[names == t]) for t in split[p]] for p in split}
        info = FamilyInfo(
            self.name,
            self.kind,
            (len(features),),
            n_out,
            input_columns=tuple(features),
            input_mean=tuple(float(v) for v in mean),
            input_std=tuple(float(v) for v in std),
            target_mean=y_mean,
            target_std=y_std,
        )
        self._pools_ = (self.get_params(), pools, info)
        self._warn_small(pools, split)
        return pools, info

    def _warn_small(
        self, pools: dict[Pool, list[tuple[np.ndarray, np.ndarray]]], split: dict[Pool, list[str]]
    ) -> None:
        """Say which tasks can never give an episode at these options (too few rows, or too few classes
        with enough rows): they are left out of their pool's draws, so a pool may rest on few tasks."""
        k, q = int(self.k_shot), int(self.k_query)
        for pool, tasks in pools.items():
            small = [name for name, (_, y) in zip(split[pool], tasks, strict=True) if not self._fits(y, k, q)]
            if small and len(small) < len(tasks):  # none usable: sampling refuses, naming the option
                named = ", ".join(repr(t) for t in small[:5]) + (
                    f" and {len(small) - 5} more" if len(small) > 5 else ""
                )
                need = (
                    f"{self.n_way} classes with k_shot + k_query = {k + q} rows each"
                    if self.kind == "classification"
                    else f"k_shot + k_query = {k + q} rows"
                )
                log.warning(
                    "family %r: %d of the %d %s tasks (%s) have fewer than %s and are never drawn; %s "
                    "episodes come from the other %d",
                    self.name,
                    len(small),
                    len(tasks),
                    pool,
                    named,
                    need,
                    pool,
                    len(tasks) - len(small),
                )

    def _fits(self, y: np.ndarray, k: int, q: int) -> bool:
        """Whether a task with targets ``y`` can give an episode of ``k`` support and ``q`` query rows."""
        if self.kind == "regression":
            return len(y) >= k + q
        counts = np.unique(y, return_counts=True)[1]
        return int((counts >= k + q).sum()) >= int(self.n_way)

    def _read(self) -> tuple[list[str], list[dict[str, str]]]:
        """The file's header and its non-blank rows by column, each row as wide as the header."""
        path = Path(self.path)
        if path.exists() and not path.is_file():  # a folder, a device or a pipe: no end to read to
            raise self._error("path", f"{self.path!r} is not a file; give a CSV file")
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                table = [row for row in csv.reader(f, strict=True) if any(c.strip() for c in row)]
        except OSError as err:
            raise self._error("path", f"cannot read {self.path!r}: {err.strerror}") from None
        except (UnicodeDecodeError, csv.Error) as err:
            raise self._error("path", f"cannot read {self.path!r} as UTF-8 CSV: {err}") from None
        if not table:
            raise self._error("path", f"{self.path} is empty; it needs a header row and data rows")
        header = [c.strip() for c in table[0]]
        unnamed = [i for i, c in enumerate(header, start=1) if not c]
        if unnamed:
            raise self._error(
                "path", f"{self.path}: header column(s) {unnamed} have no name; name every column"
            )
        twice = sorted({c for c in header if header.count(c) > 1})
        if twice:
            raise self._error(
                "path", f"{self.path} names column(s) {twice} more than once; give each column its own name"
            )
        for line, row in enumerate(table[1:], start=1):
            if len(row) != len(header):
                raise self._error(
                    "path",
                    f"{self.path}: data row {line} has {len(row)} fields but the header has {len(header)}",
                )
        return header, [dict(zip(header, row, strict=True)) for row in table[1:]]

    def data_fingerprint(self) -> str:
        """SHA-256 of the file's bytes (first 16 hex digits): a meta search does not resume on changed
        data. For a regression family, of the bytes and a mark of its standardised target, so that a
        search begun with raw targets (an earlier version) is not resumed with values in other units."""
        try:
            data = Path(self.path).read_bytes()
            if self.kind == "regression":
                data += b"\0target standardised"
            return hashlib.sha256(data).hexdigest()[:16]
        except OSError as err:
            raise self._error("path", f"cannot read {self.path!r}: {err.strerror}") from None

    def info(self) -> FamilyInfo:
        """Kind, width and output width, with the feature columns and their meta-train standardisation
        (so that θ adapts to new raw rows as it was trained)."""
        return self._load()[1]

    def explorable(self) -> dict[str, ParameterBounds]:
        """``k_shot`` up to what the largest meta-test task leaves beside ``k_query`` query rows (per
        class for classification)."""
        pools, _ = self._load()
        q = check_int(self.name, "k_query", self.k_query)
        if self.kind == "regression":
            most = max(len(y) for _, y in pools["meta_test"])
        else:
            most = max(int(np.unique(y, return_counts=True)[1].max()) for _, y in pools["meta_test"])
        return {"k_shot": ParameterBounds(1, max(1, most - q), integer=True, description="support rows")}

    def sample(
        self, pool: Pool, n_tasks: int, generator: torch.Generator, *, query_size: int | None = None
    ) -> EpisodeBatch:
        pools, _ = self._load()
        gen = pool_generator(generator, self.seed, check_pool(self.name, pool))
        n = check_int(self.name, "n_tasks", n_tasks)
        k = check_int(self.name, "k_shot", self.k_shot)
        q = check_int(self.name, "k_query", self.k_query)
        if query_size is not None:
            q = check_int(self.name, "query_size", query_size)
        if self.kind == "regression":
            usable = [t for t in pools[pool] if self._fits(t[1], k, q)]
            if not usable:
                most = max(len(t[1]) for t in pools[pool])
                raise self._error(
                    "k_shot",
                    f"k_shot + k_query = {k + q} is more than the {most} rows of the "
                    f"largest {pool} task; lower k_shot or k_query",
                )
            xs, ys = [], []
            for _ in range(n):
                X, y = usable[int(torch.randint(len(usable), (1,), generator=gen))]
                idx = torch.randperm(len(y), generator=gen)[: k + q].numpy()
                xs.append(X[idx])
                ys.append(y[idx, None])
            x_t, y_t = (
                torch.tensor(np.stack(xs), dtype=torch.float32),
                torch.tensor(np.stack(ys), dtype=torch.float32),
            )
            return EpisodeBatch(x_t[:, :k], y_t[:, :k], x_t[:, k:], y_t[:, k:], "regression")
        return self._sample_classes(pools[pool], pool, n, k, q, gen)

    def _sample_classes(
        self,
        tasks: list[tuple[np.ndarray, np.ndarray]],
        pool: Pool,
        n: int,
        k: int,
        q: int,
        gen: torch.Generator,
    ) -> EpisodeBatch:
        n_way = check_int(self.name, "n_way", self.n_way, 2)
        options = []
        for X, y in tasks:
            values, counts = np.unique(y, return_counts=True)
            classes = [c for c, m in zip(values, counts, strict=True) if m >= k + q]
            if len(classes) >= n_way:
                options.append((X, y, classes))
        if not options:
            raise self._error(
                "n_way",
                f"no {pool} task has n_way={n_way} classes with k_shot + k_query = "
                f"{k + q} rows each; lower n_way, k_shot or k_query",
            )
        xs = np.empty((n, n_way, k + q, options[0][0].shape[1]), dtype=np.float32)
        for i in range(n):
            X, y, classes = options[int(torch.randint(len(options), (1,), generator=gen))]
            chosen = torch.randperm(len(classes), generator=gen)[:n_way].tolist()
            for way, ci in enumerate(chosen):
                rows = np.flatnonzero(y == classes[ci])
                xs[i, way] = X[rows[torch.randperm(len(rows), generator=gen)[: k + q].numpy()]]
        x = torch.from_numpy(xs)
        labels = torch.arange(n_way).view(1, n_way, 1).expand(n, n_way, k + q)
        return EpisodeBatch(
            x[:, :, :k].flatten(1, 2),
            labels[:, :, :k].flatten(1, 2).contiguous(),
            x[:, :, k:].flatten(1, 2),
            labels[:, :, k:].flatten(1, 2).contiguous(),
            "classification",
            n_way,
        )
