"""Conformance tests every evaluator plugin should pass."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from engine.evaluator import Evaluator
from engine.task import TASK_KINDS, TaskKind

__all__ = ["EvaluatorCase", "EvaluatorContract", "evaluator_cases"]


@dataclass(frozen=True)
class EvaluatorCase:
    """Targets with near-perfect and with random predictions, shaped as the engine passes them."""

    name: str
    kind: TaskKind
    y_true: np.ndarray
    good: np.ndarray
    random: np.ndarray


def _classification_case(name: str, n_classes: int, n: int = 60, seed: int = 0) -> EvaluatorCase:
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.int64) % n_classes
    rng.shuffle(y)
    good = np.full((n, n_classes), 0.1 / (n_classes - 1))
    good[np.arange(n), y] = 0.9
    random = rng.dirichlet(np.ones(n_classes), size=n)
    return EvaluatorCase(name, "classification", y, good, random)


def _regression_case(n: int = 60, seed: int = 0) -> EvaluatorCase:
    rng = np.random.default_rng(seed)
    y = rng.normal(150.0, 40.0, size=n)
    good = y + rng.normal(0.0, 1.0, size=n)
    random = rng.normal(150.0, 40.0, size=n)
    return EvaluatorCase("regression", "regression", y, good, random)


def evaluator_cases() -> list[EvaluatorCase]:
    """The inputs the kit judges with: three-class, binary and regression."""
    return [_classification_case("multiclass", 3), _classification_case("binary", 2), _regression_case()]


_CASES = evaluator_cases()


class EvaluatorContract:
    """Base test class for an :class:`engine.Evaluator`; subclass it as ``Test...`` and set the instance.

    Attributes:
        evaluator: The evaluator instance under test (required).

    Checks run on the cases of :func:`evaluator_cases` whose kind the evaluator declares.
    """

    evaluator: ClassVar[Evaluator]

    def _evaluator(self) -> Evaluator:
        evaluator = getattr(self, "evaluator", None)
        if evaluator is None:
            raise TypeError(f"{type(self).__name__}: set `evaluator = YourEvaluator()` on the test class")
        return evaluator

    def _case(self, case: EvaluatorCase) -> Evaluator:
        evaluator = self._evaluator()
        if case.kind not in evaluator.kinds:
            pytest.skip(f"{evaluator.name} does not judge {case.kind}")
        return evaluator

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize ``case`` with the cases of the kinds the evaluator declares (pytest hook)."""
        if "case" in metafunc.fixturenames:
            cases = [c for c in _CASES if c.kind in self._evaluator().kinds]
            metafunc.parametrize("case", cases, ids=[c.name for c in cases])

    def test_declares_name_basis_and_kinds(self) -> None:
        ev = self._evaluator()
        assert isinstance(getattr(ev, "name", None), str) and ev.name, f"{type(ev).__name__} needs a `name`"
        assert ev.basis in ("score", "error"), f"{ev.name}.basis must be 'score' or 'error', got {ev.basis!r}"
        assert ev.kinds and set(ev.kinds) <= set(TASK_KINDS), f"{ev.name}.kinds must be a non-empty subset"

    def test_direction_and_better_follow_basis(self) -> None:
        ev = self._evaluator()
        expected = "maximize" if ev.basis == "score" else "minimize"
        assert ev.direction == expected, f"{ev.name}: a {ev.basis} must {expected}, got {ev.direction!r}"
        high_wins = ev.basis == "score"
        assert ev.better(1.0, 0.0) is high_wins
        assert ev.better(0.0, 1.0) is not high_wins
        assert not ev.better(0.5, 0.5), "better() must be strict"

    def test_returns_a_finite_float(self, case: EvaluatorCase) -> None:
        ev = self._case(case)
        for output in (case.good, case.random):
            value = ev(case.y_true, output)
            assert isinstance(value, float), f"{ev.name} returned {type(value).__name__}, expected float"
            assert math.isfinite(value), f"{ev.name} returned {value} on the {case.name} case"

    def test_good_predictions_beat_random_ones(self, case: EvaluatorCase) -> None:
        ev = self._case(case)
        good, random = ev(case.y_true, case.good), ev(case.y_true, case.random)
        assert ev.better(good, random), (
            f"{ev.name} ({ev.basis}) judges near-perfect predictions ({good}) no better than random "
            f"ones ({random}) on the {case.name} case"
        )

    def test_is_deterministic_and_leaves_inputs_alone(self, case: EvaluatorCase) -> None:
        ev = self._case(case)
        y, out = case.y_true.copy(), case.random.copy()
        first = ev(y, out)
        assert ev(y, out) == first, f"{ev.name} gives different values for the same inputs"
        np.testing.assert_array_equal(y, case.y_true, err_msg=f"{ev.name} modified y_true")
        np.testing.assert_array_equal(out, case.random, err_msg=f"{ev.name} modified output")

    def test_row_order_does_not_matter(self, case: EvaluatorCase) -> None:
        ev = self._case(case)
        order = np.random.default_rng(1).permutation(len(case.y_true))
        assert ev(case.y_true[order], case.random[order]) == pytest.approx(
            ev(case.y_true, case.random), rel=1e-9, abs=1e-12
        ), f"{ev.name} depends on the order of rows"

    def test_rejects_mismatched_lengths(self, case: EvaluatorCase) -> None:
        ev = self._case(case)
        with pytest.raises(ValueError):
            ev(case.y_true[:-1], case.random)

    def test_copes_with_a_class_missing_from_y_true(self) -> None:
        case = _CASES[0]
        ev = self._case(case)
        keep = case.y_true != 2  # a small validation split may lack a class
        for output in (case.good[keep], case.random[keep]):
            value = ev(case.y_true[keep], output)
            assert isinstance(value, float) and math.isfinite(value), (
                f"{ev.name} returned {value!r} when y_true lacks class 2 of 3; return a defined value"
            )
        assert ev.better(ev(case.y_true[keep], case.good[keep]), ev(case.y_true[keep], case.random[keep]))
