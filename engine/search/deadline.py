"""A per-trial time limit: a trial that runs longer than ``search.trial_timeout`` is stopped and failed.

In the main thread (the ``stratagem`` command, a script) the limit is a ``SIGALRM`` timer, which also
interrupts a trial sleeping or waiting on I/O. Elsewhere (a thread of a notebook or a web service) it is
an asynchronous exception raised in the trial's thread by a timer thread. Either way the trial is
stopped at its next Python instruction: a single native call that never returns (a deadlocked C
extension) is not interrupted, and only ends when the process is killed, after which the heartbeat
logic fails the trial.

:class:`TrialTimedOut` derives from :class:`BaseException`, like :class:`KeyboardInterrupt`, so that a
plugin's ``except Exception`` cannot swallow it.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["TrialTimedOut", "trial_deadline"]


class TrialTimedOut(BaseException):
    """The running trial exceeded the search's ``trial_timeout``."""


@contextmanager
def trial_deadline(seconds: float | None) -> Iterator[None]:
    """Within the block, raise :class:`TrialTimedOut` in this thread once ``seconds`` have passed.

    ``None`` sets no limit, and so does a limit beyond :data:`threading.TIMEOUT_MAX` (about 292 years;
    ``inf`` included), which no timer of the platform can hold: it would fail every trial with an
    ``OverflowError`` (or crash the timer's thread) instead.
    """
    if seconds is None or not seconds < threading.TIMEOUT_MAX:
        yield
        return
    started = time.monotonic()
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _alarm(seconds):
            yield
    else:
        with _async_raise(seconds):
            yield
    if time.monotonic() - started > seconds:  # the stop was raised, and the trial's code caught it
        raise TrialTimedOut(f"{_message(seconds)}; its code caught the stop and ran on, so it failed after")


def _message(seconds: float) -> str:
    return f"the trial ran longer than search.trial_timeout = {seconds:g} s and was stopped"


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise TrialTimedOut(_message(seconds))

    before = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)


@contextmanager
def _async_raise(seconds: float) -> Iterator[None]:
    thread_id = threading.get_ident()
    guard = threading.Lock()
    state = {"inside": True, "raised": False}

    def expire() -> None:
        with guard:
            if state["inside"]:
                state["raised"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(thread_id), ctypes.py_object(TrialTimedOut)
                )

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except TrialTimedOut:
        raise TrialTimedOut(_message(seconds)) from None
    finally:
        timer.cancel()
        with guard:
            state["inside"] = False
            if state["raised"]:  # set but maybe not delivered yet: withdraw it
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
