"""The shape of the code: small functions and modules, and the import contracts kept.

No exceptions are listed here on purpose: a function that needs more than ``MAX_PARAMETERS``
takes a config object instead, and a module past ``MAX_LINES`` splits by idea.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "ghost_optima"
MAX_PARAMETERS = 8  # self and cls not counted, nor *args and **kwargs (as pylint and ruff do)
MAX_LINES = 400


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> int:
    args = node.args
    named = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if method and named and named[0].arg in ("self", "cls"):
        named = named[1:]
    return len(named)


def wide_functions(source: str, where: str) -> list[str]:
    found = []

    def visit(node, in_class: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                count = parameter_count(child, in_class)
                if count > MAX_PARAMETERS:
                    found.append(f"{where}:{child.lineno} {child.name}() takes {count}")
                visit(child, False)
            else:
                visit(child, isinstance(child, ast.ClassDef) or (in_class and False))

    visit(ast.parse(source), False)
    return found


def test_no_function_takes_more_than_eight_parameters():
    found = []
    for path in modules():
        found += wide_functions(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, "functions with more than 8 parameters:\n  " + "\n  ".join(found)


def test_no_module_is_longer_than_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_counter_counts_what_it_should():
    source = (
        "def f(a, b, /, c, d, *args, e, f, g, h, i, **kw): pass\n"
        "class C:\n"
        "    def m(self, a, b, c, d, e, f, g, h): pass\n"
        "    @classmethod\n"
        "    def n(cls, a, b, c, d, e, f, g, h, i): pass\n"
        "def g(self, a, b, c, d, e, f, g, h): pass\n"
    )
    assert wide_functions(source, "x") == [
        "x:1 f() takes 9",
        "x:5 n() takes 9",
        "x:6 g() takes 9",
    ]


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pythonpath)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_are_kept():
    done = lint_imports(ROOT, ROOT / "src")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 kept, 0 broken" in done.stdout


def planted_contracts(tmp_path: Path, where: str, source: str) -> subprocess.CompletedProcess:
    """lint-imports on a copy of the package with one planted module."""
    shutil.copytree(PACKAGE, tmp_path / "src" / "ghost_optima")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "src" / "ghost_optima" / where).write_text(source)
    return lint_imports(tmp_path, tmp_path / "src")


def test_import_contracts_catch_a_science_module_importing_the_book(tmp_path):
    planted = "from ghost_optima.book.verdicts import claims\n"
    done = planted_contracts(tmp_path, "core/planted.py", planted)
    assert done.returncode != 0
    assert "ghost_optima.core.planted -> ghost_optima.book.verdicts.claims" in done.stdout


def test_import_contracts_catch_a_lower_layer_importing_a_higher_one(tmp_path):
    done = planted_contracts(
        tmp_path, "symmetry/planted.py", "from ghost_optima.sgd import chains\n"
    )
    assert done.returncode != 0
    assert "ghost_optima.symmetry.planted -> ghost_optima.sgd.chains" in done.stdout


def test_every_module_lives_in_a_topic_subpackage():
    """The architecture is visible on disk: nothing but ``__init__`` directly under the package."""
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside a topic subpackage: {loose}"
