"""Progress of a running search, as events a front end may show."""

from __future__ import annotations

__all__ = ["ProgressSink"]


class ProgressSink:
    """Receives progress; the CLI shows it as bars, the Python API ignores it by default."""

    def task_started(self, key: str, total: int) -> None:
        """A task's trials begin (again, on a later visit): ``total`` are wanted; the trials already
        finished then follow as :meth:`trial_finished` calls, so a resumed search counts from there."""

    def trial_finished(self, key: str) -> None: ...

    def task_finished(self, key: str) -> None: ...
