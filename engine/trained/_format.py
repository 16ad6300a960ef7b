"""The model-directory format: what ``stratagem export`` writes and :func:`load_model` reads.

A model directory holds two files:

``model.safetensors``
    The weights, never a pickle: for member ``i`` (one per holdout fit, or one per fold with k-fold
    validation), ``members.<i>.state.<name>`` for every entry of the model's ``state_dict``, and the
    feature scaling of the rows it was trained on, ``members.<i>.mean`` and ``members.<i>.std``
    (``float64``). The file's metadata key ``stratagem`` holds the card below, so the one file kept in
    Optuna's artifact store describes itself.
``model.json``
    The card (:class:`ModelCard`): format version, the task's kind, raw columns and their encodings
    (:class:`~engine.task.RowEncoding`), class labels as the data had them, the strategy's name, plugin
    and hyperparameters, each member's training-row count and target scaling, and where the model came
    from (search, task, trial, validation and test values).

Predicting: encode raw rows with the encoding, standardise with each member's mean and standard
deviation, run each member, take class probabilities (softmax) or values (un-scaled), and average the
members. That is how the engine computed the trial's stored test value, so a reloaded model reproduces it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from engine.errors import StratagemError
from engine.study.trained import TrainedModel
from engine.study.training import Prepared
from engine.task import RowEncoding, TaskInfo

__all__ = [
    "CARD_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "KINDS",
    "REEXPORT",
    "RERUN",
    "WEIGHTS_FILE",
    "MemberCard",
    "ModelCard",
    "ModelError",
    "read_card",
    "read_members",
    "save_model_dir",
    "weights_metadata",
    "write_weights",
]

FORMAT = "stratagem-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
KINDS = ("classification", "regression")

REEXPORT = "export the model again: stratagem export --search S --task T --out DIR --overwrite"
"""What to do about a model directory whose files are damaged."""
RERUN = "run the search again under a new name (or after `stratagem delete --search S`) to keep a new model"
"""What to do about a kept model (a file in the artifact store) that is damaged."""


class ModelError(StratagemError):
    """A trained model cannot be exported, read or applied; the message says why and what to do."""


class _NewerFormat(ModelError):
    """A card of a later format version: nothing is wrong with the file, this Stratagem is too old."""


@dataclass(frozen=True)
class MemberCard:
    """One trained member: its training-row count (the ``TaskInfo`` it was built for) and target scaling."""

    n_samples: int
    y_mean: float = 0.0
    y_std: float = 1.0


@dataclass(frozen=True)
class ModelCard:
    """Everything besides the weights that turns a raw row into a prediction, and where it came from."""

    kind: str
    n_features: int
    n_classes: int
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    encoding: RowEncoding
    strategy: str
    strategy_params: Mapping[str, Any]
    members: tuple[MemberCard, ...]
    plugin: str = ""
    updater: str = ""
    updater_params: Mapping[str, Any] = field(default_factory=dict)
    origin: Mapping[str, Any] = field(default_factory=dict)

    def info(self, member: int) -> TaskInfo:
        """The :class:`TaskInfo` member ``member`` was built with."""
        return TaskInfo(self.kind, self.members[member].n_samples, self.n_features, self.n_classes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "class_names": list(self.class_names),
            "feature_names": list(self.feature_names),
            "encoding": self.encoding.to_dict(),
            "strategy": self.strategy,
            "strategy_params": dict(self.strategy_params),
            "plugin": self.plugin,
            "updater": self.updater,
            "updater_params": dict(self.updater_params),
            "members": [asdict(m) for m in self.members],
            "ensemble": "mean of the members' outputs (class probabilities or values)",
            "origin": dict(self.origin),
        }

    @classmethod
    def from_dict(cls, data: Any) -> ModelCard:
        """The card of a decoded ``model.json`` (or of a weights file's metadata).

        Raises:
            ModelError: It is not a card: the message names the first field that is missing or holds
                a value of the wrong type (JSON's names for them) or out of range.
        """
        if not isinstance(data, Mapping):
            raise ModelError(f"it holds a JSON {_json_type(data)}, not an object with the model's fields")
        if data.get("format") != FORMAT:
            raise ModelError(f"not a Stratagem model card (field 'format' is {_shown(data.get('format'))})")
        version = _whole(data, "format_version", low=0, default=0)
        if version > FORMAT_VERSION:
            raise _NewerFormat(
                f"the model was written in format version {version}; this Stratagem reads up to "
                f"{FORMAT_VERSION}: upgrade it"
            )
        kind = _text(data, "kind")
        if kind not in KINDS:
            raise ModelError(f"field 'kind' is {_shown(kind)}; expected one of {', '.join(map(repr, KINDS))}")
        n_features = _whole(data, "n_features", low=1)
        n_classes = _whole(data, "n_classes", low=2 if kind == "classification" else 0)
        class_names = _texts(data, "class_names")
        if kind == "classification" and len(class_names) != n_classes:
            raise ModelError(
                f"field 'class_names' has {len(class_names)} labels but 'n_classes' is {n_classes}"
            )
        feature_names = _texts(data, "feature_names")
        if len(feature_names) != n_features:
            raise ModelError(
                f"field 'feature_names' has {len(feature_names)} names but 'n_features' is {n_features}"
            )
        encoding = _encoding(_object(data, "encoding"))
        if encoding.width != n_features:
            raise ModelError(
                f"field 'encoding' makes {encoding.width} features from its columns but 'n_features' is "
                f"{n_features}"
            )
        members = _value(data, "members")
        if not isinstance(members, list) or not members:
            raise _wrong("members", members, "a non-empty array of objects")
        return cls(
            kind=kind,
            n_features=n_features,
            n_classes=n_classes,
            class_names=class_names,
            feature_names=feature_names,
            encoding=encoding,
            strategy=_text(data, "strategy", empty=False),
            strategy_params=_object(data, "strategy_params"),
            members=tuple(_member(m, f"members[{i}]") for i, m in enumerate(members)),
            plugin=_text(data, "plugin", default=""),
            updater=_text(data, "updater", default=""),
            updater_params=_object(data, "updater_params", default={}),
            origin=_object(data, "origin", default={}),
        )


_ABSENT: Any = object()
_JSON_TYPES = (
    (bool, "boolean"),
    (str, "string"),
    ((int, float), "number"),
    (list, "array"),
    (dict, "object"),
)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for types, name in _JSON_TYPES if isinstance(value, types)), type(value).__name__)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        text = repr(value)
    else:
        text = json.dumps(value) if isinstance(value, (int, float, bool, type(None))) else _json_type(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong(name: str, value: Any, expected: str) -> ModelError:
    if isinstance(value, (list, dict)):
        return ModelError(f"field {name!r} is a JSON {_json_type(value)}; expected {expected}")
    return ModelError(f"field {name!r} is {_json_type(value)} {_shown(value)}; expected {expected}")


def _value(data: Mapping[str, Any], key: str, where: str = "", default: Any = _ABSENT) -> Any:
    if key in data:
        return data[key]
    if default is _ABSENT:
        raise ModelError(f"field {where + key!r} is missing")
    return default


def _text(data: Mapping[str, Any], key: str, *, empty: bool = True, default: Any = _ABSENT) -> str:
    value = _value(data, key, default=default)
    if not isinstance(value, str) or not (empty or value):
        raise _wrong(key, value, "a string" if empty else "a non-empty string")
    return value


def _whole(data: Mapping[str, Any], key: str, *, low: int, where: str = "", default: Any = _ABSENT) -> int:
    value = _value(data, key, where, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _wrong(where + key, value, f"a whole number of at least {low}")
    return value


def _texts(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = _value(data, key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong(key, value, "an array of strings")
    return tuple(value)


def _object(data: Mapping[str, Any], key: str, default: Any = _ABSENT) -> dict[str, Any]:
    value = _value(data, key, default=default)
    if not isinstance(value, dict):
        raise _wrong(key, value, "an object")
    return dict(value)


def _encoding(data: Mapping[str, Any]) -> RowEncoding:
    columns = _value(data, "columns", "encoding.")
    if not isinstance(columns, list) or not columns:
        raise _wrong("encoding.columns", columns, "a non-empty array of objects")
    for i, column in enumerate(columns):
        name = f"encoding.columns[{i}]"
        if not isinstance(column, dict):
            raise _wrong(name, column, "an object with a name and levels")
        if not isinstance(column.get("name"), str):
            raise _wrong(f"{name}.name", column.get("name"), "a string")
        levels = column.get("levels", [])
        if not isinstance(levels, list) or not all(isinstance(v, str) for v in levels):
            raise _wrong(f"{name}.levels", levels, "an array of strings")
    target, missing = data.get("target"), data.get("missing", [])
    if target is not None and not isinstance(target, str):
        raise _wrong("encoding.target", target, "a string or null")
    if not isinstance(missing, list) or not all(isinstance(v, str) for v in missing):
        raise _wrong("encoding.missing", missing, "an array of strings")
    return RowEncoding.from_dict(data)


def _member(data: Any, name: str) -> MemberCard:
    if not isinstance(data, dict):
        raise _wrong(name, data, "an object with n_samples, y_mean and y_std")
    scaling = {}
    for key, default in (("y_mean", 0.0), ("y_std", 1.0)):
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _wrong(f"{name}.{key}", value, "a finite number")
        scaling[key] = float(value)
    if scaling["y_std"] <= 0:
        raise _wrong(f"{name}.y_std", data["y_std"], "a positive number")
    return MemberCard(_whole(data, "n_samples", low=1, where=f"{name}."), **scaling)


def write_weights(path: Path, trained: TrainedModel, card: ModelCard) -> None:
    """Write ``trained``'s members to a safetensors file at ``path``, with ``card`` in its metadata."""
    tensors: dict[str, torch.Tensor] = {}
    for i, (model, prepared) in enumerate(trained.members):
        for name, value in model.state_dict().items():
            tensors[f"members.{i}.state.{name}"] = value.detach().to("cpu").contiguous().clone()
        tensors[f"members.{i}.mean"] = torch.from_numpy(np.array(prepared.mean, dtype=np.float64))
        tensors[f"members.{i}.std"] = torch.from_numpy(np.array(prepared.std, dtype=np.float64))
    save_file(tensors, str(path), metadata={"stratagem": json.dumps(card.to_dict())})


def save_model_dir(out: Path, trained: TrainedModel, card: ModelCard) -> Path:
    """Write a model directory (weights and card) for ``trained``, as ``stratagem export`` does."""
    out.mkdir(parents=True, exist_ok=True)
    write_weights(out / WEIGHTS_FILE, trained, card)
    (out / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
    return out


def weights_metadata(path: Path, fix: str) -> dict[str, str]:
    """The metadata of a safetensors file, checking on the way that it is one: the one place a model's
    weights file is opened, for a model directory and for the artifact store alike.

    Args:
        path: The file.
        fix: What to do when it is missing or damaged; ends the error message.

    Raises:
        ModelError: The file is missing, or corrupted: not a safetensors file, or cut short.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except FileNotFoundError:
        raise ModelError(f"the model file {str(path)!r} is missing; {fix}") from None
    except (OSError, SafetensorError) as exc:
        raise ModelError(
            f"the model file {str(path)!r} is corrupted: it is not a safetensors model file ({exc}); {fix}"
        ) from None


def read_card(path: Path, fix: str = REEXPORT, shown: str | None = None) -> ModelCard:
    """The card of a model directory (``model.json``) or of a weights file (its metadata).

    Args:
        path: A model directory, or a weights file.
        fix: What to do when the card is damaged; ends the error message.
        shown: How the error message names a weights file (default: its path).

    Raises:
        ModelError: The file is missing, not JSON, or not a card; the message names the file and field.
    """
    if path.is_dir():
        source = str(path / CARD_FILE)
        try:
            text = (path / CARD_FILE).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"cannot read the model card {source!r}: {exc}; {fix}") from None
    else:
        source = shown or str(path)
        text = weights_metadata(path, fix).get("stratagem", "")
        if not text:
            raise ModelError(
                f"{source!r} is a safetensors file but not a Stratagem model (no 'stratagem' card in its "
                f"metadata); {fix}"
            )
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"the model card {source!r} is not valid JSON ({exc}); {fix}") from None
    try:
        return ModelCard.from_dict(data)
    except _NewerFormat as exc:
        raise ModelError(f"{source!r}: {exc}") from None
    except ModelError as exc:
        raise ModelError(f"the model card {source!r} is damaged: {exc}; {fix}") from None


def read_members(
    weights: Path, card: ModelCard, build: Any, device: str = "cpu", fix: str = REEXPORT
) -> tuple[tuple[torch.nn.Module, Prepared], ...]:
    """Rebuild each member: ``build(info)`` makes the untrained model, the file fills its state.

    Raises:
        ModelError: The file is missing or corrupted, or the weights do not fit the model the strategy
            builds (another version of the plugin?).
    """
    weights_metadata(weights, fix)
    try:
        tensors = load_file(str(weights), device=device)
    except (OSError, ValueError, SafetensorError) as exc:
        raise ModelError(f"cannot read the weights {str(weights)!r}: {exc}; {fix}") from None
    members = []
    for i, member in enumerate(card.members):
        info = card.info(i)
        prefix = f"members.{i}.state."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        scaling = [f"members.{i}.{name}" for name in ("mean", "std")]
        absent = [key for key in scaling if key not in tensors]
        if absent:
            raise ModelError(
                f"the weights {str(weights)!r} lack {absent}, the feature scaling of member {i} that the "
                f"card describes; {fix}"
            )
        model: torch.nn.Module = build(info)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise ModelError(
                f"the weights of member {i} do not fit the model that strategy {card.strategy!r} builds "
                f"with {dict(card.strategy_params)} (was the plugin changed since?): {detail}"
            ) from None
        model.to(device).eval()
        mean = tensors[scaling[0]].cpu().numpy()
        std = tensors[scaling[1]].cpu().numpy()
        empty = torch.empty(0)
        members.append((model, Prepared(info, empty, empty, member.y_mean, member.y_std, mean, std, device)))
    return tuple(members)
