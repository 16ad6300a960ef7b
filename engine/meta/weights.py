"""Meta-learned θ as safetensors files: the tensors plus the strategy and family needed to rebuild it.

Files are written with ``safetensors.torch`` when the package is installed, and otherwise by a small
writer of the same documented format (an 8-byte little-endian header length, a JSON header, raw
little-endian data), so they load with either. Nothing is pickled.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from engine.meta.family import FamilyInfo
from engine.meta.learner import MetaModel, MetaStrategy

__all__ = ["load_meta_learner", "load_weights", "save_meta_learner", "save_weights"]

_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_BY_CODE = {code: dtype for dtype, code in _DTYPES.items()}
_KEY = "stratagem.meta"


def save_weights(
    path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``tensors`` (moved to the CPU) and string ``metadata`` to a safetensors file at ``path``."""
    plain = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = dict(metadata or {})
    try:
        from safetensors.torch import save_file
    except ImportError:
        _write(Path(path), plain, meta)
    else:
        save_file(plain, str(path), metadata=meta)


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file: its tensors (on the CPU) and its string metadata.

    Raises:
        ValueError: The file is not a safetensors file (or is truncated).
    """
    try:
        from safetensors import safe_open
    except ImportError:
        return _read(Path(path))
    with safe_open(str(path), framework="pt") as f:
        names = list(f.keys())
        return {k: f.get_tensor(k) for k in names}, dict(f.metadata() or {})


def save_meta_learner(path: str | Path, strategy: MetaStrategy, model: MetaModel, info: FamilyInfo) -> None:
    """Save θ with the strategy's name and hyperparameters and the family's :class:`FamilyInfo` (shape,
    and the input columns and standardisations of a family built from a table), to rebuild and adapt it.

    Args:
        path: Destination file (``.safetensors`` by convention).
        strategy: The meta-strategy; its hyperparameters must be JSON values.
        model: θ.
        info: The family θ was trained for (:meth:`engine.meta.TaskFamily.info`).
    """
    record = {
        "strategy": strategy.name,
        "params": strategy.get_params(),
        "family": {
            "name": info.name,
            "kind": info.kind,
            "input_shape": list(info.input_shape),
            "n_outputs": info.n_outputs,
            "input_columns": list(info.input_columns),
            "input_mean": list(info.input_mean),
            "input_std": list(info.input_std),
            "target_mean": info.target_mean,
            "target_std": info.target_std,
        },
    }
    try:
        text = json.dumps(record)
    except TypeError as err:
        raise ValueError(
            f"save_meta_learner: {strategy!r} has hyperparameters that are not JSON: {err}"
        ) from None
    save_weights(path, model.state_dict(), {_KEY: text})


def load_meta_learner(
    path: str | Path, strategies: Mapping[str, type[MetaStrategy]]
) -> tuple[MetaStrategy, MetaModel, FamilyInfo]:
    """Rebuild the strategy and θ saved by :func:`save_meta_learner`.

    Args:
        path: The file.
        strategies: Meta-strategy classes by name (a registry's contents).

    Returns:
        The strategy (same hyperparameters), θ (weights loaded) and the family's :class:`FamilyInfo`
        (without input columns and standardisations in a file saved before they were kept).

    Raises:
        ValueError: The file has no stratagem record, or its strategy is not in ``strategies``.
    """
    tensors, metadata = load_weights(path)
    if _KEY not in metadata:
        raise ValueError(
            f"{path}: not a meta-learner file (no {_KEY!r} metadata); save it with save_meta_learner"
        )
    record: dict[str, Any] = json.loads(metadata[_KEY])
    name = record["strategy"]
    if name not in strategies:
        raise ValueError(f"{path}: meta-strategy {name!r} is not available; known: {sorted(strategies)}")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in record["params"].items()}
    strategy = strategies[name](**params)
    fam = record["family"]
    info = FamilyInfo(
        fam["name"],
        fam["kind"],
        tuple(fam["input_shape"]),
        int(fam["n_outputs"]),
        tuple(str(c) for c in fam.get("input_columns", ())),
        tuple(float(v) for v in fam.get("input_mean", ())),
        tuple(float(v) for v in fam.get("input_std", ())),
        float(fam.get("target_mean", 0.0)),
        float(fam.get("target_std", 1.0)),
    )
    model = strategy.build(info)
    model.load_state_dict(tensors)
    return strategy, model, info


def _write(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in _DTYPES:
            raise ValueError(
                f"save_weights: tensor {name!r} has dtype {t.dtype}, which safetensors cannot store"
            )
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {
            "dtype": _DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in chunks:
            f.write(data)


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    raw = path.read_bytes()
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", raw[:8])
    try:
        header: dict[str, Any] = json.loads(raw[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a safetensors file (bad header)") from None
    metadata = header.pop("__metadata__", None) or {}
    body = raw[8 + n :]
    tensors: dict[str, torch.Tensor] = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        if end > len(body) or entry["dtype"] not in _BY_CODE:
            raise ValueError(
                f"{path}: tensor {name!r} is truncated or of an unknown dtype {entry['dtype']!r}"
            )
        dtype = _BY_CODE[entry["dtype"]]
        flat = torch.frombuffer(bytearray(body[begin:end]), dtype=torch.uint8) if end > begin else None
        t = flat.view(dtype) if flat is not None else torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(entry["shape"]).clone()
    return tensors, dict(metadata)
