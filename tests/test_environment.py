"""The environment files agree, and the lock pins what the project needs."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def lock_pins() -> set[str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_environment_yml_mirrors_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) - {"-e ."} == lock_pins()
    assert "python=3.11" in env["dependencies"]


def test_lock_pins_exactly_and_includes_the_required_stack():
    pins = dict(pin.split("==") for pin in lock_pins())
    assert all(version for version in pins.values())
    names = {name.lower().replace("_", "-") for name in pins}
    required = {
        "jupyter-book",
        "papermill",
        "torch",
        "seaborn",
        "pandas",
        "scipy",
        "scikit-learn",
        "mnist1d",
        "jupytext",
        "ruff",
        "pytest",
        "hypothesis",
        "jsonschema",
        "import-linter",
        "threadpoolctl",
        "nbformat",
        "myst-nb",
        "ipython",
    }
    assert required <= names
    assert pins["jupyter-book"] == "1.0.4.post1" and pins["torch"] == "2.13.0"
    assert pins["papermill"].startswith("2.7.")
