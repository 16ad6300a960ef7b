"""Running searches: registration and resume, per-task and cross-task exploration, best-so-far recorders."""

from __future__ import annotations

from engine.search.adapt import AdaptedTask, adapt, load_meta_search
from engine.search.join import join, stored_search_spec
from engine.search.progress import ProgressSink
from engine.search.register import SearchTask
from engine.search.run import SearchResult, run

__all__ = [
    "AdaptedTask",
    "ProgressSink",
    "SearchResult",
    "SearchTask",
    "adapt",
    "join",
    "load_meta_search",
    "run",
    "stored_search_spec",
]
