"""Conformance tests every updater plugin should pass."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

import optuna
import pytest
import torch

from engine.task import TASK_KINDS, TaskInfo, TaskKind
from engine.testing._data import REFERENCE_INFOS, reference_evaluator, tiny_problem
from engine.testing._search_space import SearchSpaceContract
from engine.updater import FitResult, TrainingProblem, Updater

__all__ = ["UpdaterContract"]


class _Recorder:
    """A ``report`` callback that records its calls and can raise ``TrialPruned`` at one of them."""

    def __init__(self, prune_at_call: int | None = None) -> None:
        self.calls: list[tuple[int, float]] = []
        self.prune_at_call = prune_at_call

    def __call__(self, step: int, value: float) -> None:
        self.calls.append((step, value))
        if self.prune_at_call is not None and len(self.calls) == self.prune_at_call:
            raise optuna.TrialPruned(f"pruned at step {step}")


class UpdaterContract(SearchSpaceContract):
    """Base test class for an :class:`engine.Updater`; subclass it as ``Test...`` and set the instance.

    Attributes:
        updater: The updater under test (required), configured as the fit checks should use it: pick
            hyperparameters that train the tiny tasks in well under a second. Each fit uses a fresh
            copy, ``type(updater)(**updater.get_params())``. The search-space checks use its class.

    The fit checks train :meth:`make_model` (a small tanh network) on the kit's tiny iris and
    diabetes problems (:func:`engine.testing.tiny_problem`).
    """

    updater: ClassVar[Updater]

    # -- plumbing ----------------------------------------------------------------------------------

    def _cls(self) -> type[Updater]:
        updater = getattr(self, "updater", None)
        if not isinstance(updater, Updater):
            raise TypeError(
                f"{type(self).__name__}: set `updater = YourUpdater(...)` (an instance) on the test class"
            )
        return type(updater)

    def configurable_class(self) -> type[Updater]:
        return self._cls()

    def search_infos(self) -> Sequence[TaskInfo]:
        return REFERENCE_INFOS

    def make_updater(self) -> Updater:
        """A fresh copy of :attr:`updater` for one fit."""
        return self._cls()(**self.updater.get_params())

    def make_model(self, info: TaskInfo) -> torch.nn.Module:
        """A freshly seeded model to train; override to test with another architecture."""
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(info.n_features, 16), torch.nn.Tanh(), torch.nn.Linear(16, info.n_outputs)
        )

    def _fit(
        self, problem: TrainingProblem, report: _Recorder | None = None, global_seed: int = 0
    ) -> tuple[torch.nn.Module, FitResult, _Recorder]:
        model = self.make_model(problem.info)
        report = report or _Recorder()
        torch.manual_seed(global_seed)  # the updater must not rely on torch's global RNG
        result = self.make_updater().fit(model, problem, report)
        return model, result, report

    # -- declarations ------------------------------------------------------------------------------

    def test_declares_name_and_gradient_free(self) -> None:
        cls = self._cls()
        assert isinstance(getattr(cls, "name", None), str) and cls.name, f"{cls.__name__} needs a `name`"
        assert "." not in cls.name, f"updater name {cls.name!r} must not contain '.', the engine's separator"
        assert isinstance(cls.gradient_free, bool), f"{cls.__name__}.gradient_free must be a bool"

    # -- fitting -----------------------------------------------------------------------------------

    @pytest.mark.parametrize("basis", ["error", "score"])
    @pytest.mark.parametrize("kind", TASK_KINDS)
    def test_fit_improves_validation_over_the_untrained_model(
        self, kind: TaskKind, basis: Literal["score", "error"]
    ) -> None:
        evaluator = reference_evaluator(kind, basis)
        problem = tiny_problem(kind, evaluator)
        untrained = problem.validate(self.make_model(problem.info))
        model, _, _ = self._fit(problem)
        trained = problem.validate(model)
        assert evaluator.better(trained, untrained), (
            f"{self.make_updater()!r} left the {kind} model at validation {evaluator.name}={trained}, "
            f"no better than the untrained model's {untrained}"
        )

    @pytest.mark.parametrize("kind", TASK_KINDS)
    def test_fit_returns_a_fit_result_and_finite_weights(self, kind: TaskKind) -> None:
        model, result, _ = self._fit(tiny_problem(kind))
        assert isinstance(result, FitResult), f"fit must return a FitResult, got {type(result).__name__}"
        assert isinstance(result.steps, int) and result.steps >= 1, f"FitResult.steps is {result.steps!r}"
        assert math.isfinite(result.train_loss), f"FitResult.train_loss is {result.train_loss!r}"
        for name, p in model.named_parameters():
            assert torch.isfinite(p).all(), f"fit left parameter {name} with non-finite values"

    def test_reports_validation_values_at_increasing_steps(self) -> None:
        _, _, report = self._fit(tiny_problem("classification"))
        assert report.calls, "fit never called report(step, value); pruners cannot stop it"
        steps = [s for s, _ in report.calls]
        assert all(isinstance(s, int) and s >= 0 for s in steps), f"steps must be non-negative ints: {steps}"
        assert steps == sorted(set(steps)), f"report steps must strictly increase, got {steps}"
        assert all(isinstance(v, float) for _, v in report.calls), "report values must be floats"

    @pytest.mark.parametrize("basis", ["error", "score"])
    def test_leaves_the_model_at_the_best_or_the_last_reported_state(
        self, basis: Literal["score", "error"]
    ) -> None:
        problem = tiny_problem("classification", reference_evaluator("classification", basis))
        model, _, report = self._fit(problem)
        assert report.calls, "fit never called report(step, value)"
        values = [v for _, v in report.calls]
        best = max(values) if problem.higher_is_better else min(values)
        final = problem.validate(model)
        assert final == pytest.approx(best) or final == pytest.approx(values[-1]), (
            f"after fit the model validates at {final}, neither the best ({best}) nor the last "
            f"({values[-1]}) value reported; mind problem.higher_is_better"
        )

    @pytest.mark.parametrize("prune_at_call", [1, 2])
    def test_trial_pruned_from_report_propagates(self, prune_at_call: int) -> None:
        report = _Recorder(prune_at_call=prune_at_call)
        with pytest.raises(optuna.TrialPruned):
            self._fit(tiny_problem("classification"), report)
        assert len(report.calls) == prune_at_call, "fit went on reporting after report raised TrialPruned"

    def test_fit_is_reproducible_from_the_generator_seed(self) -> None:
        runs = [self._fit(tiny_problem("regression", seed=7), global_seed=g) for g in (1, 2)]
        (model_a, result_a, report_a), (model_b, result_b, report_b) = runs
        assert report_a.calls == report_b.calls, (
            "two fits with the same model and generator seeds reported different values; draw "
            "randomness from problem.generator, not torch's global RNG"
        )
        assert result_a == result_b
        for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values(), strict=True):
            assert torch.equal(a, b), (
                f"{name} differs between two fits with the same seeds; draw randomness from "
                "problem.generator only"
            )

    def test_fit_keeps_hyperparameters(self) -> None:
        updater = self.make_updater()
        before = updater.get_params()
        updater.fit(self.make_model(tiny_problem("regression").info), tiny_problem("regression"), _Recorder())
        assert updater.get_params() == before, f"{updater!r}.fit changed its hyperparameters"

    def test_gradient_free_updater_needs_no_autograd(self) -> None:
        if not self._cls().gradient_free:
            pytest.skip(f"{self._cls().__name__} uses gradients")
        evaluator = reference_evaluator("classification", "error")
        problem = tiny_problem("classification", evaluator)
        untrained = problem.validate(self.make_model(problem.info))
        with torch.no_grad():
            model, _, _ = self._fit(problem)
        trained = problem.validate(model)
        assert evaluator.better(trained, untrained), (
            f"a gradient-free updater must train under torch.no_grad(); validation {untrained} -> {trained}"
        )
