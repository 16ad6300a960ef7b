"""Transfer reads other tasks' strategy studies in a few queries over Optuna's tables
(:mod:`engine.storage.optuna_reads`); what it finds must be exactly what Optuna's public API, study by
study, finds: on a history of real searches with odd studies and trials added (pruned, failed, running
and waiting trials, infinite and NaN values, trials without a record, damaged study attributes, NaN in
meta-features), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import InMemoryStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState, create_trial

from engine.search import run
from engine.storage import Database, optuna_reads
from engine.storage.optuna_adapter import open_optuna_storage, study_id
from engine.storage.optuna_reads import read_trials, studies_with_user_attr
from engine.transfer import history as history_module
from engine.transfer.history import load_history
from engine.transfer.sources import discover_sources, rank_normalise
from engine.vocabulary import ATTR, DONE_STATES, KIND_STRATEGIES
from engine.warmstarter import Source, SourceTrial
from tests.conftest import tiny_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---- the per-study path as it was, through Optuna's public API only ---------------------------------


def _old_is_strategy_trial(t: FrozenTrial) -> bool:
    return "strategy" in t.params and "updater" in t.params


def _old_study_trials(storage: optuna.storages.BaseStorage, sid: int, name: str) -> list[SourceTrial]:
    trials = storage.get_all_trials(sid, deepcopy=False, states=DONE_STATES)
    complete = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE
        and t.value is not None
        and math.isfinite(t.value)
        and _old_is_strategy_trial(t)
    ]
    if not complete:
        return []
    maximize = storage.get_study_directions(sid)[0] == optuna.study.StudyDirection.MAXIMIZE
    ranks = rank_normalise([float(t.value) for t in complete if t.value is not None], maximize)
    out = [
        SourceTrial(
            name,
            t.number,
            dict(t.params),
            dict(t.distributions),
            t.value,
            t.user_attrs.get(ATTR, {}).get("test_value"),
            float(r),
            True,
        )
        for t, r in zip(complete, ranks, strict=True)
    ]
    out += [
        SourceTrial(name, t.number, dict(t.params), dict(t.distributions), None, None, 0.0, False)
        for t in trials
        if t.state == TrialState.PRUNED and _old_is_strategy_trial(t)
    ]
    return out


def _old_discover_sources(
    storage: optuna.storages.BaseStorage,
    tasks: Mapping[str, tuple[str, dict[str, float]]],
    *,
    exclude_fingerprint: str | None,
) -> list[Source]:
    rows = {fp: v for fp, v in tasks.items() if fp != exclude_fingerprint}
    grouped: dict[str, list[tuple[dict[str, Any], str, list[SourceTrial]]]] = {}
    for study in storage.get_all_studies():
        attrs = study.user_attrs.get(ATTR)
        if not isinstance(attrs, dict) or attrs.get("kind") != KIND_STRATEGIES:
            continue
        fp = attrs.get("fingerprint")
        if not fp or fp == exclude_fingerprint or fp not in rows:
            continue
        trials = _old_study_trials(storage, study_id(storage, study.study_name), study.study_name)
        if sum(t.complete for t in trials) >= 2:
            grouped.setdefault(fp, []).append((attrs, study.study_name, trials))
    sources = []
    for fp, studies in sorted(grouped.items()):
        studies.sort(key=lambda x: (-sum(t.complete for t in x[2]), x[1]))
        attrs, name, _ = studies[0]
        sources.append(
            Source(
                fingerprint=fp,
                task=str(attrs.get("task") or rows[fp][0]),
                search=str(attrs.get("search", "")),
                study=name,
                studies=tuple(n for _, n, _ in studies),
                evaluator=str(attrs.get("evaluator", "")),
                meta_features=rows[fp][1],
                trials=tuple(t for _, _, ts in studies for t in ts),
            )
        )
    return sources


# ---- the history ------------------------------------------------------------------------------------


def _attrs(storage: optuna.storages.BaseStorage, name: str) -> dict[str, Any]:
    return dict(optuna.load_study(study_name=name, storage=storage).user_attrs[ATTR])


def _add_odd_studies(storage: optuna.storages.BaseStorage) -> None:
    """Studies a real search would not leave, beside the real ones, for the tasks iris and wine."""
    iris = optuna.load_study(study_name="hist/iris", storage=storage)
    template = next(t for t in iris.get_trials() if t.state == TrialState.COMPLETE)
    params, dists = template.params, template.distributions
    record = template.user_attrs[ATTR]
    flipped = "maximize" if iris.direction == optuna.study.StudyDirection.MINIMIZE else "minimize"

    def trial(state: TrialState = TrialState.COMPLETE, value: float | None = None, **kw: Any) -> FrozenTrial:
        kw.setdefault("params", params)
        kw.setdefault("distributions", dists)
        if state == TrialState.COMPLETE:
            kw.setdefault("user_attrs", {ATTR: {**record, "test_value": value / 2 if value else value}})
        return create_trial(state=state, value=value, **kw)

    odd = optuna.create_study(storage=storage, study_name="odd/iris", direction=flipped)
    odd.set_user_attr(ATTR, {**_attrs(storage, "hist/iris"), "search": "odd", "task": ""})
    odd.set_user_attr("note", "another attribute")
    for t in [
        trial(value=0.3),
        trial(value=math.inf),
        trial(TrialState.PRUNED, intermediate_values={0: 0.5}),
        trial(value=-math.inf),
        trial(TrialState.FAIL),
        trial(value=0.1, user_attrs={"other": [1, 2]}),  # no record: no test value
        trial(TrialState.RUNNING),
        trial(value=0.3, user_attrs={ATTR: {"test_value": None}, "x": {"y": 1}}),  # a tie
        trial(TrialState.WAITING),
        trial(
            value=0.2, params={"strategy": params["strategy"]}, distributions={"strategy": dists["strategy"]}
        ),
        trial(TrialState.PRUNED),
        trial(TrialState.PRUNED, params={}, distributions={}),  # not a strategy trial
        trial(value=0.05, system_attrs={"fixed_params": dict(params)}),
        trial(value=0.7, user_attrs={ATTR: {**record, "test_value": 0.25}}),
    ]:
        odd.add_trial(t)

    lone = optuna.create_study(storage=storage, study_name="lone/wine")  # one complete trial only
    lone.set_user_attr(ATTR, _attrs(storage, "hist/wine") | {"search": "lone"})
    lone.add_trial(trial(value=0.4))
    lone.add_trial(trial(TrialState.PRUNED))
    empty = optuna.create_study(storage=storage, study_name="empty/wine")
    empty.set_user_attr(ATTR, _attrs(storage, "hist/wine") | {"search": "empty"})

    damaged: list[Any] = [
        "a string",
        [1, 2],
        None,
        {"kind": KIND_STRATEGIES},  # no fingerprint
        {**_attrs(storage, "hist/wine"), "fingerprint": "0" * 64},  # a task not stored
        {**_attrs(storage, "hist/wine"), "kind": "meta"},
    ]
    for k, attr in enumerate(damaged):
        study = optuna.create_study(storage=storage, study_name=f"damaged{k}/wine")
        study.set_user_attr(ATTR, attr)
        study.add_trial(trial(value=0.1))
        study.add_trial(trial(value=0.2))
    plain = optuna.create_study(storage=storage, study_name="not-ours")  # no engine attribute
    plain.add_trial(trial(value=0.1))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real searches of iris (twice), wine and breast_cancer, odd studies added, a NaN meta-feature."""
    path = tmp_path_factory.mktemp("bulk") / "history.db"
    url = f"sqlite:///{path}"
    run(tiny_spec("hist", ("iris", "wine"), n_trials=4, strategies=("linear", "mlp")), storage=url)
    run(tiny_spec("again", ("iris",)), storage=url)
    run(tiny_spec("target", ("breast_cancer",), n_trials=2), storage=url)
    _add_odd_studies(open_optuna_storage(url))
    with sqlite3.connect(path) as conn:
        (stored,) = conn.execute("SELECT meta_features FROM stratagem_tasks WHERE name = 'wine'").fetchone()
        features = json.loads(stored)
        features[next(iter(features))] = math.nan
        conn.execute(
            "UPDATE stratagem_tasks SET meta_features = ? WHERE name = 'wine'", (json.dumps(features),)
        )
    return path


