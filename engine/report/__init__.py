"""A self-contained HTML report of stored searches (plotly, embedded; works offline)."""

from __future__ import annotations

from engine.report._html import write_report

__all__ = ["write_report"]
