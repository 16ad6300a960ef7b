"""A self-contained HTML report of stored searches (plotly, embedded; works offline)."""

from __future__ import annotations

from engine.report._html import report_html, write_report

__all__ = ["report_html", "write_report"]
