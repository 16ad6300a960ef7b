"""The process a study runs in: torch's device and threads, and Optuna's logging."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import optuna
import torch

__all__ = ["MAX_THREADS", "device_problem", "quiet_optuna", "resolve_device", "torch_threads"]

MAX_THREADS = 1024
"""More torch threads than this is a typo, not a machine."""


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when a GPU is present, else ``"cpu"``; others pass through."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used on this machine, or ``None``."""
    if not device.startswith("cuda"):
        return None
    if not torch.cuda.is_available():
        return f'device {device!r} needs a CUDA GPU, and torch sees none here; use "cpu" or "auto"'
    index = device.partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        return f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    return None


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Tabular models are small: one intra-op thread per worker is fastest; ``0`` keeps torch's default."""
    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO; the engine reports progress its own way."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(level, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)
