"""Any value of any parameter of any notebook: refused with exit status 2 before anything runs,
or valid by the declared type and bounds. nan, inf and -inf are never valid floats."""

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.book.build import pipeline, profiles
from ghost_optima.book.build.profiles import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DECLARED = profiles.load(ROOT / "notebooks")
PARAMETERS = [
    (stem, name, param)
    for stem, declared in DECLARED.notebooks.items()
    for name, param in declared.items()
]
FLOATS = [(stem, name) for stem, name, p in PARAMETERS if p.type in ("float", "list[float]")]
NONFINITE = ["nan", "inf", "-inf", "NaN", "-Infinity", "1e400"]

NASTY = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 10**30, -(10**30), -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**40), max_value=10**40),
)


def expected(param: profiles.Parameter, value):
    """What a correct check makes of ``value``: the parsed value, or None for a refusal."""
    kind = param.type.removeprefix("list[").removesuffix("]")
    if kind == "int" and not isinstance(value, int):
        return None
    if kind in ("bool", "str") and (kind == "bool" or param.choices is not None):
        return None  # no number is a bool or one of the string choices
    if kind == "str":
        return str(value)
    if kind == "float":
        value = float(value)
        if not (math.isfinite(value) or param.nonfinite):
            return None
    if (param.min is not None and value < param.min) or (
        param.max is not None and value > param.max
    ):
        return None
    return [value] if param.type.startswith("list[") else value


@settings(max_examples=400, deadline=None)
@given(parameter=st.sampled_from(PARAMETERS), value=NASTY)
def test_every_parameter_refuses_or_accepts_by_its_bounds(parameter, value):
    stem, name, param = parameter
    override = f"{stem}.{name}={value}"
    want = expected(param, value)
    if want is None:
        with pytest.raises(ConfigError):
            DECLARED.resolve("quick", [override])
    else:
        got = DECLARED.resolve("quick", [override])[stem][name]
        assert got == want and type(got) is type(want)


@pytest.mark.parametrize("text", NONFINITE)
def test_no_float_parameter_takes_a_nonfinite_value_and_nothing_runs(text, monkeypatch):
    """Through ``pipeline.build``: refused while planning, before any notebook or the book."""

    def must_not_run(*args, **kwargs):
        raise AssertionError("work started despite bad input")

    monkeypatch.setattr(profiles, "load", lambda folder: DECLARED)
    monkeypatch.setattr(pipeline, "_exclusive", must_not_run)
    monkeypatch.setattr(pipeline, "run_notebook", must_not_run)
    monkeypatch.setattr(pipeline, "render", must_not_run)
    for stem, name in FLOATS:
        if DECLARED.notebooks[stem][name].nonfinite:
            continue
        for override in (f"{stem}.{name}={text}", f"{stem}.{name}=0.5,{text}"):
            if override.endswith(f",{text}") and not name.endswith("s"):
                continue
            with pytest.raises(ConfigError, match="not a finite number|cannot read"):
                pipeline.build(pipeline.Project(ROOT), "quick", overrides=[override], log=None)


@pytest.fixture
def project_copy(tmp_path) -> pipeline.Project:
    """The project's notebooks alone: enough for the checks, nothing built yet."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    return pipeline.Project(tmp_path)


def refused_cli(project: pipeline.Project, *args) -> subprocess.CompletedProcess:
    """The CLI run on ``project``, checked to have started no work: no notebook was run, no
    cluster started, nothing written where results or the book go (a refusal comes first)."""
    done = subprocess.run(
        [sys.executable, "-m", "ghost_optima.book.build.cli", "--root", str(project.root), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    said = done.stdout + done.stderr
    assert "running" not in said and "cluster" not in said, said
    assert not (project.root / "results").exists()
    assert not (project.root / "_build").exists()
    return done


def test_cli_refuses_nan_from_the_command_line_before_any_work(project_copy):
    done = refused_cli(project_copy, "build", "--profile", "quick", "--set", "momentum=nan")
    assert done.returncode == 2, done.stderr
    assert "--set momentum: nan is not a finite number" in done.stderr


def test_cli_refuses_inf_from_profiles_yml_before_any_work(project_copy):
    path = project_copy.notebooks / "profiles.yml"
    text = path.read_text()
    bad = "    grad_tol: {min: 0.0, quick: .inf}\n"  # the first grad_tol is 20_critical_points'
    path.write_text(text.replace("    grad_tol: {min: 0.0}\n", bad, 1))
    assert bad in path.read_text()
    done = refused_cli(project_copy, "build", "--profile", "quick")
    assert done.returncode == 2, done.stderr
    assert "20_critical_points.grad_tol (quick): inf is not a finite number" in done.stderr
