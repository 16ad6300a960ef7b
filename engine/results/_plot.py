"""A competence map drawn as a standalone SVG file (any browser or image viewer opens it; no plotting
library, no JavaScript).

One panel per explored parameter shows the score (mean with its 95% confidence interval) against the
parameter's value, with the competence threshold as a dashed line; with two parameters or more, a last
panel shows the first two against each other, each point coloured by its score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from engine.results._competence import CompetenceMap, CompetencePoint

__all__ = ["competence_svg", "plot_competence"]

W, H = 380, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 34, 46
PER_ROW = 3
GOOD, BAD, PLAIN = "#2a9d4b", "#d1495b", "#3a6ea5"
_SCALE = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))  # viridis stops


def plot_competence(cmap: CompetenceMap, path: str | Path) -> Path:
    """Write ``cmap`` as an SVG image to ``path`` and return the path.

    Raises:
        ValueError: ``path`` does not end in ``.svg``.
    """
    out = check_svg_path(path)
    out.write_text(competence_svg(cmap), encoding="utf-8")
    return out


def check_svg_path(path: str | Path) -> Path:
    """``path`` as a :class:`~pathlib.Path`, if it names an SVG file.

    Raises:
        ValueError: ``path`` does not end in ``.svg``.
    """
    out = Path(path)
    if out.suffix.lower() != ".svg":
        raise ValueError(f"{out}: the competence plot is an SVG image; give a path ending in .svg")
    return out


def competence_svg(cmap: CompetenceMap) -> str:
    """The SVG document of a competence map."""
    names = list(cmap.parameters)
    panels = len(names) + (1 if len(names) >= 2 else 0)
    cols = max(1, min(PER_ROW, panels))
    rows = max(1, math.ceil(panels / cols))
    width, height = cols * W, rows * H + 40
    metric = "query accuracy" if cmap.higher_is_better else "query MSE"
    title = (
        f"Competence map of {cmap.strategy} (search {cmap.search}, family {cmap.family.get('name', '?')}): "
        f"{metric} after {cmap.steps} steps, mean ± 95% CI, {len(cmap.points)} points"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="13">{escape(title)}</text>',
    ]
    if cmap.threshold is not None:
        rule = "at least" if cmap.higher_is_better else "at most"
        parts.append(
            f'<text x="{width / 2}" y="36" text-anchor="middle" fill="#555">competent (green): {metric} '
            f"{rule} {cmap.threshold:g}; not competent: red</text>"
        )
    for i, name in enumerate(names):
        x0, y0 = (i % cols) * W, 40 + (i // cols) * H
        parts += _score_panel(cmap, name, x0, y0)
    if len(names) >= 2:
        i = len(names)
        parts += _pair_panel(cmap, names[0], names[1], (i % cols) * W, 40 + (i // cols) * H)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _ticks(low: float, high: float, n: int = 5) -> list[float]:
    if not high > low:
        return [low]
    raw = (high - low) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if raw <= m * step)
    first = math.ceil(low / step - 1e-9) * step
    return [first + k * step for k in range(int((high - first) / step + 1e-9) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    steps = (1, 2, 5) if len(decades) <= 4 else (1,)
    return [m * 10.0**d for d in decades for m in steps if low <= m * 10.0**d <= high]


def _axes(
    x0: float,
    y0: float,
    xs: tuple[float, float],
    ys: tuple[float, float],
    xlabel: str,
    ylabel: str,
    log_y: bool = False,
) -> tuple[list[str], Callable[[float], float], Callable[[float], float]]:
    """Frame, ticks and labels of one panel; returns the parts and the two coordinate maps."""
    left, right, top, bottom = x0 + LEFT, x0 + W - RIGHT, y0 + TOP, y0 + H - BOTTOM
    scale = math.log10 if log_y else float
    y_low, y_high = scale(ys[0]), scale(ys[1])

    def px(v: float) -> float:
        return left + (v - xs[0]) / ((xs[1] - xs[0]) or 1) * (right - left)

    def py(v: float) -> float:
        return bottom - (scale(v) - y_low) / ((y_high - y_low) or 1) * (bottom - top)

    frame = f'x="{left}" y="{top}" width="{right - left}" height="{bottom - top}"'
    parts = [f'<rect {frame} fill="none" stroke="#999"/>']
    for t in _ticks(*xs):
        parts.append(
            f'<line x1="{px(t):.1f}" y1="{bottom}" x2="{px(t):.1f}" y2="{bottom + 4}" stroke="#999"/>'
        )
        parts.append(f'<text x="{px(t):.1f}" y="{bottom + 15}" text-anchor="middle">{t:g}</text>')
    for t in _log_ticks(*ys) if log_y else _ticks(*ys):
        parts.append(f'<line x1="{left}" y1="{py(t):.1f}" x2="{right}" y2="{py(t):.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 5}" y="{py(t) + 4:.1f}" text-anchor="end">{t:.3g}</text>')
    parts.append(
        f'<text x="{(left + right) / 2}" y="{bottom + 32}" text-anchor="middle">{escape(xlabel)}</text>'
    )
    parts.append(
        f'<text transform="translate({x0 + 14},{(top + bottom) / 2}) rotate(-90)" text-anchor="middle">'
        f"{escape(ylabel)}</text>"
    )
    return parts, px, py


def _span(values: Sequence[float], pad: float = 0.05) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)] or [0.0, 1.0]
    low, high = min(finite), max(finite)
    margin = (high - low) * pad or (abs(high) * pad or 1.0)
    return low - margin, high + margin


def _colour(p: CompetencePoint) -> str:
    return PLAIN if p.competent is None else (GOOD if p.competent else BAD)


def _score_panel(cmap: CompetenceMap, name: str, x0: float, y0: float) -> list[str]:
    points = [p for p in cmap.points if name in p.params and math.isfinite(p.mean)]
    ci = [0.0 if not math.isfinite(p.ci95) else p.ci95 for p in points]
    ys = _span(
        [p.mean - c for p, c in zip(points, ci, strict=True)]
        + [p.mean + c for p, c in zip(points, ci, strict=True)]
        + ([cmap.threshold] if cmap.threshold is not None else [])
    )
    if cmap.higher_is_better:
        ys = (max(ys[0], 0.0), min(ys[1], 1.0))
    means = [p.mean for p in points]
    lows = [p.mean - c for p, c in zip(points, ci, strict=True) if p.mean > c]
    lows += [m for m in (*means, cmap.threshold) if m is not None and m > 0]
    log_y = not cmap.higher_is_better and bool(means) and min(means) > 0 and max(means) > 20 * min(means)
    if log_y and (cmap.threshold is None or cmap.threshold > 0):  # errors over decades: a log axis
        ys = (min(lows) / 1.2, ys[1] * 1.2)
    else:
        log_y = False
    low, high = cmap.parameters.get(name, [0.0, 1.0])
    metric = "accuracy" if cmap.higher_is_better else "MSE"
    ylabel = f"query {metric} ({cmap.steps} steps{', log scale' if log_y else ''})"
    parts, px, py = _axes(x0, y0, (float(low), float(high)), ys, name, ylabel, log_y)
    if cmap.threshold is not None:
        t = py(cmap.threshold)
        parts.append(
            f'<line x1="{px(low):.1f}" y1="{t:.1f}" x2="{px(high):.1f}" y2="{t:.1f}" stroke="#555" '
            'stroke-dasharray="5,4"/>'
        )
    for p, c in sorted(zip(points, ci, strict=True), key=lambda pc: pc[0].params[name]):
        x = px(float(p.params[name]))
        clip = max(ys[0], p.mean - c), min(ys[1], p.mean + c)
        parts.append(
            f'<line x1="{x:.1f}" y1="{py(clip[0]):.1f}" x2="{x:.1f}" y2="{py(clip[1]):.1f}" '
            f'stroke="{_colour(p)}" stroke-width="1.5"/>'
        )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{py(p.mean):.1f}" r="3.5" fill="{_colour(p)}">'
            f"<title>{escape(_label(p))}</title></circle>"
        )
    return parts


def _pair_panel(cmap: CompetenceMap, a: str, b: str, x0: float, y0: float) -> list[str]:
    (xa, xb), (ya, yb) = cmap.parameters[a], cmap.parameters[b]
    parts, px, py = _axes(x0, y0, (float(xa), float(xb)), (float(ya), float(yb)), a, b)
    points = [p for p in cmap.points if a in p.params and b in p.params and math.isfinite(p.mean)]
    means = [p.mean for p in points]
    lo, hi = (min(means), max(means)) if means else (0.0, 1.0)
    scale = math.log10 if not cmap.higher_is_better and lo > 0 and hi > 20 * lo else float
    for p in points:
        share = (scale(p.mean) - scale(lo)) / ((scale(hi) - scale(lo)) or 1)
        good = share if cmap.higher_is_better else 1 - share  # yellow is good, purple bad
        ring = "" if p.competent is None else f' stroke="{_colour(p)}" stroke-width="2"'
        parts.append(
            f'<circle cx="{px(float(p.params[a])):.1f}" cy="{py(float(p.params[b])):.1f}" r="6" '
            f'fill="{_viridis(good)}"{ring}><title>{escape(_label(p))}</title></circle>'
        )
    parts.append(f'<text x="{x0 + LEFT}" y="{y0 + TOP - 8}">{escape(f"{a} × {b}")}</text>')
    bar_x, bar_top = x0 + W - RIGHT - 90, y0 + TOP - 16
    for k in range(20):
        share = k / 19
        parts.append(
            f'<rect x="{bar_x + k * 3}" y="{bar_top}" width="3" height="8" '
            f'fill="{_viridis(share if cmap.higher_is_better else 1 - share)}"/>'
        )
    parts.append(f'<text x="{bar_x - 3}" y="{bar_top + 8}" text-anchor="end">{lo:.3g}</text>')
    parts.append(f'<text x="{bar_x + 63}" y="{bar_top + 8}">{hi:.3g}</text>')
    return parts


def _viridis(share: float) -> str:
    share = min(max(share, 0.0), 1.0) * (len(_SCALE) - 1)
    i = min(int(share), len(_SCALE) - 2)
    f = share - i
    rgb = (round(c0 + (c1 - c0) * f) for c0, c1 in zip(_SCALE[i], _SCALE[i + 1], strict=True))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _label(p: CompetencePoint) -> str:
    params = ", ".join(f"{k}={v:.4g}" for k, v in p.params.items())
    return f"trial {p.trial}: {params}: {p.mean:.4g} ± {p.ci95:.2g}"
