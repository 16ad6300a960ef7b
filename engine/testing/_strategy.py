"""Conformance tests every strategy plugin should pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from engine.strategy import Strategy
from engine.study.trained import TrainedModel
from engine.study.training import prepare
from engine.task import TASK_KINDS, RowEncoding, TaskInfo, TaskKind
from engine.testing._data import REFERENCE_INFOS, tiny_dataset, tiny_problem
from engine.testing._search_space import SearchSpaceContract, suggest_from_study
from engine.trained import MemberCard, ModelCard, load_model, save_model_dir

__all__ = ["StrategyContract"]


class StrategyContract(SearchSpaceContract):
    """Base test class for a :class:`engine.Strategy`; subclass it as ``Test...`` and set the class.

    Attributes:
        strategy_class: The strategy under test (required).
        build_params: Hyperparameter sets to build models with. By default the kit samples
            ``n_configurations`` of them from ``suggest`` with real Optuna trials.
        n_configurations: How many sampled hyperparameter sets the model checks use.
        training_steps: Full-batch Adam steps of the training check.
        learning_rate: Adam's learning rate in the training check.

    Checks run on the task shapes of :data:`engine.testing.REFERENCE_INFOS` whose kind the strategy
    declares.
    """

    strategy_class: ClassVar[type[Strategy]]
    build_params: ClassVar[Sequence[dict[str, Any]] | None] = None
    n_configurations: ClassVar[int] = 3
    training_steps: ClassVar[int] = 25
    learning_rate: ClassVar[float] = 1e-2

    # -- plumbing ----------------------------------------------------------------------------------

    def _cls(self) -> type[Strategy]:
        cls = getattr(self, "strategy_class", None)
        if cls is None:
            raise TypeError(f"{type(self).__name__}: set `strategy_class = YourStrategy` on the test class")
        return cls

    def configurable_class(self) -> type[Strategy]:
        return self._cls()

    def search_infos(self) -> Sequence[TaskInfo]:
        return [i for i in REFERENCE_INFOS if i.kind in self._cls().kinds]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize ``info`` and ``kind`` with what the strategy declares it learns (pytest hook)."""
        if "info" in metafunc.fixturenames:
            infos = self.search_infos()
            ids = [f"{i.kind}-{i.n_features}in-{i.n_outputs}out" for i in infos]
            metafunc.parametrize("info", infos, ids=ids)
        if "kind" in metafunc.fixturenames:
            metafunc.parametrize("kind", [k for k in TASK_KINDS if k in self._cls().kinds])

    def strategies(self, info: TaskInfo) -> list[Strategy]:
        """Instances to build models from: ``build_params`` or sampled from ``suggest``."""
        cls = self._cls()
        if self.build_params is not None:
            return [cls(**p) for p in self.build_params]
        return [cls(**suggest_from_study(cls, info, seed)[0]) for seed in range(self.n_configurations)]

    # -- declarations ------------------------------------------------------------------------------

    def test_declares_name_and_kinds(self) -> None:
        cls = self._cls()
        assert isinstance(getattr(cls, "name", None), str) and cls.name, f"{cls.__name__} needs a `name`"
        assert "." not in cls.name, f"strategy name {cls.name!r} must not contain '.', the engine's separator"
        assert cls.kinds, f"{cls.__name__}.kinds is empty"
        assert set(cls.kinds) <= set(TASK_KINDS), f"{cls.__name__}.kinds must be a subset of {TASK_KINDS}"

    # -- models ------------------------------------------------------------------------------------

    def test_build_maps_batches_to_float32_outputs(self, info: TaskInfo) -> None:
        for strategy in self.strategies(info):
            torch.manual_seed(0)
            model = strategy.build(info)
            assert isinstance(model, torch.nn.Module), f"{strategy!r}.build must return a torch.nn.Module"
            X = torch.randn(7, info.n_features, generator=torch.Generator().manual_seed(1))
            for mode, batch in (("train", X), ("eval", X), ("eval", X[:1])):
                model.train(mode == "train")
                with torch.no_grad():
                    out = model(batch)
                assert out.shape == (len(batch), info.n_outputs), (
                    f"{strategy!r} in {mode} mode maps a batch of {len(batch)} to {tuple(out.shape)}, "
                    f"expected ({len(batch)}, {info.n_outputs}) for {info}"
                )
                assert out.dtype == torch.float32, f"{strategy!r} outputs {out.dtype}, expected float32"
                assert torch.isfinite(out).all(), f"{strategy!r} outputs non-finite values for {info}"

    def test_every_parameter_is_trainable(self, info: TaskInfo) -> None:
        for strategy in self.strategies(info):
            torch.manual_seed(0)
            model = strategy.build(info)
            params = dict(model.named_parameters())
            assert any(p.requires_grad for p in params.values()), f"{strategy!r} has no trainable parameter"
            model(torch.randn(8, info.n_features)).square().sum().backward()
            for name, p in params.items():
                assert p.dtype == torch.float32, f"{strategy!r}: parameter {name} is {p.dtype}, not float32"
                if p.requires_grad:
                    assert p.grad is not None, f"{strategy!r}: parameter {name} gets no gradient (unused?)"
                    assert torch.isfinite(p.grad).all(), (
                        f"{strategy!r}: parameter {name} has a non-finite grad"
                    )

    def test_eval_predictions_are_per_row(self, info: TaskInfo) -> None:
        X = torch.randn(9, info.n_features, generator=torch.Generator().manual_seed(2))
        for strategy in self.strategies(info):
            torch.manual_seed(0)
            model = strategy.build(info).eval()
            with torch.no_grad():
                together = model(X)
                alone = torch.cat([model(X[i : i + 1]) for i in range(len(X))])
            torch.testing.assert_close(
                alone, together, msg=f"{strategy!r}: in eval mode a row's output must not depend on its batch"
            )

    def test_seeded_build_is_reproducible(self) -> None:
        for info in self.search_infos():
            for strategy in self.strategies(info):
                states = []
                for _ in range(2):
                    torch.manual_seed(123)
                    states.append(strategy.build(info).state_dict())
                assert states[0].keys() == states[1].keys()
                for key in states[0]:
                    assert torch.equal(states[0][key], states[1][key]), (
                        f"{strategy!r}: {key} differs between two builds after torch.manual_seed(123); "
                        "initialise from torch's global RNG only"
                    )

    def test_build_returns_an_independent_model_and_keeps_hyperparameters(self) -> None:
        for info in self.search_infos():
            for strategy in self.strategies(info):
                before = strategy.get_params()
                first, second = strategy.build(info), strategy.build(info)
                assert strategy.get_params() == before, f"{strategy!r}.build changed its hyperparameters"
                first_ptrs = {p.data_ptr() for p in first.parameters()}
                shared = first_ptrs & {p.data_ptr() for p in second.parameters()}
                assert not shared, f"{strategy!r}.build returns models that share parameter tensors"

    def test_gradient_descent_reduces_training_loss(self, kind: TaskKind) -> None:
        problem = tiny_problem(kind)
        for strategy in self.strategies(problem.info):
            torch.manual_seed(0)
            model = strategy.build(problem.info)
            before = _eval_loss(model, problem.X, problem.y, problem.loss)
            opt = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
            model.train()
            for _ in range(self.training_steps):
                opt.zero_grad()
                problem.loss(model(problem.X), problem.y).backward()
                opt.step()
            after = _eval_loss(model, problem.X, problem.y, problem.loss)
            assert after < before, (
                f"{strategy!r}: {self.training_steps} Adam steps (lr={self.learning_rate}) on the tiny "
                f"{kind} task did not lower the training loss ({before:.4f} -> {after:.4f})"
            )

    def test_round_trips_through_export(self, kind: TaskKind, tmp_path: Any) -> None:
        """A trained model written as a model directory and loaded back predicts exactly the same."""
        dataset = tiny_dataset(kind)
        for strategy in self.strategies(dataset.info()):
            members = []
            for fold in range(2):  # two members, as a k-fold ensemble has
                torch.manual_seed(fold)
                prepared = prepare(dataset, np.arange(fold, dataset.n_samples, 2))
                model = strategy.build(prepared.info)
                with torch.no_grad():
                    for p in model.parameters():
                        p.add_(0.01 * torch.randn_like(p))  # not the initial weights: something learned
                members.append((model, prepared))
            trained = TrainedModel(self._cls().name, strategy.get_params(), tuple(members))
            card = ModelCard(
                kind=kind,
                n_features=dataset.n_features,
                n_classes=dataset.n_classes,
                class_names=tuple(str(c) for c in range(dataset.n_classes)),
                feature_names=dataset.feature_names,
                encoding=RowEncoding.numeric(dataset.feature_names),
                strategy=self._cls().name,
                strategy_params=strategy.get_params(),
                members=tuple(MemberCard(p.info.n_samples, p.y_mean, p.y_std) for _, p in members),
            )
            out = save_model_dir(tmp_path / f"{kind}-{id(strategy)}", trained, card)
            loaded = load_model(out, strategy_class=self._cls())
            X = dataset.X[:20]
            np.testing.assert_array_equal(
                loaded.output(X),
                trained.predict(X),
                err_msg=f"{strategy!r}: the model reloaded from its exported directory predicts differently; "
                "build() must depend only on the hyperparameters and the TaskInfo",
            )


def _eval_loss(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, loss: Any) -> float:
    model.eval()
    with torch.no_grad():
        return float(loss(model(X), y))
