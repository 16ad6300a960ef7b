"""The ``stratagem`` commands: each parses its options, calls one function of the Python API and hands
the answer to :mod:`engine.cli.render`.

Every command that reads a database takes ``--storage URL`` (an SQLAlchemy URL, like Optuna's CLI;
default ``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``), and every command takes ``--json``
(tables, or CSV for ``predict`` and ``adapt``, otherwise). :mod:`engine.results` (SQLAlchemy,
+0.8 s), :mod:`engine.recommendation` and :mod:`engine.search` (torch, +4 s) are imported by the
commands that call them, when they run, so that ``stratagem --help`` and ``stratagem plugins`` stay
instant; that is the only reason for an import inside a function here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from engine.cli import render
from engine.cli._base import cli, errors, json_option, output_kept_for_json, plugin_option, storage_option
from engine.plugin.host import PluginHost
from engine.settings import mask_password, resolve_storage
from engine.spec.checks import MAX_SEED

if TYPE_CHECKING:
    from engine.search import ProgressSink, SearchResult
    from engine.task import TaskKind

__all__ = ["best", "plugins", "recommend", "run", "searches", "tasks", "worker"]


def parallel_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--n-jobs`` and ``--dask``, shared by ``run`` and ``worker``."""
    command = click.option(
        "--n-jobs",
        type=click.IntRange(min=1),
        default=None,
        help="Trials at once, on a local Dask cluster (per-task mode; needs stratagem[dask]). With --dask: "
        "trials in flight (default: one per thread of the cluster).",
    )(command)
    command = click.option(
        "--dask",
        "dask_address",
        default=None,
        metavar="ADDRESS",
        help="Run trials on the Dask scheduler at ADDRESS (tcp://host:8786); this process samples and "
        "stores.",
    )(command)
    return command


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@storage_option
@click.option("--n-trials", type=click.IntRange(min=1), default=None, help="Finished trials wanted per task.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None, help="Override the spec's seed.")
@click.option("--no-warm-start", is_flag=True, help="Do not seed studies from other tasks' history.")
@plugin_option
@json_option
@click.option(
    "--no-progress",
    is_flag=True,
    help="Show no progress (bars on a terminal, else a line on stderr as each task ends).",
)
@parallel_options
@errors
def run(
    spec: str,
    storage: str | None,
    n_trials: int | None,
    seed: int | None,
    no_warm_start: bool,
    plugins: tuple[str, ...],
    as_json: bool,
    no_progress: bool,
    n_jobs: int | None,
    dask_address: str | None,
) -> None:
    """Run (or resume) the search described by the TOML file SPEC."""
    from engine.search import run as run_search  # Optuna and torch

    _search_and_show(
        lambda url, sink: run_search(
            spec,
            storage=url,
            n_trials=n_trials,
            seed=seed,
            warm_start=False if no_warm_start else None,
            plugins=plugins,
            progress=sink,
            n_jobs=n_jobs,
            dask=dask_address,
        ),
        storage,
        as_json,
        no_progress,
    )


@cli.command()
@click.option("--search", "search", required=True, help="The stored search to work on.")
@storage_option
@click.option(
    "--dir",
    "base_dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Folder the spec's relative paths (local plugins, CSV files) resolve from. Default: here.",
)
@plugin_option
@json_option
@click.option(
    "--no-progress",
    is_flag=True,
    help="Show no progress (bars on a terminal, else a line on stderr as each task ends).",
)
@parallel_options
@errors
def worker(
    search: str,
    storage: str | None,
    base_dir: str | None,
    plugins: tuple[str, ...],
    as_json: bool,
    no_progress: bool,
    n_jobs: int | None,
    dask_address: str | None,
) -> None:
    """Join a stored search as one more worker, from any machine that reaches its database.

    Reads the spec the search was started with from the storage and runs trials until every study has
    its n_trials, claiming each trial so that no count overshoots, however many workers run.
    """
    from engine.search import join  # Optuna and torch

    _search_and_show(
        lambda url, sink: join(
            search,
            storage=url,
            base_dir=Path(base_dir) if base_dir else None,
            plugins=plugins,
            progress=sink,
            n_jobs=n_jobs,
            dask=dask_address,
        ),
        storage,
        as_json,
        no_progress,
    )


def _search_and_show(
    search: Callable[[str, ProgressSink], SearchResult], storage: str | None, as_json: bool, no_progress: bool
) -> None:
    """Run ``search(url, progress)`` under progress bars (on a terminal), then print its result."""
    url = resolve_storage(storage)
    quiet = as_json or no_progress
    tty = sys.stderr.isatty()
    with (
        output_kept_for_json(as_json),
        render.progress_sink(bars=not quiet and tty, lines=not quiet and not tty) as sink,
    ):
        try:
            result = search(url, sink)
        except KeyboardInterrupt:
            _interrupted(url)
    _show_result(result, storage, as_json)


def _interrupted(url: str) -> NoReturn:
    click.echo(
        f"\nInterrupted. Finished trials are stored in {mask_password(url)}; run the same command "
        "again to resume.",
        err=True,
    )
    sys.exit(130)


def _show_result(result: SearchResult, storage: str | None, as_json: bool) -> None:
    if as_json:
        render.print_json(result.to_dict())
        return
    if result.meta:
        render.meta_table(result.meta)
    else:
        render.best_tables(result.best, result.defaults)
    storage_arg = "" if storage is None else f" --storage {mask_password(storage)}"
    click.echo(
        f"{result.trials_run} trials in {result.seconds:.1f}s. Results are in {result.storage} "
        f"(search {result.search!r}).\nSee them with: stratagem best --search {result.search}{storage_arg}"
    )


@cli.command()
@click.option("--search", default=None, help="Only this search.")
@click.option("--task", default=None, help="Only this task (name, or fingerprint prefix).")
@storage_option
@json_option
@errors
def best(search: str | None, task: str | None, storage: str | None, as_json: bool) -> None:
    """Show the best strategy found for each task, and the best default of cross-task searches.

    With --json: {"best": [one object per task], "defaults": [one object per cross-task search],
    "meta": [one object per meta-mode search], "failures": [one object per study with failed trials:
    count and last reasons]}.
    """
    from engine.results import best_report  # SQLAlchemy

    report = best_report(storage=storage, search=search, task=task)
    if as_json:
        render.print_json(report.to_dict())
    else:
        if report.best or report.defaults or not report.meta:
            render.best_tables(report.best, report.defaults)
        render.meta_table(report.meta)
        render.failures_table(report.failures)


@cli.command()
@storage_option
@json_option
@errors
def tasks(storage: str | None, as_json: bool) -> None:
    """List stored tasks and their meta-features."""
    from engine.results import tasks as stored_tasks  # SQLAlchemy

    rows = stored_tasks(storage=storage)
    if as_json:
        render.print_json([t.to_dict() for t in rows])
    else:
        render.tasks_table(rows)


@cli.command()
@storage_option
@json_option
@errors
def searches(storage: str | None, as_json: bool) -> None:
    """List stored searches."""
    from engine.results import searches as stored_searches  # SQLAlchemy

    rows = stored_searches(storage=storage)
    if as_json:
        render.print_json([s.to_dict() for s in rows])
    else:
        render.searches_table(rows)


@cli.command()
@plugin_option
@json_option
@errors
def plugins(plugins: tuple[str, ...], as_json: bool) -> None:
    """List loaded plugins, their versions and what each registers."""
    with output_kept_for_json(as_json):
        host = PluginHost.load(plugins)
    infos = host.plugin_infos()
    if as_json:
        render.print_json(
            {
                "plugins": [i.to_dict() for i in infos],
                "problems": [{"plugin": p.plugin, "message": p.message} for p in host.problems],
            }
        )
        return
    render.plugins_table(infos)
    for p in host.problems:
        click.echo(f"Warning: plugin {p.plugin} was not loaded: {p.message}", err=True)


@cli.command()
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="A CSV file of the new task."
)
@click.option("--target", default=None, metavar="COL", help="The CSV's target column (with --csv).")
@click.option(
    "--kind",
    type=click.Choice(["classification", "regression"]),
    default=None,
    help="The CSV task's kind [default: detected from the target column].",
)
@click.option("--delimiter", default=None, help="The CSV's field separator (with --csv) [default: ,].")
@click.option("--dataset", default=None, metavar="NAME", help="A bundled scikit-learn dataset, such as wine.")
@click.option("--task", default=None, metavar="NAME", help="A stored task (its own history is left out).")
@click.option(
    "--top", type=click.IntRange(min=1), default=5, show_default=True, help="Configurations to show."
)
@storage_option
@plugin_option
@json_option
@errors
def recommend(
    csv_path: str | None,
    target: str | None,
    kind: TaskKind | None,
    delimiter: str | None,
    dataset: str | None,
    task: str | None,
    top: int,
    storage: str | None,
    plugins: tuple[str, ...],
    as_json: bool,
) -> None:
    """Recommend strategies for a task before running a trial on it, from other tasks' history.

    Give the task as --csv PATH --target COL, as --dataset NAME or as --task NAME.
    """
    from engine.recommendation import TaskChoiceError, recommend_for_source  # Optuna and scikit-learn

    try:
        rec = recommend_for_source(
            csv=csv_path,
            target=target,
            kind=kind,
            dataset=dataset,
            task=task,
            storage=storage,
            top=top,
            plugins=plugins,
            delimiter=delimiter,
        )
    except TaskChoiceError as exc:  # shown under the command's usage line, as click's own errors are
        raise click.UsageError(str(exc)) from None
    if as_json:
        render.print_json(rec.to_dict())
    else:
        render.recommendation_table(rec)