@pytest.fixture
def url(history: Path, tmp_path: Path) -> str:
    copy = tmp_path / "copy.db"
    with sqlite3.connect(history) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)  # the database may be in WAL mode: copying the file alone would lose data
    return f"sqlite:///{copy}"


def _stored_tasks(url: str) -> dict[str, tuple[str, dict[str, float]]]:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT fingerprint, name, meta_features FROM stratagem_tasks").fetchall()
    return {fp: (name, json.loads(mf)) for fp, name, mf in rows}


def _fingerprint(url: str, task: str) -> str:
    return next(fp for fp, (name, _) in _stored_tasks(url).items() if name == task)


def _same(new: Any, old: Any) -> None:
    """Equal, and equal in repr too (types of numbers, NaN in meta-features, order of dict keys)."""
    assert repr(new) == repr(old)
    assert [list(s.meta_features) for s in new] == [list(s.meta_features) for s in old]
    assert [[list(t.params) for t in s.trials] for s in new] == [
        [list(t.params) for t in s.trials] for s in old
    ]


# ---- the tests --------------------------------------------------------------------------------------


def _copied(url: str, to: optuna.storages.BaseStorage) -> optuna.storages.BaseStorage:
    source = open_optuna_storage(url, create=False)
    for study in source.get_all_studies():
        optuna.copy_study(from_study_name=study.study_name, from_storage=source, to_storage=to)
    return to


