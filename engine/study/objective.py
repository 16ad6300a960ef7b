"""Strategy exploration's objective: one Optuna trial = choose, train and evaluate one strategy.

A trial's parameters form a conditional search space:

* ``strategy``: categorical over the strategies that fit the task;
* ``<strategy>.<param>``: the chosen strategy's hyperparameters (from its ``suggest``);
* ``updater``: categorical over the updaters;
* ``<updater>.<param>``: the chosen updater's hyperparameters.

The trial's value is the evaluator's value on the validation split (or the mean over k folds). Its user
attribute ``stratagem`` holds the evaluator, direction, test-split value, timings and the trial's seed;
the test value is recorded for reporting only, never used to choose. The trained model(s) of the last
trial stay in memory as :attr:`StrategyObjective.last_trained` (one per fold with k-fold validation,
whose mean produced the test value), for the search to store when the trial becomes a task's best.

Pruning: an updater calls ``report(step, value)`` as often as it likes (each epoch); the engine records
intermediate values in the study only at steps 1, 2, 4, 8, ... (geometric rungs, as Hyperband uses) and
asks the pruner there, so a trial costs a logarithmic number of storage writes. With k-fold validation
the steps are folds: step ``f`` holds the mean over the first ``f`` folds.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FixedTrial

from engine.configuration import plain_params
from engine.errors import StratagemError
from engine.study import training
from engine.study.runtime import quiet_optuna
from engine.study.trained import TrainedModel
from engine.task import Dataset, Split, TaskInfo
from engine.vocabulary import ATTR, TIE_LOSS

if TYPE_CHECKING:
    from engine.evaluator import Evaluator
    from engine.strategy import Strategy
    from engine.updater import Updater

__all__ = [
    "NotFinitePredictions",
    "PrefixedTrial",
    "ReplayTrial",
    "StrategyObjective",
    "TrialFailed",
    "search_space",
    "trial_seed",
]


class TrialFailed(StratagemError):
    """A plugin raised while a trial ran; the trial is marked failed and the study goes on."""


class NotFinitePredictions(TrialFailed):
    """The trained model predicts NaN or infinite values on the validation rows (it diverged): its own
    study fails the trial; the cross-task objective scores that task as the worst instead."""


class PrefixedTrial:
    """An Optuna trial seen through a name prefix: ``suggest_float("lr")`` stores ``"<prefix>.lr"``.

    Everything else is the wrapped trial's.
    """

    def __init__(self, trial: optuna.Trial, prefix: str) -> None:
        self._trial = trial
        self._prefix = prefix + "."

    def suggest_float(self, name: str, low: float, high: float, **kwargs: Any) -> float:
        value = self._trial.suggest_float(self._prefix + name, low, high, **kwargs)
        slack = 1e-9 * max(1.0, abs(high - low))  # a stepped value may be rounded past a bound
        return self._within(name, value, low - slack <= value <= high + slack, f"[{low}, {high}]")

    def suggest_int(self, name: str, low: int, high: int, **kwargs: Any) -> int:
        value = self._trial.suggest_int(self._prefix + name, low, high, **kwargs)
        return self._within(name, value, low <= value <= high, f"[{low}, {high}]")

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self._trial.suggest_categorical(self._prefix + name, choices)
        return self._within(name, value, value in choices, f"{list(choices)}")

    def _within(self, name: str, value: Any, inside: bool, space: str) -> Any:
        """``value``, if the space holds it. Optuna only warns about a value outside the space, which an
        enqueued configuration (a warm start's, a user's) can give: the trial would train with it."""
        if not inside:
            raise TrialFailed(
                f"the trial's configuration sets {self._prefix}{name} = {value!r}, outside its search space "
                f"{space} (an enqueued configuration: a warm start's or a user's)"
            )
        return value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)


def search_space(
    strategies: Sequence[type[Strategy]],
    updaters: Sequence[type[Updater]],
    info: TaskInfo,
    *,
    draws: int = 8,
    seed: int = 0,
) -> dict[str, BaseDistribution]:
    """The flat parameter distributions that a strategy study over these plugins would use on ``info``.

    Found by asking each plugin's ``suggest`` for ``draws`` random configurations in a study of its own
    (in memory): a conditional parameter that none of the draws reaches is missing, and a plugin whose
    ``suggest`` raises is left out (its trials fail with the reason when they run). Warm start fits
    configurations of other tasks, whose plugins may have had other ranges or choices, into it.
    """
    dists: dict[str, BaseDistribution] = {
        "strategy": CategoricalDistribution([s.name for s in strategies]),
        "updater": CategoricalDistribution([u.name for u in updaters]),
    }
    plugins: list[type[Strategy] | type[Updater]] = [*strategies, *updaters]
    for plugin in plugins:
        with quiet_optuna():  # not a study of the search: no "new study created" line
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        for _ in range(draws):
            trial = study.ask()
            try:
                plugin.suggest(cast(optuna.Trial, PrefixedTrial(trial, plugin.name)), info)
            except Exception:
                break  # its own trials will say why
            finally:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            for name, d in trial.distributions.items():
                dists.setdefault(name, d)
    return dists


class ReplayTrial(FixedTrial):
    """A trial that replays fixed parameters through an objective, away from any study.

    It keeps what the updater reports (a Dask worker returns it to the driver, which stores it) and never
    prunes: the study, and its pruner, are not at hand. The trial's ``number`` fixes its seed, so a
    replay of a stored trial trains the same model.
    """

    def __init__(self, params: dict[str, Any], number: int) -> None:
        super().__init__(params, number)
        self.intermediate: dict[int, float] = {}

    def report(self, value: float, step: int) -> None:
        if math.isfinite(value):
            self.intermediate[int(step)] = float(value)

    def should_prune(self) -> bool:
        return False


def trial_seed(search_seed: int, task_key: str, number: int) -> int:
    """The seed of one trial's model initialisation and training."""
    return (search_seed * 1_000_003 + zlib.crc32(task_key.encode()) + number * 7919) % (2**31 - 1)


