"""One self-contained HTML report of stored searches, drawn with Optuna's plotly visualisations.

The file embeds plotly.js (no network needed) and holds, per search: the best strategy per task with
its validation and test values and warm-start sources; per task, the optimisation history (warm-started
trials, those that ran enqueued parameters, drawn as separate diamonds) and the hyperparameter
importances (Optuna's default importance evaluator); the task-exploration study's history; and the
cross-task defaults.
"""

from __future__ import annotations

import html
import warnings
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState
from plotly.offline import get_plotlyjs

from engine.errors import StorageError, UnknownNameError
from engine.results import BestStrategy, best, defaults, meta_best, searches
from engine.settings import mask_password, resolve_storage
from engine.storage.optuna_adapter import open_optuna_storage, was_enqueued
from engine.vocabulary import cross_task_study_name, meta_study_name

__all__ = ["report_html", "write_report"]


def write_report(out: str | Path, *, storage: str | None = None, search: str | None = None) -> Path:
    """Write the report of every stored search (or of ``search``) to ``out``; return its path.

    Raises:
        UnknownNameError: ``search`` is given but not stored, or no search is stored.
    """
    out = Path(out)
    out.write_text(report_html(storage=storage, search=search), encoding="utf-8")
    return out


def report_html(*, storage: str | None = None, search: str | None = None) -> str:
    """The report of every stored search (or of ``search``): one self-contained HTML page.

    Raises:
        UnknownNameError: ``search`` is given but not stored, or no search is stored.
    """
    url = resolve_storage(storage)
    rows = best(storage=url, search=search)
    names = [search] if search else [s.name for s in searches(storage=url)]
    if not names:
        raise UnknownNameError(
            f"{mask_password(url)} holds no search to report; run one first (stratagem run SPEC), or give "
            "the storage it was run on (--storage)"
        )
    try:
        optuna_storage = open_optuna_storage(url, create=False)
        present = {s.study_name for s in optuna_storage.get_all_studies()} if names else set()
    except StorageError:  # no study has run yet: tables only, no figures
        present = set()
    parts: list[str] = []
    figures = 0
    for name in names:
        mine = [b for b in rows if b.search == name]
        parts.append(f"<h2>Search {_e(name)}</h2>")
        if mine:
            parts.append(_best_table(mine))
        for b in mine:
            if b.study not in present:
                continue
            study = optuna.load_study(study_name=b.study, storage=optuna_storage)
            parts.append(f"<h3>Task {_e(b.task)} <small>({_e(b.study)})</small></h3>")
            parts.append(_figure(_history(study), f"history {b.task}"))
            figures += 1
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if len(complete) >= 2 and len({p for t in complete for p in t.params}) >= 1:
                with warnings.catch_warnings():  # "less than 2 trials in a regime": the figure says enough
                    warnings.simplefilter("ignore", UserWarning)
                    fig = optuna.visualization.plot_param_importances(study)
                parts.append(_figure(fig, f"importances {b.task}"))
                figures += 1
            else:
                parts.append("<p>Importances need at least two complete trials.</p>")
        if name in present:
            tasks = optuna.load_study(study_name=name, storage=optuna_storage)
            if tasks.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                parts.append("<h3>Task exploration</h3>")
                parts.append(_figure(optuna.visualization.plot_optimization_history(tasks), f"tasks {name}"))
                figures += 1
        found = defaults(storage=url, search=name)
        if found:
            parts.append("<h3>Cross-task defaults</h3>")
            parts.append(
                _table(
                    ["strategy", "updater", "loss", "test loss", "trials"],
                    [[d.config.strategy, d.config.updater, d.loss, d.test_loss, d.n_trials] for d in found],
                )
            )
        metas = meta_best(storage=url, search=name)
        if metas:
            parts.append("<h3>Meta-learning: the best meta-strategy for the family</h3>")
            parts.append(
                _table(
                    [
                        "family",
                        "strategy",
                        "params",
                        "updater",
                        metas[0].metric + " (meta-val)",
                        "meta-test",
                        "trial",
                        "trials",
                    ],
                    [
                        [
                            m.family,
                            m.strategy,
                            m.strategy_params,
                            m.updater,
                            m.value,
                            "; ".join(
                                f"{p['steps']} steps: {p['mean']:.4g} ± {p['ci95']:.2g}" for p in m.test
                            ),
                            m.trial,
                            m.n_trials,
                        ]
                        for m in metas
                    ],
                )
            )
        for study_name, title in (
            (cross_task_study_name(name), "Cross-task study"),
            (meta_study_name(name), "Meta study"),
        ):
            if study_name in present:
                study = optuna.load_study(study_name=study_name, storage=optuna_storage)
                if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                    parts.append(f"<h3>{title} <small>({_e(study_name)})</small></h3>")
                    parts.append(_figure(_history(study), f"history {study_name}"))
                    figures += 1
    return _page(parts, figures)


def _history(study: optuna.Study) -> go.Figure:
    """Optuna's optimisation history, with the warm-started trials marked."""
    fig = optuna.visualization.plot_optimization_history(study)
    warm = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if was_enqueued(t) and t.value is not None
    ]
    if warm:
        fig.add_trace(
            go.Scatter(
                x=[t.number for t in warm],
                y=[t.value for t in warm],
                mode="markers",
                name="warm-started",
                marker={"symbol": "diamond-open", "size": 13, "line": {"width": 2}},
            )
        )
    return fig


def _best_table(rows: list[BestStrategy]) -> str:
    body = []
    for b in rows:
        ws = b.warm_start
        sources = ", ".join(s.study for s in ws.sources) if ws and ws.used else (ws.reason if ws else "")
        body.append(
            [
                b.task,
                b.config.strategy,
                b.config.strategy_params,
                b.config.updater,
                b.evaluator,
                b.value,
                b.test_value,
                b.trial,
                b.n_trials,
                sources,
            ]
        )
    heads = [
        "task",
        "strategy",
        "params",
        "updater",
        "evaluator",
        "validation",
        "test",
        "trial",
        "trials",
        "warm start from",
    ]
    return _table(heads, body)


def _table(heads: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, dict):
            return " ".join(f"{k}={cell(x)}" for k, x in v.items())
        return "-" if v is None else str(v)

    head = "".join(f"<th>{_e(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(fig: go.Figure, label: str) -> str:
    inner = fig.to_html(full_html=False, include_plotlyjs=False)
    return f'<div class="figure" data-figure="{_e(label)}">{inner}</div>'


def _page(parts: list[str], figures: int) -> str:
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}"
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Stratagem report</title>'
        f"<style>{style}</style><script>{get_plotlyjs()}</script></head><body>"
        f'<h1>Stratagem report</h1><p data-figures="{figures}">{figures} figures</p>'
        + "\n".join(parts)
        + "</body></html>"
    )


def _e(text: str) -> str:
    return html.escape(str(text))
