"""Hostile input: every spec and CSV file is either accepted or refused with an error naming the file,
key or column, with no traceback and nothing written. Property-based (hypothesis) and one case each for
the inputs the issue lists."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.cli import cli
from engine.cli.render import printable
from engine.errors import SearchFailed, SpecError, StratagemError
from engine.plugin import PluginHost
from engine.results import best, failures, searches
from engine.search import run
from engine.settings import mask_password
from engine.spec import SearchSpec, TaskSpec, load_spec, resolve

ROOT = Path(__file__).resolve().parents[1]
HOST = PluginHost.load(())
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# -- generated specs ------------------------------------------------------------------------------

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=30),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))
SEARCH_KEYS = [
    "name", "seed", "n_trials", "timeout", "strategies", "updaters", "device", "threads",
    "trials_per_visit", "warm_start", "mode", "plugins", "bogus",
]  # fmt: skip


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(v)  # a TOML basic string is a JSON string


@st.composite
def spec_texts(draw: Any) -> str:
    search = draw(st.dictionaries(st.sampled_from(SEARCH_KEYS), values, max_size=5))
    lines = ["[search]", *(f"{k} = {_toml_value(v)}" for k, v in search.items())]
    for _ in range(draw(st.integers(0, 2))):
        lines += ["", "[[tasks]]", 'source = "sklearn"']
        lines.append(f"dataset = {_toml_value(draw(st.sampled_from(['iris', 'wine', 'nope', 3])))}")
    if draw(st.booleans()):
        lines += ["", "[sampler]", f"name = {_toml_value(draw(st.sampled_from(['tpe', 'random', 'x'])))}"]
        lines.append(f"seed = {_toml_value(draw(values))}")
    return "\n".join(lines) + "\n"


def _accepted_or_refused_by_file(spec: Path) -> None:
    """Either the spec resolves, or a SpecError names the spec file; nothing else escapes."""
    try:
        resolve(load_spec(spec), HOST)
    except SpecError as exc:
        assert str(spec) in str(exc)


@SETTINGS
@given(text=spec_texts())
def test_generated_specs_are_accepted_or_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    spec = tmp_path / "gen.toml"
    spec.write_text(text, encoding="utf-8")
    _accepted_or_refused_by_file(spec)


@SETTINGS
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_as_a_spec_are_refused_naming_the_file(tmp_path: Path, data: bytes) -> None:
    spec = tmp_path / "bytes.toml"
    spec.write_bytes(data)
    _accepted_or_refused_by_file(spec)


# -- generated CSV files ----------------------------------------------------------------------------

cells = st.one_of(
    st.integers(0, 3).map(str),
    st.floats(-1e3, 1e3).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "NA", "a", "b", "1e308", "-1e308", "1e-320", "nan", "inf", '"x,y"']),
)


@st.composite
def csv_files(draw: Any) -> tuple[bytes, int]:
    n_cols = draw(st.integers(1, 4))
    header = ["y", *(f"f{i}" for i in range(n_cols - 1))]
    hostile = draw(st.booleans())
    cell = cells if hostile else st.one_of(st.integers(0, 2).map(str), st.floats(-1e3, 1e3).map(repr))
    rows = draw(st.lists(st.lists(cell, min_size=n_cols, max_size=n_cols), min_size=0, max_size=40))
    rows = rows if hostile else [*rows, *([["1"] * n_cols, ["0"] * n_cols] * 8)]
    text = "\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n"
    data = text.encode()
    if draw(st.booleans()):
        data = data.replace(b"f0", b"f\xff0", 1)  # not UTF-8
    return data, draw(st.integers(2, 6))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=csv_files())
def test_generated_csv_files_are_accepted_or_refused_and_nothing_is_half_written(
    tmp_path: Path, case: tuple[bytes, int]
) -> None:
    data, folds = case
    (tmp_path / "data.csv").write_bytes(data)
    spec = tmp_path / "csv.toml"
    spec.write_text(
        '[search]\nname = "csv"\nn_trials = 1\nstrategies = ["linear"]\nupdaters = ["gradient_descent"]\n'
        f'warm_start = false\n[evaluation]\nvalidation = "kfold"\nfolds = {folds}\n'
        '[[tasks]]\nsource = "csv"\npath = "data.csv"\ntarget = "y"\n'
    )
    db = tmp_path / f"csv-{uuid.uuid4().hex}.db"  # one per example: engines are cached per URL
    try:
        plan = resolve(load_spec(spec), HOST)
    except SpecError as exc:
        assert str(spec) in str(exc) and "tasks[0]" in str(exc)
        assert not db.exists()  # refused before the database was opened
        return
    assert len(plan.tasks) == 1
    event("accepted")
    try:
        run(plan.spec, storage=f"sqlite:///{db}")
    except SearchFailed as exc:  # accepted, but no trial could succeed: said, and recorded as failed
        assert "csv/" in str(exc)
        assert [s.status for s in searches(storage=f"sqlite:///{db}")] == ["failed"]
        return
    assert len(best(storage=f"sqlite:///{db}")) == 1


# -- the cases the issue lists ----------------------------------------------------------------------


def _spec(tmp_path: Path, search: str = "", extra: str = "", task: str = 'dataset = "iris"') -> Path:
    path = tmp_path / "s.toml"
    path.write_text(
        f'[search]\nname = "hostile"\nn_trials = 1\nstrategies = ["linear"]\n{search}\n{extra}\n'
        f'[[tasks]]\nsource = "sklearn"\n{task}\n'
    )
    return path


def _refused(spec: Path, key: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        resolve(load_spec(spec), HOST)
    assert f"{spec}: {key}" in str(info.value), str(info.value)
    assert words in str(info.value)


def test_a_spec_that_is_not_utf8_is_refused_naming_the_file(tmp_path: Path) -> None:
    spec = tmp_path / "latin1.toml"
    spec.write_bytes('[search]\nname = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(SpecError, match=r"latin1\.toml: not UTF-8 text"):
        load_spec(spec)


def test_sampler_arguments_of_the_wrong_type_are_refused_before_any_trial(tmp_path: Path) -> None:
    _refused(
        _spec(tmp_path, extra='[sampler]\nname = "tpe"\nn_startup_trials = "10"'), "sampler", "TypeError"
    )


def test_pruner_arguments_that_fail_only_on_use_are_refused_before_any_trial(tmp_path: Path) -> None:
    _refused(
        _spec(tmp_path, extra='[pruner]\nname = "hyperband"\nreduction_factor = 1'),
        "pruner",
        "ZeroDivisionError",
    )


def test_a_meta_search_refuses_a_sampler_that_fails_on_a_trial(tmp_path: Path) -> None:
    spec = tmp_path / "m.toml"
    spec.write_text(
        '[search]\nname = "m"\nmode = "meta"\n[family]\nname = "sinusoid"\n'
        '[sampler]\nname = "tpe"\nn_startup_trials = "10"\n'
    )
    _refused(spec, "sampler", "TypeError")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_refused(tmp_path: Path) -> None:
    _refused(_spec(tmp_path, 'device = "cuda"'), "search.device", "needs a CUDA GPU")


def test_absurd_thread_counts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"search\.threads: must be an integer from 0"):
        load_spec(_spec(tmp_path, "threads = 100000"))


def test_more_folds_than_rows_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "few.csv"
    csv.write_text("y,a\n" + "".join(f"{i % 2},{i}\n" for i in range(12)))
    spec = _spec(
        tmp_path,
        extra='[evaluation]\nvalidation = "kfold"\nfolds = 20',
        task='path = "few.csv"\ntarget = "y"',
    )
    spec.write_text(spec.read_text().replace('source = "sklearn"', 'source = "csv"'))
    _refused(spec, "tasks[0]", "evaluation.folds = 20")


def test_values_near_the_float_limit_are_refused_naming_the_column(tmp_path: Path) -> None:
    csv = tmp_path / "huge.csv"
    csv.write_text("y,small,huge\n" + "".join(f"{i % 2},{i},{1e308 if i == 3 else i}\n" for i in range(30)))
    spec = _spec(tmp_path, task='path = "huge.csv"\ntarget = "y"')
    spec.write_text(spec.read_text().replace('source = "sklearn"', 'source = "csv"'))
    _refused(spec, "tasks[0]", "column 'huge'")
    assert not (tmp_path / "stratagem.db").exists()


@pytest.mark.parametrize("name", ["x" * 101, "a\nb", "a/b", "[red]x[/]", "ok\n"])
def test_names_are_checked_for_length_and_characters_at_spec_time(tmp_path: Path, name: str) -> None:
    spec = tmp_path / "n.toml"
    spec.write_text(f'[search]\nname = {json.dumps(name)}\n[[tasks]]\nsource = "sklearn"\ndataset = "iris"\n')
    with pytest.raises(SpecError, match=r"search\.name"):
        load_spec(spec)


def test_stored_text_reaches_the_terminal_escaped(sqlite_url: str, make_spec: Any) -> None:
    run(make_spec("demo", ("iris",), n_trials=1), storage=sqlite_url)
    from sqlalchemy import create_engine, text

    engine = create_engine(sqlite_url)
    with engine.begin() as conn:  # names written by an older version or another tool
        conn.execute(text("UPDATE stratagem_search_tasks SET key = :k"), {"k": "[/]\x1b[31mred"})
        conn.execute(text("UPDATE stratagem_searches SET name = :n"), {"n": "[bold]x[/"})
    engine.dispose()
    result = CliRunner().invoke(cli, ["best", "--storage", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "[/]" in result.output
    assert printable("a\x1b[2Jb\x07") == "a[2Jb"


def test_best_json_is_valid_json_and_lists_failures(tmp_path: Path, sqlite_url: str, make_spec: Any) -> None:
    plugin = tmp_path / "flaky.py"
    plugin.write_text(
        "import engine\nfrom plugins.strategies import LinearModel\n\n"
        "class Flaky(LinearModel):\n    name = 'flaky'\n    calls = 0\n\n"
        "    def build(self, info):\n        Flaky.calls += 1\n"
        "        if Flaky.calls == 1:\n            raise RuntimeError('first build fails')\n"
        "        return super().build(info)\n\n"
        "@engine.hookimpl\ndef stratagem_register_strategies(registry):\n    registry.add(Flaky)\n"
    )
    run(
        make_spec("flaky", ("iris",), n_trials=2, strategies=("flaky",), plugins=(str(plugin),)),
        storage=sqlite_url,
    )
    (fail,) = failures(storage=sqlite_url)
    assert fail.failed == 1 and "first build fails" in fail.reasons[0]
    result = CliRunner().invoke(cli, ["best", "--storage", sqlite_url, "--json"])
    data = json.loads(result.output, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert data["failures"][0]["failed"] == 1 and len(data["best"]) == 1
    study = optuna.load_study(study_name="flaky/iris", storage=sqlite_url)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 2
    tables = CliRunner().invoke(cli, ["best", "--storage", sqlite_url])
    assert "first build fails" in tables.output


def test_passwords_are_masked() -> None:
    assert (
        mask_password("postgresql+psycopg://me:s3cr@t@db.example/x")
        == "postgresql+psycopg://me:***@db.example/x"
    )
    assert mask_password("sqlite:///a.db") == "sqlite:///a.db"
    assert (  # a password may hold '/' (SQLAlchemy reads it so): it is masked all the same
        mask_password("postgresql+psycopg://postgres:Pa/55Secret@127.0.0.1:5432/db")
        == "postgresql+psycopg://postgres:***@127.0.0.1:5432/db"
    )
    assert mask_password("sqlite:///we@home:1.db") == "sqlite:///we@home:1.db"


def test_a_module_beside_the_spec_does_not_shadow_an_installed_package(tmp_path: Path) -> None:
    (tmp_path / "rich.py").write_text("raise ImportError('the local rich.py was imported')\n")
    (tmp_path / "myplugin.py").write_text(
        "import rich.console\nfrom engine.plugin import hookimpl\n\n"
        "@hookimpl\ndef stratagem_register_strategies(registry):\n    pass\n"
    )
    spec = _spec(tmp_path, 'plugins = ["myplugin"]')
    code = (
        "import sys; from engine.spec import load_spec; from engine.plugin import PluginHost\n"
        f"s = load_spec({str(spec)!r}); PluginHost.load(tuple(s.plugins), base_dir=s.base_dir)\n"
        "import rich; print(rich.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert str(tmp_path) not in out.stdout


def test_toml_helper_writes_what_toml_reads() -> None:
    assert tomllib.loads(f"a = {_toml_value(['x', 1.5, True])}")["a"] == ["x", 1.5, True]


def test_cli_refusals_print_no_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_bytes(b"\xff\xfe[search]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "run", str(spec), "--storage", f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "bad.toml" in proc.stderr
    assert not (tmp_path / "x.db").exists()


def test_errors_are_stratagem_errors() -> None:
    assert issubclass(SearchFailed, StratagemError)


@pytest.mark.parametrize(
    ("changes", "key"), [({"seed": 2**32}, "search.seed"), ({"n_trials": 0}, "search.n_trials")]
)
def test_a_spec_built_in_code_gets_the_same_checks_as_a_file(changes: dict[str, int], key: str) -> None:
    spec = SearchSpec(name="code", tasks=(TaskSpec("sklearn", {"dataset": "iris"}),), strategies=("linear",))
    with pytest.raises(SpecError) as info:
        resolve(spec.replace(**changes), HOST)
    assert info.value.key == key


def test_a_spec_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    spec = tmp_path / "bom.toml"
    spec.write_bytes(_spec(tmp_path).read_bytes().replace(b"[search]", b"\xef\xbb\xbf[search]", 1))
    assert load_spec(spec).name == "hostile"


def test_absurd_adaptation_steps_are_refused(tmp_path: Path) -> None:
    spec = tmp_path / "m.toml"
    spec.write_text(
        '[search]\nname = "m"\nmode = "meta"\n[family]\nname = "sinusoid"\n[meta]\nsteps = [100000000]\n'
    )
    with pytest.raises(SpecError, match=r"meta\.steps: must be a non-empty list of integers from 0 to 10000"):
        load_spec(spec)


def test_an_unknown_evaluator_is_refused_naming_the_file_and_key(tmp_path: Path) -> None:
    _refused(
        _spec(tmp_path, extra='[evaluation]\nclassification = "nope"'), "evaluation.classification", "'nope'"
    )


@pytest.mark.parametrize("value", ["abc", "nan", "1e9", "0", "99999"])
def test_a_bad_heartbeat_setting_is_refused_before_any_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("STRATAGEM_HEARTBEAT", value)
    with pytest.raises(StratagemError, match=r"STRATAGEM_HEARTBEAT=.*whole number of seconds from 1 to 3600"):
        run(_spec(tmp_path), storage=f"sqlite:///{tmp_path / 'h.db'}")
    assert not (tmp_path / "h.db").exists()


WIDE_PLUGIN = """
import torch
import engine
from plugins.strategies import LinearModel