def _records_match(storage: RDBStorage, states: tuple[TrialState, ...]) -> int:
    """Each study's trials read in bulk are those of ``get_all_trials``; returns how many were compared."""
    ids = [s._study_id for s in storage.get_all_studies()]
    bulk = read_trials(storage, ids, states=states, user_attrs=(ATTR,))
    assert sorted(bulk) == sorted(ids)
    compared = 0
    for sid in ids:
        public = storage.get_all_trials(sid, deepcopy=False, states=states)
        got = bulk[sid]
        assert got.directions == storage.get_study_directions(sid)
        assert [t.number for t in got.trials] == [t.number for t in public]
        for mine, theirs in zip(got.trials, public, strict=True):
            assert mine.state == theirs.state
            assert repr(mine.values) == repr(theirs.values)  # infinities, NaN
            assert repr(mine.params) == repr(theirs.params)  # external values, their types and order
            assert mine.distributions == theirs.distributions
            assert list(mine.distributions) == list(theirs.distributions)
            assert mine.user_attrs == {k: v for k, v in theirs.user_attrs.items() if k == ATTR}
            compared += 1
    return compared


@pytest.mark.parametrize("chunk", [500, 2])
def test_sources_read_in_bulk_are_those_read_study_by_study(
    url: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(optuna_reads, "CHUNK", chunk)  # 2: many chunks, a study's trials in one
    storage = open_optuna_storage(url, create=False)
    tasks = _stored_tasks(url)
    for exclude in (None, _fingerprint(url, "iris"), _fingerprint(url, "breast_cancer")):
        new = discover_sources(storage, tasks, exclude_fingerprint=exclude)
        old = _old_discover_sources(storage, tasks, exclude_fingerprint=exclude)
        assert new == old
        _same(new, old)
    every = discover_sources(storage, tasks, exclude_fingerprint=None)
    assert [s.task for s in every] and {s.task for s in every} == {"iris", "wine", "breast_cancer"}
    odd = [t for s in every for t in s.trials if t.study == "odd/iris"]
    assert [t.value for t in odd if t.complete] == [0.3, 0.1, 0.3, 0.05, 0.7]
    assert [t.test_value for t in odd if t.complete] == [0.15, None, None, 0.025, 0.25]
    assert sum(not t.complete for t in odd) == 2  # both pruned strategy trials, neither FAIL nor the rest


@pytest.mark.parametrize("states", [DONE_STATES, tuple(TrialState)])
def test_trials_read_in_bulk_are_what_optuna_builds(url: str, states: tuple[TrialState, ...]) -> None:
    assert _records_match(open_optuna_storage(url, create=False), states) > 20


def test_load_history_is_what_the_per_study_path_gave(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(url, create=False)
    for exclude in (None, _fingerprint(url, "wine")):
        new = load_history(db, "classification", exclude_fingerprint=exclude)
        with monkeypatch.context() as m:
            m.setattr(history_module, "discover_sources", _old_discover_sources)
            old = load_history(db, "classification", exclude_fingerprint=exclude)
        _same(new.sources, old.sources)
        assert repr(new.population) == repr(old.population)
        assert ("nan" in repr(new.population)) == (exclude is None)  # wine's NaN meta-feature
        assert new.defaults == old.defaults


def test_a_storage_other_than_optuna_rdb_is_read_study_by_study_alike(url: str) -> None:
    memory = _copied(url, InMemoryStorage())  # same studies, same trial numbers
    tasks = _stored_tasks(url)
    new = discover_sources(memory, tasks, exclude_fingerprint=None)
    _same(new, discover_sources(open_optuna_storage(url, create=False), tasks, exclude_fingerprint=None))
    _same(new, _old_discover_sources(memory, tasks, exclude_fingerprint=None))


def test_the_studies_listed_are_those_carrying_the_attribute(url: str) -> None:
    storage = open_optuna_storage(url, create=False)
    listed = studies_with_user_attr(storage, ATTR)
    every = storage.get_all_studies()
    assert [(s.study_id, s.name, s.attr) for s in listed] == [
        (s._study_id, s.study_name, s.user_attrs[ATTR]) for s in every if ATTR in s.user_attrs
    ]
    assert "not-ours" not in {s.name for s in listed}


@pytest.mark.postgres
def test_on_postgresql_with_a_nan_value_too(url: str, postgres_url: str) -> None:
    storage = RDBStorage(postgres_url)
    for study in storage.get_all_studies():  # the module's database: start from none
        optuna.delete_study(study_name=study.study_name, storage=storage)
    _copied(url, storage)
    sid = storage.get_study_id_from_name("odd/iris")
    template = storage.get_all_trials(sid, states=(TrialState.COMPLETE,))[0]
    nan = storage.create_new_trial(
        sid,
        template_trial=create_trial(
            params=template.params, distributions=template.distributions, state=TrialState.RUNNING
        ),
    )
    storage.set_trial_state_values(nan, TrialState.COMPLETE, [math.nan])  # PostgreSQL keeps a NaN
    assert math.isnan(storage.get_trial(nan).values[0])  # type: ignore[index]

    tasks = _stored_tasks(url)
    for exclude in (None, _fingerprint(url, "iris")):
        new = discover_sources(storage, tasks, exclude_fingerprint=exclude)
        old = _old_discover_sources(storage, tasks, exclude_fingerprint=exclude)
        assert new == old
        _same(new, old)
    assert _records_match(storage, DONE_STATES) > 20
    assert _records_match(storage, tuple(TrialState)) > 20
