"""The ``stratagem`` command line.

Every command takes ``--storage URL`` (an SQLAlchemy URL, like Optuna's CLI; default
``$STRATAGEM_STORAGE`` or ``sqlite:///stratagem.db``) and prints tables on a terminal or JSON with
``--json``. Heavy modules (torch, Optuna) are imported only by the commands that need them.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from engine._config import DEFAULT_STORAGE, STORAGE_ENV, resolve_storage
from engine.errors import StratagemError

F = TypeVar("F", bound=Callable[..., Any])

storage_option = click.option(
    "--storage",
    metavar="URL",
    default=None,
    help=f"SQLAlchemy database URL [default: ${STORAGE_ENV} or {DEFAULT_STORAGE}]",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
plugin_option = click.option(
    "--plugin",
    "plugins",
    multiple=True,
    metavar="MODULE",
    help="Load a local plugin: a dotted module path or a .py file (repeatable).",
)


def _errors(fn: F) -> F:
    """Turn Stratagem's own errors into a one-line message and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StratagemError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _console() -> Any:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped: do not squeeze tables into 80 columns
        console = Console(width=240)
    return console


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def _table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], wrap: Sequence[str] = ()
) -> None:
    """Print a table; only the columns named in ``wrap`` may wrap, the others keep their width."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=bool(wrap))
    for col in columns:
        table.add_column(col, overflow="fold", no_wrap=bool(wrap) and col not in wrap)
    for row in rows:
        table.add_row(*(_fmt(v) for v in row))
    _console().print(table)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="stratagem")
def cli() -> None:
    """Stratagem: find the best learning strategy for each of many tasks, and learn across them."""


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@storage_option
@click.option("--n-trials", type=click.IntRange(min=1), default=None, help="Finished trials wanted per task.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Override the spec's seed.")
@click.option("--no-warm-start", is_flag=True, help="Do not seed studies from other tasks' history.")
@plugin_option
@json_option
@click.option("--no-progress", is_flag=True, help="Do not show progress bars.")
@_errors
def run(
    spec: str,
    storage: str | None,
    n_trials: int | None,
    seed: int | None,
    no_warm_start: bool,
    plugins: tuple[str, ...],
    as_json: bool,
    no_progress: bool,
) -> None:
    """Run (or resume) the search described by the TOML file SPEC."""
    from engine.search import run as run_search

    show = not (as_json or no_progress) and sys.stderr.isatty()
    url = resolve_storage(storage)
    with _progress(show) as sink:
        try:
            result = run_search(
                spec,
                storage=url,
                n_trials=n_trials,
                seed=seed,
                warm_start=False if no_warm_start else None,
                plugins=plugins,
                progress=sink,
            )
        except KeyboardInterrupt:
            click.echo(
                f"\nInterrupted. Finished trials are stored in {url}; run the same command again to resume.",
                err=True,
            )
            sys.exit(130)
    if as_json:
        _print_json(
            {
                **_result_dict(result),
                "best": [b.to_dict() for b in result.best],
                "defaults": [d.to_dict() for d in result.defaults],
            }
        )
        return
    _results_tables(result.best, result.defaults)
    storage_arg = "" if storage is None else f" --storage {storage}"
    click.echo(
        f"{result.trials_run} trials in {result.seconds:.1f}s. Results are in {result.storage} "
        f"(search {result.search!r}).\nSee them with: stratagem best --search {result.search}{storage_arg}"
    )


def _result_dict(result: Any) -> dict[str, Any]:
    return {
        "search": result.search,
        "storage": result.storage,
        "trials_run": result.trials_run,
        "seconds": round(result.seconds, 3),
    }


class _Bars:
    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def task_started(self, key: str, total: int) -> None:
        self.tasks[key] = self.progress.add_task(f"task {key}", total=total)

    def trial_finished(self, key: str) -> None:
        self.progress.advance(self.tasks[key])

    def task_finished(self, key: str) -> None:
        self.progress.update(self.tasks[key], completed=self.progress.tasks[self.tasks[key]].total)


class _progress:
    """Rich progress bars on stderr, or a sink that ignores everything."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.progress: Any = None

    def __enter__(self) -> Any:
        from engine.search import ProgressSink

        if not self.show:
            return ProgressSink()
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.progress.__enter__()
        return _Bars(self.progress)

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)