@dataclass
class StrategyObjective:
    """The objective of one task's strategy study.

    Args:
        task_key: The task's name in the search (seeds depend on it).
        dataset: The task's data.
        split: The stored train / validation / test split.
        strategies: Strategy classes to choose from (all fit the task's kind).
        updaters: Updater classes to choose from.
        evaluator: Judges predictions; its direction is the study's.
        seed: The search's seed.
        validation: ``"holdout"`` or ``"kfold"``.
        folds: Number of folds for k-fold validation (over train + validation rows).
        fold_seed: Shuffles the k-fold partition (default: the split's seed); the final recheck draws
            a partition of its own.
        device: Torch device for training.
        plugin_of: Maps ``("strategy", name)`` to the plugin that registered it, for error messages.
    """

    task_key: str
    dataset: Dataset
    split: Split
    strategies: Sequence[type[Strategy]]
    updaters: Sequence[type[Updater]]
    evaluator: Evaluator
    seed: int = 0
    validation: str = "holdout"
    folds: int = 5
    fold_seed: int | None = None
    device: str = "cpu"
    plugin_of: Callable[[str, str], str] | None = None

    def __post_init__(self) -> None:
        self._strategies = {s.name: s for s in self.strategies}
        self._updaters = {u.name: u for u in self.updaters}
        self._info = self.dataset.info()
        self.last_record: dict[str, Any] = {}
        self.last_trained: TrainedModel | None = None
        self._members: list[tuple[torch.nn.Module, training.Prepared]] = []
        self._fold_values: list[float] = []

    def __call__(self, trial: optuna.Trial) -> float:
        self.last_trained, self._members, self._fold_values = None, [], []
        strategy_name = trial.suggest_categorical("strategy", list(self._strategies))
        strategy_cls = self._strategies[strategy_name]
        prefixed = cast(optuna.Trial, PrefixedTrial(trial, strategy_name))
        s_params = self._plugin_call(
            "strategy", strategy_name, lambda: plain_params(strategy_cls.suggest(prefixed, self._info))
        )
        updater_name = trial.suggest_categorical("updater", list(self._updaters))
        updater_cls = self._updaters[updater_name]
        prefixed = cast(optuna.Trial, PrefixedTrial(trial, updater_name))
        u_params = self._plugin_call(
            "updater", updater_name, lambda: plain_params(updater_cls.suggest(prefixed, self._info))
        )
        seed = trial_seed(self.seed, self.task_key, trial.number)
        started = time.perf_counter()
        value, loss, test_value, fit_seconds = self._fit_and_score(
            trial, strategy_cls, s_params, updater_cls, u_params, seed
        )
        self.last_record = {
            "evaluator": self.evaluator.name,
            "direction": self.evaluator.direction,
            "test_value": test_value,
            "fit_seconds": round(fit_seconds, 6),
            "seconds": round(time.perf_counter() - started, 6),
            "seed": seed,
            "validation": self.validation,
            TIE_LOSS: loss,
        }
        if self._fold_values:
            self.last_record["fold_values"] = list(self._fold_values)
        trial.set_user_attr(ATTR, self.last_record)
        self.last_trained = TrainedModel(strategy_name, dict(s_params), tuple(self._members))
        self._members = []
        return value

    def _check_width(self, model: torch.nn.Module, prepared: training.Prepared, name: str) -> None:
        """Fail the trial when ``model`` (a strategy's build) does not give one output per class (one
        value for regression): a wrong width would train, score and be kept, then fail to predict."""
        want = prepared.info.n_outputs
        try:
            with torch.no_grad():
                out = model(prepared.X_train[:2])
        except Exception as exc:
            plugin = self.plugin_of("strategy", name) if self.plugin_of else "unknown"
            raise TrialFailed(
                f"strategy {name!r} (plugin {plugin!r}): its model fails on a batch of the task's rows: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        got = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else None
        if not (got == (want,) or (want == 1 and got == ())):
            plugin = self.plugin_of("strategy", name) if self.plugin_of else "unknown"
            raise TrialFailed(
                f"strategy {name!r} (plugin {plugin!r}): build() made a model whose output per row has "
                f"shape {got}; a {prepared.info.kind} task with this data needs {want} value(s) per row"
            )

    def _plugin_call(self, kind: str, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except (optuna.TrialPruned, TrialFailed, training.EvaluatorFailed):
            raise
        except Exception as exc:
            plugin = self.plugin_of(kind, name) if self.plugin_of else "unknown"
            raise TrialFailed(
                f"{kind} {name!r} (plugin {plugin!r}) raised {type(exc).__name__}: {exc}"
            ) from exc

    def _fit_and_score(
        self,
        trial: optuna.Trial,
        strategy_cls: type[Strategy],
        s_params: dict[str, Any],
        updater_cls: type[Updater],
        u_params: dict[str, Any],
        seed: int,
    ) -> tuple[float, float | None, float, float]:
        """Train and evaluate; return (validation value, validation loss, test value, training seconds)."""

        pruned: list[str] = []  # why, once the pruner stopped the trial (an updater may swallow it)

        def report(step: int, value: float) -> None:
            if pruned:  # stopped already: the updater caught the first stop and went on
                raise optuna.TrialPruned(pruned[0])
            trial.report(value, step)
            if trial.should_prune():
                pruned.append(f"pruned at step {step} with value {value:.6g}")
                raise optuna.TrialPruned(pruned[0])

        def report_at_rungs(step: int, value: float) -> None:
            if step >= 1 and step & (step - 1) == 0:  # 1, 2, 4, 8, ...: few storage writes per trial
                report(step, value)

        def fit_one(
            train_idx: np.ndarray, val_idx: np.ndarray, fold_seed: int, rep: Callable[[int, float], None]
        ) -> tuple[Any, training.Prepared, float]:

            torch.manual_seed(fold_seed)
            prepared = training.prepare(self.dataset, train_idx, self.device)
            strategy = self._plugin_call("strategy", strategy_cls.name, lambda: strategy_cls(**s_params))
            model = self._plugin_call("strategy", strategy_cls.name, strategy.build, prepared.info)
            if not isinstance(model, torch.nn.Module):
                plugin = self.plugin_of("strategy", strategy_cls.name) if self.plugin_of else "unknown"
                raise TrialFailed(
                    f"strategy {strategy_cls.name!r} (plugin {plugin!r}): build() returned "
                    f"{type(model).__name__}, not a torch.nn.Module"
                )
            model.to(self.device)
            self._check_width(model, prepared, strategy_cls.name)
            updater = self._plugin_call("updater", updater_cls.name, lambda: updater_cls(**u_params))
            problem = training.make_problem(self.dataset, prepared, val_idx, self.evaluator, fold_seed)
            t0 = time.perf_counter()
            self._plugin_call("updater", updater_cls.name, updater.fit, model, problem, rep)
            if pruned:  # the updater caught the stop and returned: the trial is pruned all the same
                raise optuna.TrialPruned(pruned[0])
            self._members.append((model, prepared))
            return model, prepared, time.perf_counter() - t0

        def judged(model: Any, prepared: training.Prepared, idx: np.ndarray) -> tuple[float, float | None]:
            value, loss = training.judge(model, prepared, self.dataset, idx, self.evaluator)
            if loss is None and not math.isfinite(value):  # the predictions themselves are not finite
                plugin_of = self.plugin_of or (lambda kind, name: "unknown")
                s_name, u_name = strategy_cls.name, updater_cls.name
                raise NotFinitePredictions(
                    f"strategy {s_name!r} (plugin {plugin_of('strategy', s_name)!r}) trained by updater "
                    f"{u_name!r} (plugin {plugin_of('updater', u_name)!r}) predicts NaN or infinite values "
                    "on the validation rows: the training diverged (try a lower learning rate) or the model "
                    "computes them"
                )
            return value, loss

        if self.validation == "holdout":
            model, prepared, secs = fit_one(self.split.train, self.split.validation, seed, report_at_rungs)
            value, loss = judged(model, prepared, self.split.validation)
            test = training.evaluate(model, prepared, self.dataset, self.split.test, self.evaluator)
            return value, loss, test, secs

        values: list[float] = []
        losses: list[float | None] = []
        test_outputs: list[np.ndarray] = []
        total = 0.0
        for fold, (tr, va) in enumerate(self._folds()):
            model, prepared, secs = fit_one(tr, va, seed + fold, _no_report)
            total += secs
            value, loss = judged(model, prepared, va)
            values.append(value)
            losses.append(loss)
            test_outputs.append(training.predict(model, prepared, self.dataset.X[self.split.test]))
            report(fold + 1, float(np.mean(values)))
        self._fold_values = [float(v) for v in values]
        ensemble = np.mean(test_outputs, axis=0)
        test = float(self.evaluator(self.dataset.y[self.split.test], ensemble))
        mean_loss = None if None in losses else float(np.mean([x for x in losses if x is not None]))
        return float(np.mean(values)), mean_loss, test, total

    def _folds(self) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import KFold, StratifiedKFold

        rows = np.concatenate([self.split.train, self.split.validation])
        y = self.dataset.y[rows]
        seed = self.split.seed if self.fold_seed is None else self.fold_seed
        if self.dataset.kind == "classification" and np.bincount(y).min() >= self.folds:
            splitter: Any = StratifiedKFold(self.folds, shuffle=True, random_state=seed)
            parts = splitter.split(rows, y)
        else:
            parts = KFold(self.folds, shuffle=True, random_state=seed).split(rows)
        return [(np.sort(rows[a]), np.sort(rows[b])) for a, b in parts]


def _no_report(step: int, value: float) -> None:
    """Inside k-fold validation, pruning happens per fold, not per epoch."""
