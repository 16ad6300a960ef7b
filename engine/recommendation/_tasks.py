"""Finding the task to recommend for: a stored task, a task source's entry, or what the command line got."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from engine.errors import UnknownNameError
from engine.plugin.host import PluginHost
from engine.recommendation._records import Recommendation, TaskChoiceError
from engine.recommendation._zero_shot import recommend, recommend_for_features
from engine.storage import Database, reads
from engine.task import TaskKind, fingerprint

__all__ = ["recommend_for_entry", "recommend_for_source", "recommend_for_task"]


def recommend_for_task(name: str, *, storage: str | None = None, top: int = 5) -> Recommendation:
    """Recommend configurations for a stored task from the other tasks' history only.

    Args:
        name: The task's name (as stored, or its name in a search) or a prefix of its fingerprint.
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        top: How many configurations to return.

    Raises:
        UnknownNameError: No stored task has that name, or several do.
        NoHistoryError: No other task of its kind has a finished strategy study.
    """
    db = Database(storage, create=False)
    if not db.has_tables():
        raise UnknownNameError(
            f"no task {name!r}: the storage holds no Stratagem data yet; run a search first"
        )
    with db.session() as s:
        rows = reads.tasks_matching(s, name)
        known = reads.task_names(s) if not rows else []
    if not rows:
        raise UnknownNameError(f"no stored task {name!r}; stored tasks: {', '.join(known) or 'none'}")
    if len(rows) > 1:
        fps = ", ".join(r.fingerprint[:12] for r in rows)
        raise UnknownNameError(
            f"{len(rows)} stored tasks match {name!r} (fingerprints {fps}); give a fingerprint"
        )
    row = rows[0]
    return recommend_for_features(
        dict(row.meta_features),
        cast(TaskKind, row.kind),
        name=name,
        storage=db.url,
        top=top,
        exclude_fingerprint=row.fingerprint,
    )


def recommend_for_entry(
    source: str,
    options: Mapping[str, Any],
    *,
    storage: str | None = None,
    top: int = 5,
    plugins: Sequence[str] = (),
    base_dir: Path | None = None,
    exclude_own: bool = False,
) -> Recommendation:
    """Recommend configurations for a spec-like task entry, such as ``("csv", {"path": ..., "target": ...})``.

    The data is loaded through the plugin host, as a search would load it.

    Args:
        source: Task source name (``sklearn``, ``csv``, ``synthetic`` or a plugin's).
        options: The source's options.
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        top: How many configurations to return.
        plugins: Extra local plugin modules.
        base_dir: Folder relative paths resolve against (default: the current directory).
        exclude_own: Leave out the data's own history, if it is stored.

    Raises:
        UnknownNameError: The source is not registered, or has none of some option.
        TaskDataError: The data cannot be loaded.
        NoHistoryError: No other task of its kind has a finished strategy study.
    """
    host = PluginHost.load(tuple(plugins), base_dir=base_dir)
    task_source = host.task_sources.get(source)
    unknown = [k for k in options if k not in task_source.options]
    if unknown:
        raise UnknownNameError(
            f"task source {source!r} has no option(s) {unknown}; valid: {', '.join(task_source.options)}"
        )
    dataset = task_source.load(options, base_dir or Path.cwd())
    return recommend(
        dataset,
        storage=storage,
        top=top,
        exclude_fingerprint=fingerprint(dataset) if exclude_own else None,
    )


def recommend_for_source(
    *,
    csv: str | Path | None = None,
    target: str | None = None,
    kind: TaskKind | None = None,
    dataset: str | None = None,
    task: str | None = None,
    storage: str | None = None,
    top: int = 5,
    plugins: Sequence[str] = (),
    delimiter: str | None = None,
) -> Recommendation:
    """Recommend for a task given one of three ways, as ``stratagem recommend`` takes it.

    Exactly one of ``csv`` (with ``target``, and ``kind`` if it should not be detected), ``dataset`` (a
    bundled scikit-learn dataset) or ``task`` (a stored task, whose own history is left out).

    Args:
        csv: Path of a CSV file; loaded by the ``csv`` task source.
        target: The CSV's target column.
        kind: The CSV task's kind (default: detected from the target column).
        dataset: Name of a scikit-learn dataset, such as ``wine``; loaded by the ``sklearn`` source.
        task: A stored task's name or fingerprint prefix (see :func:`recommend_for_task`).
        storage: SQLAlchemy URL; default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``.
        top: How many configurations to return.
        plugins: Extra local plugin modules.
        delimiter: The CSV's field separator (default ``,``).

    Raises:
        TaskChoiceError: Not exactly one way is given, or ``target``/``kind``/``delimiter`` come without
            ``csv``, or ``csv`` without ``target``.
        UnknownNameError: The dataset or the stored task is unknown.
        TaskDataError: The data cannot be loaded.
        NoHistoryError: No other task of its kind has a finished strategy study.
    """
    given = [value for value in (csv, dataset, task) if value]
    if len(given) != 1:
        raise TaskChoiceError("give exactly one of --csv PATH --target COL, --dataset NAME or --task NAME")
    if (target is not None or kind is not None or delimiter is not None) and csv is None:
        raise TaskChoiceError("--target, --kind and --delimiter go with --csv")
    if csv is not None:
        if target is None:
            raise TaskChoiceError("--csv needs --target COL, the name of the target column")
        options: dict[str, Any] = {"path": str(csv), "target": target, **({"kind": kind} if kind else {})}
        if delimiter is not None:
            options["delimiter"] = delimiter
        return recommend_for_entry("csv", options, storage=storage, top=top, plugins=plugins)
    if dataset is not None:
        return recommend_for_entry("sklearn", {"dataset": dataset}, storage=storage, top=top, plugins=plugins)
    assert task is not None
    return recommend_for_task(task, storage=storage, top=top)
