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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.errors import StratagemError
from engine.study.trained import TrainedModel
from engine.study.training import Prepared
from engine.task import RowEncoding, TaskInfo

__all__ = [
    "CARD_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "MemberCard",
    "ModelCard",
    "ModelError",
    "read_card",
    "read_members",
    "save_model_dir",
    "write_weights",
]

FORMAT = "stratagem-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"


class ModelError(StratagemError):
    """A trained model cannot be exported, read or applied; the message says why and what to do."""


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
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        if data.get("format") != FORMAT:
            raise ModelError(f"not a Stratagem model card (format {data.get('format')!r})")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ModelError(
                f"the model was written in format version {data['format_version']}; this Stratagem reads "
                f"up to {FORMAT_VERSION}: upgrade it"
            )
        return cls(
            kind=str(data["kind"]),
            n_features=int(data["n_features"]),
            n_classes=int(data["n_classes"]),
            class_names=tuple(str(c) for c in data["class_names"]),
            feature_names=tuple(str(c) for c in data["feature_names"]),
            encoding=RowEncoding.from_dict(data["encoding"]),
            strategy=str(data["strategy"]),
            strategy_params=dict(data["strategy_params"]),
            members=tuple(MemberCard(**m) for m in data["members"]),
            plugin=str(data.get("plugin", "")),
            updater=str(data.get("updater", "")),
            updater_params=dict(data.get("updater_params", {})),
            origin=dict(data.get("origin", {})),
        )


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


def read_card(path: Path) -> ModelCard:
    """The card of a model directory (``model.json``) or of a weights file (its metadata)."""
    try:
        if path.is_dir():
            return ModelCard.from_dict(json.loads((path / CARD_FILE).read_text(encoding="utf-8")))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return ModelCard.from_dict(json.loads(meta["stratagem"]))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ModelError(
            f"{str(path)!r} is not a Stratagem model (expected a directory written by `stratagem export` "
            f"with {CARD_FILE} and {WEIGHTS_FILE}): {type(exc).__name__}: {exc}"
        ) from None


def read_members(
    weights: Path, card: ModelCard, build: Any, device: str = "cpu"
) -> tuple[tuple[torch.nn.Module, Prepared], ...]:
    """Rebuild each member: ``build(info)`` makes the untrained model, the file fills its state.

    Raises:
        ModelError: The weights do not fit the model the strategy builds (another version of the plugin?).
    """
    try:
        tensors = load_file(str(weights), device=device)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the weights {str(weights)!r}: {exc}") from None
    members = []
    for i, member in enumerate(card.members):
        info = card.info(i)
        prefix = f"members.{i}.state."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        model: torch.nn.Module = build(info)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelError(
                f"the weights of member {i} do not fit the model that strategy {card.strategy!r} builds "
                f"with {dict(card.strategy_params)} (was the plugin changed since?): {exc}"
            ) from None
        model.to(device).eval()
        mean = tensors[f"members.{i}.mean"].cpu().numpy()
        std = tensors[f"members.{i}.std"].cpu().numpy()
        empty = torch.empty(0)
        members.append((model, Prepared(info, empty, empty, member.y_mean, member.y_std, mean, std, device)))
    return tuple(members)