def _config(name: str, params: dict[str, Any]) -> str:
    """A strategy or updater with one hyperparameter per line, for narrow terminals."""
    from rich.markup import escape

    lines = (escape(f"{k}={'None' if v is None else _fmt(v)}") for k, v in params.items())
    return "\n".join([f"[bold]{escape(name)}[/bold]", *lines])


def _best_table(rows: Sequence[Any]) -> None:
    if not rows:
        click.echo("No finished strategies yet. Run a search first: stratagem run studies/quickstart.toml")
        return
    searches = {b.search for b in rows}
    one_search = len(searches) == 1
    columns = ["task", "strategy", "updater", "evaluator", "validation", "test", "trials"]
    table_rows: list[list[Any]] = [
        [
            b.task,
            _config(b.strategy, b.strategy_params),
            _config(b.updater, b.updater_params),
            f"{b.evaluator} ({'max' if b.direction == 'maximize' else 'min'})",
            b.value,
            b.test_value,
            b.n_trials,
        ]
        for b in rows
    ]
    if not one_search:
        columns.insert(0, "search")
        for row, b in zip(table_rows, rows, strict=True):
            row.insert(0, b.search)
    if any((b.warm_start or {}).get("used") for b in rows):
        columns.append("warm start")
        for row, b in zip(table_rows, rows, strict=True):
            row.append(_warm_summary(b.warm_start))
    title = f"Best strategy per task of search {rows[0].search!r}" if one_search else "Best strategy per task"
    _table(title, columns, table_rows, wrap=("strategy", "updater", "warm start"))


def _warm_summary(info: dict[str, Any] | None) -> str:
    if not info:
        return "-"
    if not info.get("used"):
        return str(info.get("reason", "cold start"))
    sources = info.get("sources", [])
    names = ", ".join(str(s.get("task")) for s in sources[:3])
    more = f" +{len(sources) - 3}" if len(sources) > 3 else ""
    return f"{info.get('method', 'warm')}: {names}{more}"


@cli.command()
@click.option("--search", default=None, help="Only this search.")
@click.option("--task", default=None, help="Only this task (name, or fingerprint prefix).")
@storage_option
@json_option
@_errors
def best(search: str | None, task: str | None, storage: str | None, as_json: bool) -> None:
    """Show the best strategy found for each task, and the best default of cross-task searches.

    With --json: {"best": [one object per task], "defaults": [one object per cross-task search]}.
    """
    from engine.results import best as query
    from engine.results import defaults as query_defaults

    rows = query(storage=storage, search=search, task=task)
    found = query_defaults(storage=storage, search=search) if task is None else []
    if as_json:
        _print_json({"best": [b.to_dict() for b in rows], "defaults": [d.to_dict() for d in found]})
    else:
        _results_tables(rows, found)


def _results_tables(rows: Sequence[Any], defaults: Sequence[Any]) -> None:
    if rows or not defaults:
        _best_table(rows)
    if defaults:
        _table(
            "Best default per cross-task search (loss: 0 perfect, 1 trivial predictor)",
            ["search", "kind", "tasks", "strategy", "updater", "loss", "test loss", "trials", "task evals"],
            [
                (
                    d.search,
                    d.kind,
                    len(d.per_task),
                    _config(d.strategy, d.strategy_params),
                    _config(d.updater, d.updater_params),
                    d.loss,
                    d.test_loss,
                    d.n_trials,
                    d.task_evaluations,
                )
                for d in defaults
            ],
            wrap=("strategy", "updater"),
        )


@cli.command()
@storage_option
@json_option
@_errors
def tasks(storage: str | None, as_json: bool) -> None:
    """List stored tasks and their meta-features."""
    from engine.results import tasks as query

    rows = query(storage=storage)
    if as_json:
        _print_json([t.to_dict() for t in rows])
        return
    if not rows:
        click.echo("No tasks stored yet. Run a search first: stratagem run studies/quickstart.toml")
        return
    mf = ("class_entropy", "landmark_1nn", "landmark_linear")
    _table(
        "Tasks",
        ["name", "fingerprint", "kind", "rows", "features", "classes", *mf, "searches"],
        [
            (
                t.name,
                t.fingerprint[:12],
                t.kind,
                t.n_samples,
                t.n_features,
                t.n_classes,
                *(t.meta_features.get(k) for k in mf),
                ", ".join(t.searches),
            )
            for t in rows
        ],
    )


