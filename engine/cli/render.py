"""How the command line shows things: JSON, rich tables, progress (bars, or lines in a log), and
rich-markup escaping.

Everything here takes records of the Python API and prints them; nothing decides what to show. rich is
imported by the functions that draw, so commands that print JSON (and ``--help``) never load it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from engine.configuration import Configuration

if TYPE_CHECKING:
    from engine.plugin.host import PluginInfo
    from engine.recommendation import Recommendation
    from engine.results import BestDefault, BestStrategy, SearchSummary, StoredTask, TrialFailures

__all__ = [
    "best_tables",
    "competence_table",
    "config_cell",
    "failures_table",
    "fmt",
    "plugins_table",
    "print_json",
    "progress_sink",
    "recommendation_table",
    "searches_table",
    "table",
    "tasks_table",
]

FIRST_RUN = "stratagem run studies/quickstart.toml"
META_FEATURE_COLUMNS = ("class_entropy", "landmark_1nn", "landmark_linear")


def print_json(data: Any) -> None:
    """Print ``data`` as indented, valid JSON: non-native values as their ``str``, NaN and ±inf as null."""
    click.echo(json_text(data))


def json_text(data: Any) -> str:
    """``data`` as :func:`print_json` prints it (without the final newline)."""
    return json.dumps(_finite(data), indent=2, default=str, allow_nan=False)


def _finite(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def fmt(value: Any) -> str:
    """One cell's text: ``-`` for none, four significant digits for floats, ``k=v`` pairs for dicts."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={fmt(v)}" for k, v in value.items())
    return str(value)


class Markup(str):
    """Cell text that is rich markup on purpose (already escaped where it holds stored text)."""


_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10)) | {127: None}


def printable(text: str) -> str:
    """``text`` without control characters: an ANSI escape stored in a name never reaches the terminal."""
    return text.translate(_CONTROL)


def _cell(value: Any) -> str:
    """A table cell: stored text is shown as it is, never read as rich markup or terminal escapes."""
    from rich.markup import escape

    return value if isinstance(value, Markup) else escape(printable(fmt(value)))


def _console() -> Any:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped: do not squeeze tables into 80 columns
        console = Console(width=240)
    return console


def table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], wrap: Sequence[str] = ()
) -> None:
    """Print a table; only the columns named in ``wrap`` may wrap, the others keep their width."""
    from rich.markup import escape
    from rich.table import Table

    drawn = Table(title=escape(printable(title)), title_justify="left", show_lines=bool(wrap))
    for col in columns:
        drawn.add_column(col, overflow="fold", no_wrap=bool(wrap) and col not in wrap)
    for row in rows:
        drawn.add_row(*(_cell(v) for v in row))
    _console().print(drawn)


def _config_lines(name: str, params: Any) -> str:
    """A strategy or updater with one hyperparameter per line, for narrow terminals (markup escaped)."""
    from rich.markup import escape

    lines = (escape(printable(f"{k}={'None' if v is None else fmt(v)}")) for k, v in params.items())
    return Markup("\n".join([f"[bold]{escape(printable(name))}[/bold]", *lines]))


def config_cell(config: Configuration) -> tuple[str, str]:
    """The strategy cell and the updater cell of a configuration."""
    return (
        _config_lines(config.strategy, config.strategy_params),
        _config_lines(config.updater, config.updater_params),
    )


