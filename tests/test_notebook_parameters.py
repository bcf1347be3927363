"""A setting a reviewer could change is a declared parameter, and `ghost-optima params` lists it."""

import ast
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest
from papermill.translators import PythonTranslator

from ghost_optima.book.build import check_notebooks, profiles
from ghost_optima.book.verdicts import claims

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = profiles.notebook_paths(ROOT / "notebooks")

# Top-level `NAME = <number>` lines outside the parameters cell that are not settings. Each one
# says why; anything else of that form must be a declared parameter.
NOT_SETTINGS = {
    # the floor at which exact zeros are drawn on a log axis: presentation, no result depends on it
    ("20_critical_points", "floor"),
    # a running maximum that the following loop updates, started at zero: not a setting
    ("60_reordering", "orbit_collapse_max_diff"),
}


def cells(path: Path) -> tuple[str, list[str]]:
    """The parameters cell's source and the sources of the other code cells."""
    notebook = jupytext.read(path)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    tagged = [c.source for c in code if "parameters" in c.metadata.get("tags", [])]
    others = [c.source for c in code if "parameters" not in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: one cell tagged 'parameters'"
    return tagged[0], others


def assigned_names(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def listed_parameters(profile: str) -> dict[str, dict[str, list[str]]]:
    """``ghost-optima params`` parsed: notebook -> name -> [type, value and help]."""
    done = subprocess.run(
        [sys.executable, "-m", "ghost_optima.book.build.cli", "--root", str(ROOT), "params"]
        + ["--profile", profile],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    listed: dict[str, dict] = {}
    for line in done.stdout.splitlines():
        if not line.startswith(" "):
            notebook = line.strip()
            listed[notebook] = {}
        else:
            name, kind, rest = line.split(maxsplit=2)
            listed[notebook][name] = [kind, rest]
    return listed


@pytest.mark.parametrize("profile", ["quick", "full"])
def test_params_lists_exactly_what_each_parameters_cell_assigns(profile):
    listed = listed_parameters(profile)
    assert list(listed) == list(NOTEBOOKS)
    declared = profiles.load(ROOT / "notebooks")
    for stem, path in NOTEBOOKS.items():
        parameters, _ = cells(path)
        assert set(listed[stem]) == assigned_names(parameters), stem
        for name, (kind, rest) in listed[stem].items():
            param = declared.notebooks[stem][name]
            assert kind == param.type and rest.endswith(param.help) and param.help, (stem, name)


def test_papermill_reads_the_same_declarations():
    """The cell form is papermill's: its inspector finds the same names, types and help."""
    for stem, path in NOTEBOOKS.items():
        parameters, _ = cells(path)
        ours = profiles.parameters_cell(parameters)
        theirs = PythonTranslator.inspect({"source": parameters})
        assert [p.name for p in theirs] == list(ours), stem
        for p in theirs:
            assert (p.inferred_type_name, p.help) == (ours[p.name]["type"], ours[p.name]["help"])
            assert ast.literal_eval(p.default) == ours[p.name]["value"], (stem, p.name)


def numeric_constants(source: str) -> list[str]:
    """Top-level ``NAME = <number literal>`` assignments (``-1`` and ``+2.5`` included)."""
    code = "\n".join(
        line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))
    )
    found = []
    for node in ast.parse(code).body:
        if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
            continue
        value = node.value
        if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub | ast.UAdd):
            value = value.operand
        number = isinstance(value, ast.Constant) and type(value.value) in (int, float, complex)
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if number:
            found += [t.id for t in targets if isinstance(t, ast.Name)]
    return found


def test_no_setting_hides_outside_the_parameters_cell():
    found = set()
    for stem, path in NOTEBOOKS.items():
        _, others = cells(path)
        found |= {(stem, name) for source in others for name in numeric_constants(source)}
    hidden = sorted(found - NOT_SETTINGS)
    assert not hidden, f"declare these in the parameters cell: {hidden}"
    assert NOT_SETTINGS <= found, f"stale exceptions: {sorted(NOT_SETTINGS - found)}"


