"""The commands that use what searches found: ``export``, ``predict``, ``delete``, ``report`` and
``adapt``. Like :mod:`engine.cli.commands`, each calls one function of the Python API; the heavy
modules they call (torch, Optuna, plotly) are imported when the command runs, so that ``--help`` stays
instant.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from engine.cli import render
from engine.cli._base import (
    check_out_path,
    cli,
    errors,
    json_option,
    json_out_option,
    plugin_option,
    storage_option,
    write_out,
)
from engine.settings import resolve_storage
from engine.spec.checks import MAX_STEPS

if TYPE_CHECKING:
    pass

__all__ = ["adapt", "competence", "delete", "export", "predict", "report"]


@cli.command()
@click.option("--search", required=True, help="The search.")
@click.option("--task", default=None, help="The task (may be left out when the search has one).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option(
    "--overwrite", is_flag=True, help="Replace the model files of an earlier export in --out (nothing else)."
)
@storage_option
@json_option
@errors
def export(
    search: str, task: str | None, out: str, overwrite: bool, storage: str | None, as_json: bool
) -> None:
    """Write the best model of a task to a self-contained directory (weights, card, encodings)."""
    from engine.trained import export as export_model  # SQLAlchemy, torch

    path = export_model(search=search, task=task, out=out, storage=storage, overwrite=overwrite)
    if as_json:
        render.print_json({"model": str(path)})
    else:
        click.echo(f"Wrote {path}. Predict with: stratagem predict --model {path} --csv new.csv")


@cli.command()
@click.option(
    "--model", "model_dir", default=None, type=click.Path(file_okay=False), help="A model directory."
)
@click.option("--search", default=None, help="Or: the best model of this search, straight from the storage.")
@click.option("--task", default=None, help="With --search: the task (may be left out if there is one).")
@click.option("--csv", "csv_path", required=True, type=click.Path(dir_okay=False), help="Rows to predict.")
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="CSV to write [default: stdout].")
@click.option("--proba", is_flag=True, help="Add one probability column per class (classification).")
@click.option("--delimiter", default=",", show_default=True, help="The input CSV's field separator.")
@storage_option
@plugin_option
@json_out_option
@errors
def predict(
    model_dir: str | None,
    search: str | None,
    task: str | None,
    csv_path: str,
    out: str | None,
    proba: bool,
    delimiter: str,
    storage: str | None,
    plugins: tuple[str, ...],
    as_json: bool,
) -> None:
    """Predict for every row of a CSV file, with the labels the training data had.

    Give the model as --model DIR (from `stratagem export`) or as --search S [--task T]. Columns the
    model was not trained on are ignored; a header that repeats a column name is an error, and so are
    a missing column, a missing value, a number beyond 1e30 or an unknown category, naming the row and
    column. With --json: {"predictions": [one per row], "probabilities": [one {class: p} per row] (with
    --proba)}.
    """
    from engine.trained import load_best_model, load_model, predict_csv  # torch

    if (model_dir is None) == (search is None):
        raise click.UsageError("give the model as --model DIR or as --search NAME (one of them)")
    if out is not None and out != "-":
        check_out_path("--out", out, storage=resolve_storage(storage), inputs={"--csv": csv_path})
    if model_dir is not None:
        model = load_model(model_dir, plugins=plugins)
    else:
        model = load_best_model(search=str(search), task=task, storage=storage, plugins=plugins)
    header, rows = predict_csv(model, csv_path, proba=proba, delimiter=delimiter)
    if as_json:
        _write_json(out, _predictions_json(header, rows, regression=model.kind == "regression"))
    else:
        _write_csv(out, header, rows)


def _predictions_json(header: Sequence[str], rows: Sequence[Sequence[Any]], *, regression: bool) -> Any:
    """``predict``'s table as JSON: the predictions (numbers for regression, labels for classification)
    and, with probability columns, one ``{class: probability}`` per row."""
    data: dict[str, Any] = {"predictions": [float(r[0]) if regression else r[0] for r in rows]}
    classes = [h.removeprefix("proba_") for h in header[1:]]
    if classes:
        data["probabilities"] = [{c: float(p) for c, p in zip(classes, r[1:], strict=True)} for r in rows]
    return data


def _write_json(out: str | None, data: Any) -> None:
    """Write ``data`` as JSON to ``out`` (``None`` or ``-``: standard output), as :func:`write_out` writes."""
    write_out("--out", out, lambda f: f.write(render.json_text(data) + "\n"))


def _write_csv(out: str | None, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV table to ``out`` (``None`` or ``-``: standard output), as :func:`write_out` writes."""
    write_out("--out", out, lambda f: _write_rows(f, header, rows))


