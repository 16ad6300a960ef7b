"""Naming the plugin whose code raised, in a trial's failure reason, where several plugins' code runs
together (a meta-strategy trained by an updater on a task family's episodes).

The traceback says whose code it was: the innermost frame that runs a method of one of the trial's
plugin classes (inherited ones included: a base class's method runs on the plugin's behalf).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import CodeType

from engine.study import TrialFailed

__all__ = ["Part", "plugin_fault"]

Part = tuple[str, str, type]
"""A plugin's part in a trial: its kind (as its registry names it), its registered name, its class."""


def plugin_fault(
    exc: BaseException,
    parts: Sequence[Part],
    plugin_of: Callable[[str, str], str] | None,
    default: tuple[str, str],
) -> TrialFailed:
    """A :class:`TrialFailed` naming the part whose code raised ``exc`` (``default``: none's code
    did) and its plugin, as a per-task trial's reason does: ``kind 'name' (plugin 'p') raised ...``."""
    kind, name = _owner(exc, parts) or default
    try:
        plugin = plugin_of(kind, name) if plugin_of is not None else "unknown"
    except Exception:  # not registered under that name (a class made at run time): say so, never hide exc
        plugin = "unknown"
    return TrialFailed(f"{kind} {name!r} (plugin {plugin!r}) raised {type(exc).__name__}: {exc}")


def _owner(exc: BaseException, parts: Sequence[Part]) -> tuple[str, str] | None:
    owners: dict[CodeType, tuple[str, str]] = {}
    for kind, name, cls in parts:
        for klass in cls.__mro__:
            if klass is object:
                continue
            for attr in vars(klass).values():
                fn = attr.fget if isinstance(attr, property) else getattr(attr, "__func__", attr)
                code = getattr(fn, "__code__", None)
                if isinstance(code, CodeType):
                    owners.setdefault(code, (kind, name))
    codes = []
    tb = exc.__traceback__
    while tb is not None:
        codes.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    return next((owners[c] for c in reversed(codes) if c in owners), None)
