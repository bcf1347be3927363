"""Parameters: declared in the cell, bounded per profile, and the checks that refuse bad input."""

from pathlib import Path

import pytest
import yaml

from ghost_optima.book.build import profiles
from ghost_optima.book.build.profiles import ConfigError

ROOT = Path(__file__).resolve().parents[1]

CELLS = {
    "10_a": (
        "seed: int = 0  # seed\n"
        "lr: float = 0.1  # learning rate\n"
        "widths: list[int] = [4, 8]  # widths\n"
        'mode: str = "fast"  # mode\n'
    ),
    "20_b": "seed: int = 3  # seed\nplot: bool = True  # draw it\n",
}
BOUNDS = """
profiles: [full, quick]
notebooks:
  10_a:
    seed: {min: 0}
    lr: {min: 0.0, max: 1.0, quick: 0.5}
    widths: {min: 1}
    mode: {choices: [fast, slow]}
  20_b:
    seed: {min: 0}
"""


def declare(bounds: str = BOUNDS, cells: dict = CELLS) -> profiles.Profiles:
    return profiles.declare(yaml.safe_load(bounds), cells)


@pytest.fixture
def declared():
    return declare()


def test_profiles_resolve_per_profile(declared):
    assert declared.resolve("full")["10_a"]["lr"] == 0.1
    assert declared.resolve("quick")["10_a"]["lr"] == 0.5
    assert declared.resolve("quick")["20_b"] == {"seed": 3, "plot": True}
    lr = declared.notebooks["10_a"]["lr"]
    assert (lr.type, lr.help, lr.min, lr.max) == ("float", "learning rate", 0.0, 1.0)


def test_overrides_apply_to_every_notebook_or_one(declared):
    both = declared.resolve("full", ["seed=7"])
    assert both["10_a"]["seed"] == 7 and both["20_b"]["seed"] == 7
    one = declared.resolve("full", ["20_b.seed=9", "widths=2,3", "plot=false", "mode=slow"])
    assert one["10_a"]["seed"] == 0 and one["20_b"]["seed"] == 9
    assert one["10_a"]["widths"] == [2, 3] and one["20_b"]["plot"] is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("nosuch=1", "unknown parameter 'nosuch'"),
        ("lr=abc", "cannot read 'abc' as float"),
        ("seed=1.5", "cannot read '1.5' as int"),
        ("lr=2", "above the maximum"),
        ("seed=-1", "below the minimum"),
        ("widths=4,0", "below the minimum"),
        ("mode=medium", "not one of"),
        ("plot=yes", "as bool"),
        ("nb.seed=1", "unknown notebook 'nb'"),
        ("seed", "expected KEY=VALUE"),
        ("lr=nan", "not a finite number"),
        ("lr=inf", "not a finite number"),
        ("lr=-inf", "not a finite number"),
    ],
)
def test_bad_overrides_are_named(declared, override, message):
    with pytest.raises(ConfigError, match=message):
        declared.resolve("full", [override])


def test_unknown_profile(declared):
    with pytest.raises(ConfigError, match="unknown profile 'nosuch'"):
        declared.resolve("nosuch")


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ("    n: {min: 1, quick: 0}\n", r"below the minimum"),
        ("    n: {min: 5}\n", r"\(default in the cell\): 2 is below the minimum"),
        ("    n: {full: 3}\n", "the 'full' value is the default in the parameters cell"),
        ("    n: {maximum: 3}\n", r"unknown keys \['maximum'\]"),
        ("    other: {min: 0}\n", r"\['other'\] not declared in the notebook's parameters cell"),
        ("    x: {quick: .nan}\n", "not a finite number"),
        ("    x: {quick: .inf}\n", "not a finite number"),
        ("    x: {quick: -.inf}\n", "not a finite number"),
        ("    x: {quick: 1.0e+400}\n", "not a finite number"),
        ("    n: 3\n", "expected a mapping"),
    ],
)
def test_bounds_file_is_checked(bounds, message):
    cells = {"10_a": "n: int = 2  # count\nx: float = 0.5  # share\n"}
    with pytest.raises(ConfigError, match=message):
        declare("profiles: [full, quick]\nnotebooks:\n  10_a:\n" + bounds, cells)


def test_a_declared_nonfinite_float_may_be_infinite():
    cells = {"10_a": "x: float = 0.5  # share\n"}
    bounds = "profiles: [full, quick]\nnotebooks:\n  10_a:\n    x: {nonfinite: true}\n"
    declared = declare(bounds, cells)
    assert declared.resolve("full", ["x=inf"])["10_a"]["x"] == float("inf")


