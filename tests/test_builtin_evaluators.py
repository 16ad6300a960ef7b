"""The built-in evaluators pass the conformance kit and compute the textbook values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.evaluator import Evaluator
from engine.plugin.registry import Registry
from engine.testing import EvaluatorContract
from plugins.evaluators import (
    R2,
    Accuracy,
    BalancedAccuracy,
    F1Macro,
    LogLoss,
    MeanAbsoluteError,
    MeanSquaredError,
    RocAuc,
    stratagem_register_evaluators,
)


class TestAccuracyContract(EvaluatorContract):
    evaluator = Accuracy()


class TestBalancedAccuracyContract(EvaluatorContract):
    evaluator = BalancedAccuracy()


class TestF1MacroContract(EvaluatorContract):
    evaluator = F1Macro()


class TestRocAucContract(EvaluatorContract):
    evaluator = RocAuc()


class TestLogLossContract(EvaluatorContract):
    evaluator = LogLoss()


class TestR2Contract(EvaluatorContract):
    evaluator = R2()


class TestMeanSquaredErrorContract(EvaluatorContract):
    evaluator = MeanSquaredError()


class TestMeanAbsoluteErrorContract(EvaluatorContract):
    evaluator = MeanAbsoluteError()


# Four rows, three classes; row 2 (true class 2) is predicted as class 1.
Y = np.array([0, 1, 2, 2])
P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.3, 0.4, 0.3],
        [0.2, 0.5, 0.3],
        [0.1, 0.1, 0.8],
    ]
)
Y_REG = np.array([1.0, 2.0, 3.0, 4.0])
PRED_REG = np.array([1.5, 2.0, 2.0, 6.0])  # errors -0.5, 0, 1, -2


def test_the_hook_registers_every_builtin_with_its_basis_and_kinds() -> None:
    registry: Registry[Evaluator] = Registry("evaluator")
    stratagem_register_evaluators(registry=registry)
    table = {e.name: (e.basis, sorted(e.kinds)) for e in registry}
    clf, reg = ["classification"], ["regression"]
    assert table == {
        "accuracy": ("score", clf),
        "balanced_accuracy": ("score", clf),
        "f1_macro": ("score", clf),
        "roc_auc": ("score", clf),
        "log_loss": ("error", clf),
        "r2": ("score", reg),
        "mse": ("error", reg),
        "mae": ("error", reg),
    }
    assert all(e.description for e in registry)


def test_accuracy_counts_argmax_hits() -> None:
    assert Accuracy()(Y, P) == 0.75


def test_balanced_accuracy_averages_per_class_recall() -> None:
    assert BalancedAccuracy()(Y, P) == pytest.approx((1 + 1 + 0.5) / 3)


def test_balanced_accuracy_ignores_classes_absent_from_y_true() -> None:
    # Only classes 0 and 2 occur; recalls 1 and 1/2.
    assert BalancedAccuracy()(np.array([0, 2, 2]), P[[0, 2, 3]]) == pytest.approx(0.75)


def test_f1_macro_averages_per_class_f1() -> None:
    # class 0: F1 1; class 1: precision 1/2, recall 1 -> 2/3; class 2: precision 1, recall 1/2 -> 2/3.
    assert F1Macro()(Y, P) == pytest.approx(7 / 9)


def test_f1_macro_counts_a_predicted_but_absent_class_as_zero() -> None:
    # y_true has classes 0 and 1 only; class 1 is never predicted, class 2 is predicted once.
    y = np.array([0, 1])
    p = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7]])
    assert F1Macro()(y, p) == pytest.approx(1 / 3)


def test_roc_auc_is_the_one_vs_rest_macro_average() -> None:
    # class 0: 1; class 1: positive 0.4 beats 0.2 and 0.1 but not 0.5 -> 2/3;
    # class 2: positives 0.3, 0.8 against 0.1, 0.3 -> (1 + 0.5 + 1 + 1) / 4.
    expected = (1 + 2 / 3 + 0.875) / 3
    assert RocAuc()(Y, P) == pytest.approx(expected)
    from sklearn.metrics import roc_auc_score

    assert expected == pytest.approx(roc_auc_score(Y, P, multi_class="ovr", average="macro"))


def test_roc_auc_of_a_binary_task_scores_the_positive_class() -> None:
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    assert RocAuc()(y, np.column_stack([1 - p1, p1])) == pytest.approx(0.75)


def test_roc_auc_averages_over_the_classes_present() -> None:
    # Class 2 is absent: class 0 scores (0.7 vs 0.3) -> 1; class 1 scores (0.4 vs 0.2) -> 1.
    assert RocAuc()(np.array([0, 1]), P[[0, 1]]) == 1.0


def test_roc_auc_is_chance_when_y_true_has_one_class() -> None:
    assert RocAuc()(np.array([2, 2]), P[2:]) == 0.5


def test_log_loss_is_mean_negative_log_probability_of_the_truth() -> None:
    expected = -(math.log(0.7) + math.log(0.4) + math.log(0.3) + math.log(0.8)) / 4
    assert LogLoss()(Y, P) == pytest.approx(expected)


def test_log_loss_clips_zero_probabilities_to_stay_finite() -> None:
    p = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert LogLoss()(np.array([1, 1]), p) == pytest.approx(-math.log(1e-15) / 2)


def test_regression_errors_and_r2_by_hand() -> None:
    assert MeanSquaredError()(Y_REG, PRED_REG) == pytest.approx((0.25 + 0 + 1 + 4) / 4)
    assert MeanAbsoluteError()(Y_REG, PRED_REG) == pytest.approx((0.5 + 0 + 1 + 2) / 4)
    # SS_res = 5.25, SS_tot = 2.25 + 0.25 + 0.25 + 2.25 = 5.
    assert R2()(Y_REG, PRED_REG) == pytest.approx(1 - 5.25 / 5)


def test_r2_of_a_constant_target_is_one_if_perfect_else_zero() -> None:
    y = np.full(3, 7.0)
    assert R2()(y, y.copy()) == 1.0
    assert R2()(y, np.array([7.0, 8.0, 6.0])) == 0.0


@pytest.mark.parametrize(
    ("evaluator", "y", "output", "message"),
    [
        (Accuracy(), Y, P[:, 0], r"class probabilities of shape \(n, n_classes\)"),
        (Accuracy(), Y[:3], P, r"y_true must have shape \(4,\)"),
        (LogLoss(), np.array([0, 1, 2, 3]), P, r"class codes must be in 0..2"),
        (RocAuc(), np.array([0.5, 1, 2, 2]), P, "integer class codes"),
        (MeanSquaredError(), Y_REG, PRED_REG[:, None], r"values of shape \(n,\)"),
        (R2(), Y_REG[:3], PRED_REG, "y_true has shape"),
        (MeanAbsoluteError(), np.array([]), np.array([]), "zero predictions"),
    ],
)
def test_bad_inputs_raise_value_errors_that_say_what_is_wrong(
    evaluator: Evaluator, y: np.ndarray, output: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        evaluator(y, output)
