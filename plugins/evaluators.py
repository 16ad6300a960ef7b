"""Built-in evaluators: classification scores and errors, regression scores and errors.

Classification evaluators receive class probabilities of shape ``(n, k)``; the predicted class is the
most probable one (ties go to the lowest class code). Regression evaluators receive values of shape
``(n,)``. Every evaluator checks its inputs and raises :class:`ValueError` saying what is wrong.

Validation splits of small tasks may lack a class. ``balanced_accuracy`` and ``roc_auc`` then average
over the classes present in ``y_true`` only, and ``f1_macro`` over the classes present in ``y_true`` or
predicted; see each class for details.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

import numpy as np

import engine
from engine import Evaluator, TaskKind

__all__ = [
    "LOG_LOSS_EPS",
    "R2",
    "Accuracy",
    "BalancedAccuracy",
    "F1Macro",
    "LogLoss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "RocAuc",
    "stratagem_register_evaluators",
]

LOG_LOSS_EPS = 1e-15
"""Probabilities are clipped to ``[LOG_LOSS_EPS, 1]`` before taking logs, so log loss stays finite."""

_CLASSIFICATION: frozenset[TaskKind] = frozenset({"classification"})
_REGRESSION: frozenset[TaskKind] = frozenset({"regression"})


def _classification_inputs(
    name: str, y_true: np.ndarray, output: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert ``(class codes, probabilities)``; return ``(int64 codes, float64 probs)``."""
    y = np.asarray(y_true)
    proba = np.asarray(output, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(
            f"{name}: classification output must be class probabilities of shape (n, n_classes) "
            f"with n_classes >= 2, got shape {proba.shape}"
        )
    if y.shape != (proba.shape[0],):
        raise ValueError(f"{name}: y_true must have shape ({proba.shape[0]},) to match output, got {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name}: cannot evaluate zero predictions")
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise ValueError(f"{name}: y_true must hold integer class codes, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= proba.shape[1]:
        raise ValueError(
            f"{name}: class codes must be in 0..{proba.shape[1] - 1} (one output column per class), "
            f"got codes from {y.min()} to {y.max()}"
        )
    return y, proba


def _regression_inputs(name: str, y_true: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert ``(values, predictions)`` to two ``float64`` arrays of shape ``(n,)``."""
    y = np.asarray(y_true, dtype=np.float64)
    pred = np.asarray(output, dtype=np.float64)
    if pred.ndim != 1:
        raise ValueError(
            f"{name}: regression output must be predicted values of shape (n,), got {pred.shape}"
        )
    if y.shape != pred.shape:
        raise ValueError(f"{name}: y_true has shape {y.shape} but output has shape {pred.shape}")
    if y.size == 0:
        raise ValueError(f"{name}: cannot evaluate zero predictions")
    return y, pred


class _ClassificationEvaluator(Evaluator):
    kinds: ClassVar[frozenset[TaskKind]] = _CLASSIFICATION

    def __call__(self, y_true: np.ndarray, output: np.ndarray) -> float:
        y, proba = _classification_inputs(self.name, y_true, output)
        return float(self._compute(y, proba))

    @abstractmethod
    def _compute(self, y: np.ndarray, proba: np.ndarray) -> float:
        """The value for checked class codes ``y`` and probabilities ``proba``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _RegressionEvaluator(Evaluator):
    kinds: ClassVar[frozenset[TaskKind]] = _REGRESSION

    def __call__(self, y_true: np.ndarray, output: np.ndarray) -> float:
        y, pred = _regression_inputs(self.name, y_true, output)
        return float(self._compute(y, pred))

    @abstractmethod
    def _compute(self, y: np.ndarray, pred: np.ndarray) -> float:
        """The value for checked targets ``y`` and predictions ``pred``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Accuracy(_ClassificationEvaluator):
    """Fraction of rows whose most probable class is the true one."""

    name: ClassVar[str] = "accuracy"
    basis: ClassVar[Literal["score", "error"]] = "score"
    description: ClassVar[str] = "Fraction of correctly classified rows (higher is better)."

    def _compute(self, y: np.ndarray, proba: np.ndarray) -> float:
        return float(np.mean(proba.argmax(axis=1) == y))


class BalancedAccuracy(_ClassificationEvaluator):
    """Mean recall over the classes present in ``y_true``.

    Classes missing from ``y_true`` have no recall and are left out of the mean (as scikit-learn's
    ``balanced_accuracy_score`` does), so a split lacking a class is still judged on the others.
    """

    name: ClassVar[str] = "balanced_accuracy"
    basis: ClassVar[Literal["score", "error"]] = "score"
    description: ClassVar[str] = "Mean per-class recall over classes present (higher is better)."

    def _compute(self, y: np.ndarray, proba: np.ndarray) -> float:
        pred = proba.argmax(axis=1)
        recalls = [np.mean(pred[y == c] == c) for c in np.unique(y)]
        return float(np.mean(recalls))


class F1Macro(_ClassificationEvaluator):
    """Unweighted mean of per-class F1 scores.

    The mean runs over the classes that occur in ``y_true`` or among the predictions (scikit-learn's
    default labels). A class that is predicted but absent from ``y_true`` has F1 0; classes neither
    present nor predicted are left out.
    """

    name: ClassVar[str] = "f1_macro"
    basis: ClassVar[Literal["score", "error"]] = "score"
    description: ClassVar[str] = "Macro-averaged F1 over present or predicted classes (higher is better)."

    def _compute(self, y: np.ndarray, proba: np.ndarray) -> float:
        from sklearn.metrics import f1_score

        return float(f1_score(y, proba.argmax(axis=1), average="macro", zero_division=0.0))


class RocAuc(_ClassificationEvaluator):
    """Area under the ROC curve, one-vs-rest and macro-averaged over the classes in ``y_true``.

    For a binary task this is the usual AUC of the positive class's probability (the one-vs-rest AUCs
    of both classes are equal then). Each class present in ``y_true`` is scored by its own probability
    column against all other rows; a class absent from ``y_true`` has no AUC and is left out. When
    ``y_true`` holds a single class no ranking can be judged and the value is 0.5, the AUC of chance.
    """

    name: ClassVar[str] = "roc_auc"
    basis: ClassVar[Literal["score", "error"]] = "score"
    description: ClassVar[str] = "One-vs-rest macro ROC AUC over present classes; 0.5 if only one class."

    def _compute(self, y: np.ndarray, proba: np.ndarray) -> float:
        from sklearn.metrics import roc_auc_score

        present = np.unique(y)
        if len(present) < 2:
            return 0.5
        if proba.shape[1] == 2:
            return float(roc_auc_score(y == 1, proba[:, 1]))
        return float(np.mean([roc_auc_score(y == c, proba[:, c]) for c in present]))


class LogLoss(_ClassificationEvaluator):
    """Mean cross-entropy ``-log p(true class)``, probabilities clipped below at :data:`LOG_LOSS_EPS`.

    Probabilities are used as given (not renormalised); a probability of zero for the true class
    costs ``-log(1e-15) ≈ 34.5`` rather than infinity.
    """

    name: ClassVar[str] = "log_loss"
    basis: ClassVar[Literal["score", "error"]] = "error"
    description: ClassVar[str] = "Cross-entropy of the predicted class probabilities (lower is better)."

    def _compute(self, y: np.ndarray, proba: np.ndarray) -> float:
        p_true = np.clip(proba[np.arange(len(y)), y], LOG_LOSS_EPS, 1.0)
        return float(-np.mean(np.log(p_true)))


class R2(_RegressionEvaluator):
    """Coefficient of determination ``1 - SS_res / SS_tot``.

    When ``y_true`` is constant (``SS_tot = 0``) the value is 1.0 for perfect predictions and 0.0
    otherwise, as scikit-learn's ``r2_score`` defines it, so it is always finite.
    """

    name: ClassVar[str] = "r2"
    basis: ClassVar[Literal["score", "error"]] = "score"
    description: ClassVar[str] = "Coefficient of determination R² (higher is better; 1 is perfect)."

    def _compute(self, y: np.ndarray, pred: np.ndarray) -> float:
        ss_res = float(np.sum((y - pred) ** 2))
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        if ss_tot == 0.0:
            return 1.0 if ss_res == 0.0 else 0.0
        return 1.0 - ss_res / ss_tot


class MeanSquaredError(_RegressionEvaluator):
    """Mean of squared differences, in the target's units squared."""

    name: ClassVar[str] = "mse"
    basis: ClassVar[Literal["score", "error"]] = "error"
    description: ClassVar[str] = "Mean squared error (lower is better)."

    def _compute(self, y: np.ndarray, pred: np.ndarray) -> float:
        return float(np.mean((y - pred) ** 2))


class MeanAbsoluteError(_RegressionEvaluator):
    """Mean of absolute differences, in the target's units."""

    name: ClassVar[str] = "mae"
    basis: ClassVar[Literal["score", "error"]] = "error"
    description: ClassVar[str] = "Mean absolute error (lower is better)."

    def _compute(self, y: np.ndarray, pred: np.ndarray) -> float:
        return float(np.mean(np.abs(y - pred)))


@engine.hookimpl
def stratagem_register_evaluators(registry: engine.Registry[Evaluator]) -> None:
    """Register one instance of every built-in evaluator."""
    for evaluator in (
        Accuracy(),
        BalancedAccuracy(),
        F1Macro(),
        RocAuc(),
        LogLoss(),
        R2(),
        MeanSquaredError(),
        MeanAbsoluteError(),
    ):
        registry.add(evaluator)
