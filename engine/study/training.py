"""Turning a task's rows into tensors, a training problem and evaluated predictions.

This is the one place that decides how data reaches a model: features are standardised with the
training rows' mean and standard deviation only, classification models output logits trained with
cross-entropy, regression models output values trained with MSE on a standardised target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.errors import StratagemError
from engine.task import Dataset, TaskInfo
from engine.updater import TrainingProblem

if TYPE_CHECKING:
    from engine.evaluator import Evaluator

__all__ = ["CONSTANT_RTOL", "EvaluatorFailed", "Prepared", "evaluate", "predict", "prepare"]

CONSTANT_RTOL = 1e-12
"""A feature column whose standard deviation is at most this share of its largest magnitude is constant
(its spread is rounding error) and is not scaled."""


@dataclass(frozen=True)
class Prepared:
    """A task's rows for one fit: standardised tensors plus what is needed to undo the scaling."""

    info: TaskInfo
    X_train: torch.Tensor
    y_train: torch.Tensor
    y_mean: float
    y_std: float
    mean: np.ndarray
    std: np.ndarray
    device: str

    def tensor(self, X: np.ndarray) -> torch.Tensor:
        """Standardise raw features with the training statistics."""
        return torch.as_tensor((X - self.mean) / self.std, dtype=torch.float32, device=self.device)


def prepare(dataset: Dataset, train_idx: np.ndarray, device: str = "cpu") -> Prepared:
    """Standardise features (and regression targets) on the training rows only."""
    X = dataset.X[train_idx]
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    # constant columns are left unscaled; "constant" is relative to the column's own magnitude, so that
    # a column in tiny units (values near 1e-13) is scaled like any other
    std[std <= CONSTANT_RTOL * np.abs(X).max(axis=0, initial=0.0)] = 1.0
    y = dataset.y[train_idx]
    if dataset.kind == "classification":
        y_t = torch.as_tensor(y, dtype=torch.int64, device=device)
        y_mean, y_std = 0.0, 1.0
    else:
        y_mean = float(y.mean())
        y_std = float(y.std()) or 1.0
        y_t = torch.as_tensor((y - y_mean) / y_std, dtype=torch.float32, device=device)
    info = TaskInfo(dataset.kind, len(train_idx), dataset.n_features, dataset.n_classes)
    X_t = torch.as_tensor((X - mean) / std, dtype=torch.float32, device=device)
    return Prepared(info, X_t, y_t, y_mean, y_std, mean, std, device)


def training_loss(info: TaskInfo) -> torch.nn.Module:
    """Cross-entropy on logits for classification, MSE for regression."""
    if info.kind == "classification":
        return torch.nn.CrossEntropyLoss()
    return _MSEOnColumn()


class _MSEOnColumn(torch.nn.Module):
    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(output.reshape(-1), target)


@torch.no_grad()
def predict(model: torch.nn.Module, prepared: Prepared, X: np.ndarray) -> np.ndarray:
    """Evaluator-ready output for raw features ``X``.

    Classification: class probabilities ``(n, k)``. Regression: values ``(n,)`` in the target's units.
    """
    was_training = model.training
    model.eval()
    out = model(prepared.tensor(X))
    model.train(was_training)
    if prepared.info.kind == "classification":
        return torch.softmax(out.double(), dim=1).cpu().numpy()
    values = out.reshape(-1).double().cpu().numpy()
    return values * prepared.y_std + prepared.y_mean


def evaluate(
    model: torch.nn.Module, prepared: Prepared, dataset: Dataset, idx: np.ndarray, evaluator: Evaluator
) -> float:
    """The evaluator's value of ``model`` on rows ``idx``; non-finite predictions score worst."""
    return judge(model, prepared, dataset, idx, evaluator)[0]


def judge(
    model: torch.nn.Module, prepared: Prepared, dataset: Dataset, idx: np.ndarray, evaluator: Evaluator
) -> tuple[float, float | None]:
    """The evaluator's value of ``model`` on rows ``idx`` and its loss there: mean cross-entropy
    (classification) or squared error in the target's units (regression); the loss is ``None`` when
    the predictions are not finite (and the value is then the worst)."""
    output = predict(model, prepared, dataset.X[idx])
    if not np.isfinite(output).all():
        return (-np.inf if evaluator.basis == "score" else np.inf), None
    y = dataset.y[idx]
    if dataset.kind == "classification":
        picked = output[np.arange(len(y)), y.astype(np.int64)]
        loss = float(-np.mean(np.log(np.clip(picked, 1e-15, 1.0))))
    else:
        loss = float(np.mean((output - y) ** 2))
    try:
        value = float(evaluator(y, output))
    except Exception as exc:  # said as the evaluator's, not as the updater's that asked for validation
        raise EvaluatorFailed(f"evaluator {evaluator.name!r} raised {type(exc).__name__}: {exc}") from exc
    return value, (loss if np.isfinite(loss) else None)


class EvaluatorFailed(StratagemError):
    """The evaluator raised on a model's predictions; the trial fails with this message."""


def make_problem(
    dataset: Dataset,
    prepared: Prepared,
    val_idx: np.ndarray,
    evaluator: Evaluator,
    seed: int,
) -> TrainingProblem:
    """The :class:`TrainingProblem` an updater trains on: training tensors, loss, validation."""

    def validate(model: torch.nn.Module) -> float:
        return evaluate(model, prepared, dataset, val_idx, evaluator)

    return TrainingProblem(
        X=prepared.X_train,
        y=prepared.y_train,
        loss=training_loss(prepared.info),
        validate=validate,
        higher_is_better=evaluator.basis == "score",
        generator=torch.Generator().manual_seed(seed),
        info=prepared.info,
        device=prepared.device,
    )