def test_bounds_for_a_notebook_that_does_not_exist_are_refused():
    with pytest.raises(ConfigError, match=r"names notebooks that do not exist: \['30_c'\]"):
        declare(BOUNDS + "  30_c:\n    seed: {min: 0}\n")


def test_a_notebook_without_bounds_takes_its_cell_as_is():
    declared = declare("profiles: [full, quick]\n", {"10_a": "n: int = 2  # count\n"})
    assert declared.resolve("quick") == {"10_a": {"n": 2}}


def test_parameters_cell_reads_typed_declarations():
    cell = 'a: int = 1  # one\nb: list[float] = [1, 2.5]  # two\nc: str = "x"  # three = 3\n'
    assert profiles.parameters_cell(cell) == {
        "a": {"type": "int", "value": 1, "help": "one"},
        "b": {"type": "list[float]", "value": [1, 2.5], "help": "two"},
        "c": {"type": "str", "value": "x", "help": "three = 3"},
    }


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("import os", "only 'name: type = literal  # help' lines"),
        ("a = 1  # untyped", "only 'name: type = literal  # help' lines"),
        ("a: int = 1", "no help comment"),
        ("a: complex = 1j  # odd", "unknown type 'complex'"),
        ("a: float = float('nan')  # not a literal", "must be a literal"),
        ("a: int = 1  # one\na: int = 2  # two", "declared twice"),
        ("a: int = (  # broken", "not valid Python"),
    ],
)
def test_parameters_cell_refuses_anything_else(cell, message):
    with pytest.raises(ConfigError, match=message):
        profiles.parameters_cell(cell)


def test_the_projects_parameters_are_well_formed():
    declared = profiles.load(ROOT / "notebooks")
    assert declared.names == ("full", "quick")
    for profile in declared.names:
        declared.resolve(profile)
    with_momentum = [nb for nb, params in declared.notebooks.items() if "momentum" in params]
    assert with_momentum
    for notebook in with_momentum:
        assert declared.notebooks[notebook]["momentum"].values == {"full": 0.9, "quick": 0.9}


def test_a_key_given_twice_in_profiles_yml_is_refused(tmp_path):
    (tmp_path / "10_a.md").write_text(
        "```{code-cell} ipython3\n:tags: [parameters]\nn: int = 2  # count\n```\n"
    )
    (tmp_path / "profiles.yml").write_text(
        "profiles: [full, quick]\nnotebooks:\n  10_a:\n    n: {quick: 1}\n    n: {min: 0}\n"
    )
    with pytest.raises(ConfigError, match=r"\['n'\] given twice"):
        profiles.load(tmp_path)
    (tmp_path / "profiles.yml").write_text("profiles: [full, quick]\nnotebooks:\n  10_a:\n")
    assert profiles.load(tmp_path).resolve("quick") == {"10_a": {"n": 2}}


def test_profile_settings_default_and_per_profile(declared):
    assert declared.setting("full", "threads") == 1
    assert declared.setting("quick", "replications") == 0  # none unless a profile asks
    given = declare(BOUNDS + "settings:\n  full: {threads: 2, replications: 4}\n")
    assert given.setting("full", "threads") == 2 and given.setting("full", "replications") == 4
    assert given.setting("quick", "replications") == 0
    with pytest.raises(ConfigError, match="unknown profile 'nosuch'"):
        given.setting("nosuch", "threads")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("  full: {threads: 0}", r"settings.full.threads: expected an integer >= 1, got 0"),
        ("  quick: {replications: -1}", r"settings.quick.replications: expected an integer >= 0"),
        ("  quick: {replications: 1.5}", r"expected an integer >= 0, got 1.5"),
        ("  full: {threads: true}", r"expected an integer >= 1, got True"),
        ("  full: {workers: 2}", r"settings.full: expected some of \['threads', 'replications'\]"),
        ("  nightly: {threads: 1}", r"settings: unknown profiles \['nightly'\]"),
    ],
)
def test_bad_profile_settings_are_refused(settings, message):
    with pytest.raises(ConfigError, match=message):
        declare(BOUNDS + "settings:\n" + settings + "\n")


def test_the_real_profiles_replicate_the_published_one_at_least_four_times():
    real = profiles.load(ROOT / "notebooks")
    assert real.setting(real.names[0], "replications") >= 4
    assert all(real.setting(name, "threads") >= 1 for name in real.names)