def _write_rows(f: Any, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


@cli.command()
@click.option("--search", required=True, help="The search to delete.")
@click.option("--task", default=None, help="Only this task of the search.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Also a search marked running whose workers were all killed.")
@storage_option
@json_option
@errors
def delete(search: str, task: str | None, yes: bool, force: bool, storage: str | None, as_json: bool) -> None:
    """Delete a search (or one of its tasks): its Optuna studies, kept models and rows.

    Other searches are not touched. On a terminal it asks first; elsewhere pass --yes.
    """
    from engine.trained import delete_search  # SQLAlchemy, Optuna

    what = f"task {task!r} of search {search!r}" if task else f"search {search!r}"
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(f"refusing to delete {what} without confirmation; pass --yes")
        where = resolve_storage(storage)
        click.confirm(f"Delete {what}, its studies and kept models from {where}?", abort=True)
    done = delete_search(search, task=task, storage=storage, force=force)
    if as_json:
        render.print_json(done.to_dict())
    else:
        click.echo(
            f"Deleted {what}: {len(done.studies)} studies, {done.trials} trials, "
            f"{done.artifacts} kept models."
        )


@cli.command()
@click.option("--search", default=None, help="Only this search [default: every stored search].")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="HTML file to write (-: stdout).")
@storage_option
@json_option
@errors
def report(search: str | None, out: str, storage: str | None, as_json: bool) -> None:
    """Write one self-contained HTML report (plotly embedded, works offline) of stored searches.

    With --json: {"report": the file written}.
    """
    from engine.report import report_html  # Optuna, plotly

    if as_json and out == "-":
        raise click.UsageError("--json prints where the report went: give --out a file, not -")
    url = resolve_storage(storage)
    if out != "-":
        check_out_path("--out", out, storage=url)
    page = report_html(storage=url, search=search)
    write_out("--out", out, lambda f: f.write(page))
    if as_json:
        render.print_json({"report": out})
    elif out != "-":
        click.echo(f"Wrote {out}")


@cli.command()
@click.option("--search", required=True, help="A meta-mode search: its best θ is adapted.")
@click.option(
    "--support", "support_path", required=True, type=click.Path(dir_okay=False), help="Labelled rows."
)
@click.option("--target", required=True, metavar="COL", help="The support CSV's target column.")
@click.option("--query", "query_path", default=None, type=click.Path(dir_okay=False), help="Rows to predict.")
@click.option(
    "--steps", type=click.IntRange(0, MAX_STEPS), default=None, help="Adaptation steps [default: best]."
)
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="CSV to write [default: stdout].")
@storage_option
@plugin_option
@json_option
@errors
def adapt(
    search: str,
    support_path: str,
    target: str,
    query_path: str | None,
    steps: int | None,
    out: str | None,
    storage: str | None,
    plugins: tuple[str, ...],
    as_json: bool,
) -> None:
    """Adapt a meta-mode search's best meta-learner to a few labelled rows and predict new ones.

    Every column of --support but --target is an input value, given raw (the family's standardisation
    is applied); a family built from a table needs exactly its feature columns. --query (default: the
    support rows) has the same input columns, matched by name. Prints one prediction per query row (CSV
    with a `prediction` column), to --out if given; with --json, the JSON goes there instead.
    """
    from engine.search import adapt as adapt_rows  # torch
    from engine.trained import read_csv_rows

    if out is not None and out != "-":
        inputs = {"--support": support_path, "--query": query_path}
        check_out_path("--out", out, storage=resolve_storage(storage), inputs=inputs)

    def table(path: str) -> list[dict[str, str]]:
        header, rows = read_csv_rows(path)  # refuses a header that names a column twice
        return [dict(zip(header, r, strict=True)) for r in rows]

    support = table(support_path)
    query = None if query_path is None else table(query_path)
    result = adapt_rows(
        search=search,
        support=support,
        target=target,
        query=query,
        steps=steps,
        storage=storage,
        plugins=plugins,
    )
    if as_json:
        _write_json(out, result.to_dict())
        return
    _write_csv(out, ["prediction"], ([p] for p in result.predictions))


@cli.command()
@click.option("--search", required=True, help="A meta-mode search whose spec has a [competence] table.")
@click.option(
    "--plot",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also draw the map as an SVG image to FILE (a name ending in .svg).",
)
@storage_option
@json_option
@errors
def competence(search: str, plot: str | None, storage: str | None, as_json: bool) -> None:
    """Show where a meta-mode search's best meta-learner stays competent across its family's parameters.

    Each point is one set of family parameters with the query score (mean ± 95% CI over meta-test
    tasks) after adaptation. --plot writes an SVG image (opens in any browser or image viewer).
    """
    from engine.results import check_svg_path, competence_svg  # SQLAlchemy, Optuna
    from engine.results import competence as competence_map

    if plot is not None:
        check_out_path("--plot", plot, storage=resolve_storage(storage))
        try:
            check_svg_path(plot)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    cmap = competence_map(search=search, storage=storage)
    if plot is not None:
        svg = competence_svg(cmap)
        write_out("--plot", plot, lambda f: f.write(svg))
    if as_json:
        render.print_json(cmap.to_dict())
    else:
        render.competence_table(cmap)
    if plot is not None:
        click.echo(f"Wrote {plot}", err=as_json)
