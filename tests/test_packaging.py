"""Packaging as the ecosystem expects: every import declared and pinned, one version, one
repository address, an MIT licence, and a CITATION.cff that validates (no network needed)."""

import ast
import datetime
import json
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import jsonschema
import jupytext
import yaml

import ghost_optima

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
# The Citation File Format 1.2.0 schema, as shipped by cffconvert (CC-BY-4.0,
# https://github.com/citation-file-format/citation-file-format), kept here so the check is offline.
CFF_SCHEMA = ROOT / "tests" / "data" / "citation-file-format-1.2.0.schema.json"


def canonical(requirement: str) -> str:
    """The normalised distribution name of a requirement string (``My_Pkg[x]>=1`` -> my-pkg)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(*extras: str) -> set[str]:
    groups = [PROJECT["dependencies"], *(PROJECT["optional-dependencies"][e] for e in extras)]
    return {canonical(r) for group in groups for r in group} - {"ghost-optima"}


def top_level_imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def imports_under(folder: str) -> dict[str, set[str]]:
    """Third-party top-level imports of the Python files (and notebooks) under ``folder``."""
    found: dict[str, set[str]] = {}
    local = {path.stem for path in (ROOT / folder).rglob("*.py")}  # sibling modules, not packages
    for path in sorted((ROOT / folder).rglob("*")):
        if path.suffix == ".py":
            source = path.read_text(encoding="utf-8")
        elif path.suffix == ".md" and folder == "notebooks":
            source = jupytext.writes(jupytext.read(path), fmt="py:percent")
            source = re.sub(r"(?m)^\s*[%!].*$", "", source)  # magics are not Python
        else:
            continue
        for name in top_level_imports(source):
            if name not in sys.stdlib_module_names | local and name != "ghost_optima":
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def undeclared(folder: str, allowed: set[str]) -> list[str]:
    distributions = metadata.packages_distributions()
    missing = []
    for module, files in imports_under(folder).items():
        names = {canonical(d) for d in distributions.get(module, [])}
        if not names:
            missing.append(f"{module} (not installed; imported by {sorted(files)})")
        elif not names & allowed:
            missing.append(f"{module} -> {sorted(names)} (imported by {sorted(files)[:2]})")
    return missing


def test_every_import_of_the_package_notebooks_and_benchmarks_is_a_dependency():
    for folder in ("src", "notebooks", "benchmarks"):
        assert not undeclared(folder, declared()), folder


def test_every_import_of_the_tests_comes_with_the_test_extra():
    assert not undeclared("tests", declared("test"))


def test_the_scan_sees_imports():
    assert {"yaml", "torch", "threadpoolctl"} <= set(imports_under("src")) | set(
        imports_under("notebooks")
    )


def test_every_declared_dependency_is_pinned_in_the_lock():
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pinned = {canonical(line) for line in lines if "==" in line and not line.startswith("#")}
    assert declared("test", "dev") <= pinned, sorted(declared("test", "dev") - pinned)
    assert PROJECT["optional-dependencies"]["dev"][0] == "ghost-optima[test]"


def test_version_is_written_once():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    attr = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "ghost_optima.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", ghost_optima.__version__)
    assert metadata.version("ghost-optima") == ghost_optima.__version__


def repository_url() -> str:
    """The one place the repository's address is set: the book's configuration."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"]["url"].rstrip("/")


def test_repository_address_agrees_everywhere():
    url = repository_url()
    urls = PROJECT["urls"]
    assert urls["Repository"] == urls["Homepage"] == url
    assert urls["Issues"] == f"{url}/issues"
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["repository-code"] == url


def test_licence_is_mit_and_metadata_complete():
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert PROJECT["authors"] == [{"name": "Ghost Optima contributors"}]
    assert "Programming Language :: Python :: 3.11" in PROJECT["classifiers"]
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # PEP 639


def as_json(value):
    """YAML dates as the ISO strings the schema expects."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value.isoformat() if isinstance(value, datetime.date) else value


def test_citation_cff_is_valid_and_cites_the_paper():
    schema = json.loads(CFF_SCHEMA.read_text(encoding="utf-8"))
    cff = as_json(yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8")))
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(cff)]
    assert not errors, errors
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    paper = cff["references"][0]
    assert paper["title"].startswith("Permutative redundancy and uncertainty of the objective")
    assert paper["authors"][0]["family-names"] == "Glukhov" and paper["year"] == 2024
    assert "arXiv:2411.07008" in [i["value"] for i in paper["identifiers"]]


def test_the_schema_check_catches_a_bad_file():
    schema = json.loads(CFF_SCHEMA.read_text(encoding="utf-8"))
    bad = {"cff-version": "1.2.0", "message": "cite", "title": "x", "authors": [{"nme": "y"}]}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(bad))