def test_the_scan_finds_what_it_should():
    assert numeric_constants("momentum = 0.9\nx = -1\ny = f(2)\nz: int = 3\nok = True") == [
        "momentum",
        "x",
        "z",
    ]
    assert numeric_constants("for i in range(3):\n    a = 1\n%matplotlib inline") == []


def test_the_notebook_lint_names_a_malformed_parameters_cell(tmp_path):
    header = "---\nkernelspec:\n  display_name: Python 3\n  language: python\n"
    header += "  name: python3\n---\n"
    path = tmp_path / "10_x.md"
    path.write_text(header + "```{code-cell} ipython3\n:tags: [parameters]\nn = 3  # count\n```\n")
    assert any("only 'name: type = literal  # help'" in p for p in check_notebooks.problems(path))
    path.write_text(header + "```{code-cell} ipython3\n:tags: [parameters]\nn: int = 3  # n\n```\n")
    assert check_notebooks.problems(path) == []


def test_the_notebook_lint_refuses_a_thread_count_set_in_a_chapter(tmp_path):
    header = "---\nkernelspec:\n  display_name: Python 3\n  language: python\n"
    header += "  name: python3\n---\n"
    params = "```{code-cell} ipython3\n:tags: [parameters]\nn: int = 3  # n\n```\n"
    path = tmp_path / "10_x.md"
    path.write_text(
        header + params + "```{code-cell} ipython3\nimport torch\n\ntorch.set_num_threads(1)\n```\n"
    )
    assert any("sets thread counts (set_num_threads)" in p for p in check_notebooks.problems(path))
    path.write_text(
        header + params + "```{code-cell} ipython3\nimport torch\n\ntorch.ones(n)\n```\n"
    )
    assert check_notebooks.problems(path) == []


def rule_bars(rule) -> set[float]:
    """The numbers a rule compares its figures with, other than 0 and 1 (signs and counts)."""
    bars = set()
    for expr in (rule.supported, rule.not_supported):
        for node in ast.walk(claims.parse_expression(expr)):
            if isinstance(node, ast.Constant) and type(node.value) in (int, float):
                bars.add(float(node.value))
    return bars - {0.0, 1.0}


def typed_bars(source: str, bars: set[float]) -> list[str]:
    """The comparisons in ``source`` against a literal number that is one of ``bars``."""
    source = "\n".join(line for line in source.splitlines() if not line.startswith("%"))
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        for side in (node.left, *node.comparators):
            sign = -1 if isinstance(side, ast.UnaryOp) and isinstance(side.op, ast.USub) else 1
            literal = side.operand if sign == -1 else side
            if isinstance(literal, ast.Constant) and type(literal.value) in (int, float):
                if sign * float(literal.value) in bars:
                    found.append(ast.unparse(node))
    return found


# Comparisons with a number that equals a rule's bar but is not one. Each says why.
NOT_BARS = {
    # 'most' of the predicted trace is more than half of it: a word, not T4's or T5's 0.5
    ("30_sgd_stationary", "flat_half > 0.5"),
}


def test_no_chapter_types_a_bar_of_its_rule():
    """Issue 22: a chapter reads its rule's bars from the registry (conditions.threshold), so a
    rule changed in claims.yml cannot leave a chapter comparing with the old number."""
    typed = set()
    for claim in claims.registry().values():
        if claim.rule is None or claim.notebook not in NOTEBOOKS:
            continue
        _, others = cells(NOTEBOOKS[claim.notebook])
        bars = rule_bars(claim.rule)
        typed |= {(claim.notebook, text) for source in others for text in typed_bars(source, bars)}
    assert not typed - NOT_BARS, f"read these bars with conditions.threshold: {typed - NOT_BARS}"
    assert NOT_BARS <= typed, f"stale exceptions: {sorted(NOT_BARS - typed)}"


def test_the_bar_scan_finds_what_it_should():
    bars = {0.2, 3.0}
    assert typed_bars("if x.hi < 0.2:\n    pass\ny = a > -3.0 or b == 3", {0.2, -3.0, 3.0}) == [
        "x.hi < 0.2",
        "a > -3.0",
        "b == 3",
    ]
    assert typed_bars("z = 0.2 * w\nif w < 0.3:\n    pass\n%time f()", bars) == []