@cli.command()
@storage_option
@json_option
@_errors
def searches(storage: str | None, as_json: bool) -> None:
    """List stored searches."""
    from engine.results import searches as query

    rows = query(storage=storage)
    if as_json:
        _print_json([s.to_dict() for s in rows])
        return
    if not rows:
        click.echo("No searches stored yet. Run one: stratagem run studies/quickstart.toml")
        return
    _table(
        "Searches",
        ["name", "status", "tasks", "trials/task", "seed", "created", "updated"],
        [
            (
                s.name,
                s.status,
                ", ".join(s.tasks),
                s.n_trials,
                s.seed,
                s.created_at.strftime("%Y-%m-%d %H:%M"),
                s.updated_at.strftime("%Y-%m-%d %H:%M"),
            )
            for s in rows
        ],
    )


@cli.command()
@plugin_option
@json_option
@_errors
def plugins(plugins: tuple[str, ...], as_json: bool) -> None:
    """List loaded plugins, their versions and what each registers."""
    from engine.plugins import PluginHost

    host = PluginHost.load(plugins)
    infos = host.plugin_infos()
    if as_json:
        _print_json(
            {
                "plugins": [i.to_dict() for i in infos],
                "problems": [{"plugin": p.plugin, "message": p.message} for p in host.problems],
            }
        )
        return
    _table(
        "Plugins",
        ["name", "version", "origin", "registers"],
        [
            (i.name, i.version, i.origin, "; ".join(f"{k}: {', '.join(v)}" for k, v in i.registers.items()))
            for i in infos
        ],
    )
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
@click.option("--dataset", default=None, metavar="NAME", help="A bundled scikit-learn dataset, such as wine.")
@click.option("--task", default=None, metavar="NAME", help="A stored task (its own history is left out).")
@click.option(
    "--top", type=click.IntRange(min=1), default=5, show_default=True, help="Configurations to show."
)
@storage_option
@plugin_option
@json_option
@_errors
def recommend(
    csv_path: str | None,
    target: str | None,
    kind: str | None,
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
    from engine.recommendation import recommend_for_entry, recommend_for_task

    given = [name for name, value in (("--csv", csv_path), ("--dataset", dataset), ("--task", task)) if value]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --csv PATH --target COL, --dataset NAME or --task NAME")
    if (target is not None or kind is not None) and csv_path is None:
        raise click.UsageError("--target and --kind go with --csv")
    if csv_path is not None:
        if target is None:
            raise click.UsageError("--csv needs --target COL, the name of the target column")
        options: dict[str, Any] = {"path": csv_path, "target": target, **({"kind": kind} if kind else {})}
        rec = recommend_for_entry("csv", options, storage=storage, top=top, plugins=plugins)
    elif dataset is not None:
        rec = recommend_for_entry("sklearn", {"dataset": dataset}, storage=storage, top=top, plugins=plugins)
    else:
        assert task is not None
        rec = recommend_for_task(task, storage=storage, top=top)
    if as_json:
        _print_json(rec.to_dict())
        return
    rows = [
        [
            c.rank,
            _config(c.strategy, c.strategy_params),
            _config(c.updater, c.updater_params),
            c.score,
            "\n".join(f"{e.task}: {_fmt(e.value)}" for e in c.evidence if e.value is not None)
            or f"predicted from {len(c.evidence)} neighbours",
            c.origin,
        ]
        for c in rec.configs
    ]
    _table(
        f"Recommended for {rec.task} ({rec.kind}), before any trial",
        ["#", "strategy", "updater", "score", "value where tried", "from"],
        rows,
        wrap=("strategy", "updater", "value where tried", "from"),
    )
    neighbours = ", ".join(
        f"{n['task']} (distance {n['distance']:.3g}, weight {n['weight']:.2f})" for n in rec.neighbours[:5]
    )
    click.echo(
        f"Nearest tasks: {neighbours}\nScore: predicted rank on a similar task, 1 = as good as its best."
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``stratagem`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="stratagem")


if __name__ == "__main__":
    main()
