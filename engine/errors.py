"""Exceptions raised by Stratagem.

Every error says what was wrong and what to do about it. The command line prints the message of a
:class:`StratagemError` and exits with status 2; anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "DuplicateNameError",
    "ModelStoreError",
    "PluginError",
    "SearchFailed",
    "SpecError",
    "StorageError",
    "StratagemError",
    "TaskDataError",
    "UnknownNameError",
]


class StratagemError(Exception):
    """Base class of every error Stratagem raises on purpose."""


class SpecError(StratagemError):
    """A study specification (TOML file or in-code definition) is invalid.

    Args:
        message: What is wrong and how to fix it.
        source: The file (or ``"<spec>"`` for in-code specifications) the key comes from.
        key: The dotted key that is wrong, such as ``tasks[1].path``.
    """

    def __init__(self, message: str, *, source: str = "<spec>", key: str | None = None) -> None:
        self.source = source
        self.problems: list[tuple[str | None, str]] = [(key, message)]
        super().__init__(self._render())

    @property
    def key(self) -> str | None:
        return self.problems[0][0]

    @classmethod
    def many(cls, problems: list[tuple[str | None, str]], *, source: str) -> SpecError:
        """One error that reports several problems, one line each."""
        err = cls(problems[0][1], source=source, key=problems[0][0])
        err.problems = list(problems)
        err.args = (err._render(),)
        return err

    def _render(self) -> str:
        lines = [f"{self.source}: {k}: {m}" if k else f"{self.source}: {m}" for k, m in self.problems]
        return "\n".join(lines)


class TaskDataError(StratagemError):
    """A task's data cannot be used (missing file, missing target column, bad values, ...)."""


class PluginError(StratagemError):
    """A plugin could not be loaded or misbehaved."""


class UnknownNameError(StratagemError, KeyError):
    """A name (strategy, evaluator, updater, task source, task, search) is not registered or stored."""

    def __str__(self) -> str:  # KeyError would add quotes
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(PluginError):
    """Two plugins register an item of the same kind under the same name."""


class SearchFailed(StratagemError):
    """A search ended without one successful trial for some task; the message says why (last reasons)."""


class StorageError(StratagemError):
    """The study database could not be read or written."""


class ModelStoreError(StorageError):
    """A trained model could not be written to the model store (a full disk, a read-only folder).

    Every later trial would fail the same way, so the search stops: the trial fails with the reason,
    and the trials finished before are kept.
    """
