"""Profiles: declaration, overrides and the checks that refuse bad input."""

from pathlib import Path

import pytest

from ghost_optima.book import profiles
from ghost_optima.book.profiles import ConfigError

ROOT = Path(__file__).resolve().parents[1]

DECLARED = """
profiles: [full, quick]
notebooks:
  10_a:
    seed: {type: int, min: 0, value: 0, help: seed}
    lr: {type: float, min: 0.0, max: 1.0, full: 0.1, quick: 0.5}
    widths: {type: "list[int]", min: 1, value: [4, 8]}
    mode: {type: str, choices: [fast, slow], value: fast}
  20_b:
    seed: {type: int, min: 0, value: 3}
    plot: {type: bool, value: true}
"""


@pytest.fixture
def declared(tmp_path):
    path = tmp_path / "profiles.yml"
    path.write_text(DECLARED)
    return profiles.load(path)


def test_profiles_resolve_per_profile(declared):
    assert declared.resolve("full")["10_a"]["lr"] == 0.1
    assert declared.resolve("quick")["10_a"]["lr"] == 0.5
    assert declared.resolve("quick")["20_b"] == {"seed": 3, "plot": True}


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
    ],
)
def test_bad_overrides_are_named(declared, override, message):
    with pytest.raises(ConfigError, match=message):
        declared.resolve("full", [override])


def test_unknown_profile(declared):
    with pytest.raises(ConfigError, match="unknown profile 'nosuch'"):
        declared.resolve("nosuch")


def test_declarations_are_checked(tmp_path):
    path = tmp_path / "profiles.yml"
    path.write_text(
        "profiles: [full, quick]\nnotebooks:\n  10_a:\n"
        "    n: {type: int, min: 1, full: 0, quick: 2}\n"
    )
    with pytest.raises(ConfigError, match="below the minimum"):
        profiles.load(path)
    path.write_text("profiles: [full, quick]\nnotebooks:\n  10_a:\n    n: {type: int, full: 1}\n")
    with pytest.raises(ConfigError, match="no value for profile 'quick'"):
        profiles.load(path)


def test_parameters_cell_reads_literals_only():
    assert profiles.parameters_cell("a = 1  # one\nb = [1, 2]\nc = 'x'") == {
        "a": 1,
        "b": [1, 2],
        "c": "x",
    }
    with pytest.raises(ConfigError):
        profiles.parameters_cell("import os")


def test_the_projects_profiles_are_well_formed():
    declared = profiles.load(ROOT / "notebooks" / "profiles.yml")
    assert declared.names == ("full", "quick")
    for profile in declared.names:
        declared.resolve(profile)