class Wide(LinearModel):
    name = "wide"

    def build(self, info):
        return torch.nn.Linear(info.n_features, info.n_outputs + 3)

@engine.hookimpl
def stratagem_register_strategies(registry):
    registry.add(Wide)
"""


def test_a_strategy_whose_model_has_the_wrong_output_width_fails_its_trials_saying_so(tmp_path: Path) -> None:
    (tmp_path / "wide.py").write_text(WIDE_PLUGIN)
    spec = _spec(tmp_path, 'plugins = ["wide.py"]').read_text().replace('["linear"]', '["wide"]')
    (tmp_path / "s.toml").write_text(spec)
    with pytest.raises(
        SearchFailed, match=r"build\(\) made a model whose output per row has shape \(6,\).*needs 3"
    ):
        run(tmp_path / "s.toml", storage=f"sqlite:///{tmp_path / 'w.db'}")


@pytest.mark.parametrize(
    "command",
    [
        ["report", "--out", "{bad}"],
        ["competence", "--search", "s", "--plot", "{bad}"],
        ["predict", "--search", "s", "--csv", "x.csv", "--out", "{bad}"],
    ],
)
@pytest.mark.parametrize("bad", ["missing/r.out", "", "a-file/r.out"])
def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(
    tmp_path: Path, command: list[str], bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    args = [a.replace("{bad}", bad) for a in command]
    result = CliRunner().invoke(cli, [*args, "--storage", f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code == 2, result.output
    assert "does not exist" in result.output or "is a folder" in result.output, result.output
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("[meta]\ntest_tasks = 1000000", "meta.test_tasks"),
        ("[competence]\nsteps = 100000", "competence.steps"),
    ],
)
def test_meta_budgets_beyond_reason_are_refused(tmp_path: Path, table: str, key: str) -> None:
    spec = tmp_path / "m.toml"
    spec.write_text(f'[search]\nname = "m"\nmode = "meta"\n[family]\nname = "sinusoid"\n{table}\n')
    with pytest.raises(SpecError, match=rf"{key}: must be an integer from"):
        load_spec(spec)


def test_a_task_named_after_its_file_gets_a_valid_name(tmp_path: Path) -> None:
    rows = "a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(12))
    (tmp_path / "-rf.csv").write_text(rows)
    (tmp_path / "..csv").write_text(rows + "12,0\n")  # other data: the same data twice is refused
    spec = _spec(tmp_path, task='path = "-rf.csv"\ntarget = "y"').read_text().replace('"sklearn"', '"csv"')
    spec += '[[tasks]]\nsource = "csv"\npath = "..csv"\ntarget = "y"\n'
    (tmp_path / "s.toml").write_text(spec)
    plan = resolve(load_spec(tmp_path / "s.toml"), HOST)
    assert [t.key for t in plan.tasks] == ["rf", "task"]


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("def oops(:\n", "bad.py line 1: "),
        ("raise SystemExit(3)\n", "it called exit(3)"),
        ("1 / 0\n", "ZeroDivisionError"),
    ],
)
def test_a_plugin_file_that_fails_on_import_is_one_line_naming_it(
    tmp_path: Path, source: str, words: str
) -> None:
    (tmp_path / "bad.py").write_text(source)
    result = CliRunner().invoke(cli, ["plugins", "--plugin", str(tmp_path / "bad.py")])
    assert result.exit_code == 2, result.output
    assert "bad.py' failed on import: " in result.output and words in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_plugin_registering_a_name_that_is_no_name_is_dropped_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "odd.py").write_text(WIDE_PLUGIN.replace('name = "wide"', 'name = "bad name/../x"'))
    host = PluginHost.load((str(tmp_path / "odd.py"),))
    assert "bad name/../x" not in host.strategies.names()
    (problem,) = [p for p in host.problems if "odd.py" in p.plugin]
    assert "use a letter, then letters, digits" in problem.message