def _best_table(rows: Sequence[BestStrategy]) -> None:
    if not rows:
        click.echo(f"No finished strategies yet. Run a search first: {FIRST_RUN}")
        return
    one_search = len({b.search for b in rows}) == 1
    columns = ["task", "strategy", "updater", "evaluator", "validation", "test", "trials"]
    table_rows: list[list[Any]] = [
        [
            b.task,
            *config_cell(b.config),
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
    if any(b.warm_start is not None and b.warm_start.used for b in rows):
        columns.append("warm start")
        for row, b in zip(table_rows, rows, strict=True):
            row.append(b.warm_start.summary() if b.warm_start is not None else "-")
    if any(b.recheck is not None for b in rows):
        columns.append("recheck")
        for row, b in zip(table_rows, rows, strict=True):
            row.append(b.recheck.summary(b.trial) if b.recheck is not None else "-")
    title = f"Best strategy per task of search {rows[0].search!r}" if one_search else "Best strategy per task"
    table(title, columns, table_rows, wrap=("strategy", "updater", "warm start", "recheck"))


def best_tables(rows: Sequence[BestStrategy], defaults: Sequence[BestDefault]) -> None:
    """The best-strategy table (or how to get one), then the cross-task defaults' table if any."""
    if rows or not defaults:
        _best_table(rows)
    if defaults:
        table(
            "Best default per cross-task search (loss: 0 perfect, 1 trivial predictor)",
            ["search", "kind", "tasks", "strategy", "updater", "loss", "test loss", "trials", "task evals"],
            [
                (
                    d.search,
                    d.kind,
                    len(d.per_task),
                    *config_cell(d.config),
                    d.loss,
                    d.test_loss,
                    d.n_trials,
                    d.task_evaluations,
                )
                for d in defaults
            ],
            wrap=("strategy", "updater"),
        )


def meta_table(rows: Sequence[Any]) -> None:
    """The best meta-strategy per meta-mode search, with its meta-test curve (mean ± 95% CI)."""
    if not rows:
        return
    table(
        "Best meta-strategy per task family (meta-test: mean ± 95% CI after k adaptation steps)",
        ["search", "family", "strategy", "updater", "meta-val", "meta-test", "trials", "warm start"],
        [
            (
                m.search,
                m.family.get("name", ""),
                _config_lines(m.strategy, m.strategy_params),
                _config_lines(m.updater, m.updater_params) if m.updater else "-",
                f"{m.metric} {fmt(m.value)}",
                "\n".join(f"k={p['steps']}: {fmt(p['mean'])} ± {fmt(p['ci95'])}" for p in m.test),
                m.n_trials,
                _meta_warm(m.warm_start),
            )
            for m in rows
        ],
        wrap=("strategy", "updater", "meta-test", "warm start"),
    )


def _meta_warm(record: dict[str, Any] | None) -> str:
    """A meta study's warm start in a cell: the searches it started from, or ``-``."""
    if not record or not record.get("used"):
        return "-"
    return "from " + ", ".join(str(s.get("search", "?")) for s in record.get("sources", ()))


def competence_table(cmap: Any) -> None:
    """The points of a competence map (a :class:`~engine.results.CompetenceMap`), by trial."""
    names, judged = list(cmap.parameters), cmap.threshold is not None
    better = "higher" if cmap.higher_is_better else "lower"
    title = (
        f"Competence of {cmap.strategy} (θ of meta trial {cmap.theta_trial}) on "
        f"{cmap.family.get('name', '')} tasks: query {cmap.metric} after {cmap.steps} steps, mean ± 95% CI "
        f"({better} is better)"
    )
    if judged:
        title += f"; competent: {cmap.metric} {'≥' if cmap.higher_is_better else '≤'} {fmt(cmap.threshold)}"
    zero = [f"{cmap.metric} (0 steps)"] if cmap.steps else []  # θ itself, for comparison
    columns = ["trial", *names, f"{cmap.metric} ({cmap.steps} steps)", *zero, "tasks"]
    columns += ["competent"] if judged else []
    rows = [
        (
            p.trial,
            *(p.params.get(n) for n in names),
            f"{fmt(p.mean)} ± {fmt(p.ci95)}",
            *([p.zero_steps] if zero else []),
            p.n_tasks,
            *([("yes" if p.competent else "no")] if judged else []),
        )
        for p in cmap.points
    ]
    table(title, columns, rows)
    if cmap.failed:
        click.echo(f"{cmap.failed} point(s) failed; their reasons are in the study {cmap.study!r}.", err=True)


def tasks_table(rows: Sequence[StoredTask]) -> None:
    """The stored tasks with a few meta-features, or how to store some."""
    if not rows:
        click.echo(f"No tasks stored yet. Run a search first: {FIRST_RUN}")
        return
    table(
        "Tasks",
        ["name", "fingerprint", "kind", "rows", "features", "classes", *META_FEATURE_COLUMNS, "searches"],
        [
            (
                t.name,
                t.fingerprint[:12],
                t.kind,
                t.n_samples,
                t.n_features,
                t.n_classes,
                *(t.meta_features.get(k) for k in META_FEATURE_COLUMNS),
                ", ".join(t.searches),
            )
            for t in rows
        ],
    )


def searches_table(rows: Sequence[SearchSummary]) -> None:
    """The stored searches, or how to run one."""
    if not rows:
        click.echo(f"No searches stored yet. Run one: {FIRST_RUN}")
        return
    table(
        "Searches",
        [
            "name",
            "status",
            "tasks",
            "trials/task",
            "seed",
            "studies",
            "trials",
            "models",
            "created",
            "last run",
        ],
        [
            (
                s.name,
                s.status,
                ", ".join(s.tasks),
                s.n_trials,
                s.seed,
                s.studies,
                s.trials,
                f"{s.artifacts} ({s.artifact_bytes / 1024:.0f} KiB)" if s.artifacts else 0,
                s.created_at.strftime("%Y-%m-%d %H:%M"),
                s.last_run.strftime("%Y-%m-%d %H:%M"),
            )
            for s in rows
        ],
    )


def plugins_table(infos: Sequence[PluginInfo]) -> None:
    """The loaded plugins, their versions and what each registers."""
    table(
        "Plugins",
        ["name", "version", "origin", "registers"],
        [
            (i.name, i.version, i.origin, "; ".join(f"{k}: {', '.join(v)}" for k, v in i.registers.items()))
            for i in infos
        ],
    )


def recommendation_table(rec: Recommendation) -> None:
    """The recommended configurations with the values where they were tried (each named by its evaluator:
    neighbours may be judged by different ones), then the nearest tasks."""
    rows = [
        [
            c.rank,
            *config_cell(c.config),
            c.score,
            "\n".join(f"{e.task}: {e.evaluator} {fmt(e.value)}" for e in c.evidence if e.value is not None)
            or f"predicted from {len(c.evidence)} neighbours",
            c.origin,
        ]
        for c in rec.configs
    ]
    table(
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


class _Bars:
    """A search's progress sink drawing one rich bar per task."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def task_started(self, key: str, total: int) -> None:
        if key in self.tasks:  # another visit of the same task: one bar, counted afresh
            self.progress.update(self.tasks[key], total=total, completed=0)
        else:
            self.tasks[key] = self.progress.add_task(f"task {key}", total=total)

    def trial_finished(self, key: str) -> None:
        self.progress.advance(self.tasks[key])

    def task_finished(self, key: str) -> None:
        self.progress.update(self.tasks[key], completed=self.progress.tasks[self.tasks[key]].total)


@dataclass
class _Count:
    """One task's trials as :class:`_Lines` counts them."""

    total: int
    done: int = 0
    started: float = field(default_factory=time.monotonic)


class _Lines:
    """A search's progress sink for a log (stderr is not a terminal): one line as each task's trials end."""

    def __init__(self) -> None:
        self.tasks: dict[str, _Count] = {}

    def task_started(self, key: str, total: int) -> None:
        self.tasks[key] = _Count(total)

    def trial_finished(self, key: str) -> None:
        self.tasks[key].done += 1

    def task_finished(self, key: str) -> None:
        c = self.tasks[key]
        click.echo(
            f"task {key}: {c.done} of {c.total} trials ({time.monotonic() - c.started:.0f} s)", err=True
        )


@contextmanager
def progress_sink(bars: bool, lines: bool) -> Iterator[Any]:
    """A search's progress sink: rich progress bars on stderr if ``bars``; else, if ``lines`` (a log), a
    line on stderr as each task's trials end; else ``None`` (no progress).

    The bars follow :class:`engine.search.ProgressSink`'s methods without importing it (it brings torch).
    """
    if not bars:
        yield _Lines() if lines else None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as progress:
        yield _Bars(progress)


def failures_table(rows: Sequence[TrialFailures]) -> None:
    """The studies with failed trials: how many, and the last reasons (nothing when none failed)."""
    if not rows:
        return
    table(
        "Failed trials (reasons in each trial's user attribute stratagem.failure)",
        ["search", "tasks", "failed", "last reasons"],
        [[f.search, ", ".join(f.tasks), f.failed, "\n".join(f.reasons)] for f in rows],
        wrap=("last reasons",),
    )
