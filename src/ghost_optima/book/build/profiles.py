"""Parameters: declared once in each notebook, bounded and varied per profile, checked first.

A notebook's parameters cell (the one cell tagged ``parameters``) declares every parameter the
notebook takes, one per line, with its type, its default and a help comment, in the form that
papermill's ``inspect_notebook`` reads::

    n_archs: int = 400  # random architectures tried for T1

The default is the value of the published profile. ``notebooks/profiles.yml`` lists the
profiles (the published one first) and, per notebook and parameter, only bounds and the values
of the other profiles where they differ from the default::

    profiles: [full, quick]
    notebooks:
      10_symmetry:
        n_archs: {min: 2, max: 100000, quick: 40}

Profile-level settings of the build, not parameters of any notebook, sit under ``settings``::

    settings:
      full: {threads: 1, replications: 4}

``threads`` fixes the torch, OpenMP and BLAS threads of every notebook run (recorded in
provenance; the number of workers never changes it), ``replications`` the number of re-seeded
runs of each claim notebook that the build adds for the ledger's robustness column.

Types are ``int``, ``float``, ``bool``, ``str`` and ``list[int]``/``list[float]``; ``min``,
``max`` and ``choices`` bound them, and a float must be finite (no ``nan``, ``inf``) unless its
entry says ``nonfinite: true``. An entry naming a parameter the cell does not declare is an
error. ``resolve`` applies ``--set`` overrides (``key=value`` for every notebook declaring
``key``, or ``notebook.key=value`` for one). Every problem raises ``ConfigError`` naming it,
before any work starts.
"""

import ast
import io
import math
import tokenize
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

SETTINGS = {"threads": (1, 1), "replications": (0, 0)}  # name -> (default, minimum)
TYPES = ("int", "float", "bool", "str", "list[int]", "list[float]")
BOUNDS = ("min", "max", "choices", "nonfinite")
NOTEBOOK_GLOB = "[0-9][0-9]_*.md"


class ConfigError(ValueError):
    """Bad input: unknown profile, notebook or parameter, wrong type, impossible value."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    help: str
    values: dict  # profile -> value
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    nonfinite: bool = False  # whether a float may be nan or infinite

    def check(self, value, where: str):
        """``value`` converted to this parameter's type, or ConfigError naming the problem."""
        kind = self.type
        if kind.startswith("list["):
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{where}: expected a non-empty list, got {value!r}")
            item = replace(self, type=kind[5:-1], values={})
            return [item.check(v, f"{where}[{i}]") for i, v in enumerate(value)]
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, int | float) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
        }[kind]
        if not ok:
            raise ConfigError(f"{where}: expected {kind}, got {value!r}")
        if kind == "float":
            value = float(value)
            if not (self.nonfinite or math.isfinite(value)):
                raise ConfigError(f"{where}: {value!r} is not a finite number")
        if self.min is not None and value < self.min:
            raise ConfigError(f"{where}: {value!r} is below the minimum {self.min}")
        if self.max is not None and value > self.max:
            raise ConfigError(f"{where}: {value!r} is above the maximum {self.max}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where}: {value!r} is not one of {list(self.choices)}")
        return value

    def parse(self, text: str, where: str):
        """Parse a command-line string (``4``, ``0.1``, ``true``, ``8,16,32``) and check it."""
        kind = self.type
        try:
            if kind.startswith("list["):
                value = [_scalar(kind[5:-1], part) for part in text.split(",")]
            else:
                value = _scalar(kind, text)
        except ValueError:
            raise ConfigError(f"{where}: cannot read {text!r} as {kind}") from None
        return self.check(value, where)


def _scalar(kind: str, text: str):
    text = text.strip()
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise ValueError(text)
        return lowered == "true"
    return text


@dataclass(frozen=True)
class Profiles:
    names: tuple[str, ...]
    notebooks: dict[str, dict[str, Parameter]]
    settings: dict[str, dict[str, int]] | None = None  # profile -> threads, replications

    def setting(self, profile: str, name: str) -> int:
        """A profile-level setting (``threads``, ``replications``), its default when not given."""
        self.check_profile(profile)
        return (self.settings or {}).get(profile, {}).get(name, SETTINGS[name][0])

    def check_profile(self, profile: str) -> None:
        if profile not in self.names:
            raise ConfigError(f"unknown profile {profile!r}; choose one of {list(self.names)}")

    def resolve(self, profile: str, overrides: list[str] = ()) -> dict[str, dict]:
        """Parameters of every notebook for ``profile`` with ``KEY=VALUE`` overrides applied."""
        self.check_profile(profile)
        params = {
            nb: {name: p.values[profile] for name, p in decl.items()}
            for nb, decl in self.notebooks.items()
        }
        for item in overrides:
            key, sep, text = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
            notebook, dot, name = key.rpartition(".")
            if dot and notebook not in self.notebooks:
                raise ConfigError(f"--set {item!r}: unknown notebook {notebook!r}")
            targets = [notebook] if dot else list(self.notebooks)
            targets = [nb for nb in targets if name in self.notebooks[nb]]
            if not targets:
                known = sorted({n for decl in self.notebooks.values() for n in decl})
                raise ConfigError(f"--set {item!r}: unknown parameter {name!r}; known: {known}")
            for nb in targets:
                params[nb][name] = self.notebooks[nb][name].parse(text, f"--set {key}")
        return params


def parameters_cell(source: str, where: str = "parameters cell") -> dict[str, dict]:
    """The declarations ``name: type = literal  # help`` of a parameters cell.

    Returns ``{name: {"type": ..., "value": ..., "help": ...}}`` in the cell's order; anything
    else in the cell (a statement, a missing type or help, an unknown type) is a ConfigError.
    """
    try:
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError) as err:
        raise ConfigError(f"{where}: not valid Python: {err}") from None
    comments = {
        t.start[0]: t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT
    }
    declared = {}
    for node in tree.body:
        line = ast.unparse(node)
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            raise ConfigError(f"{where}: only 'name: type = literal  # help' lines, got {line!r}")
        name, kind = node.target.id, ast.unparse(node.annotation)
        if kind not in TYPES:
            raise ConfigError(f"{where}: {name}: unknown type {kind!r}; use one of {TYPES}")
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError):
            raise ConfigError(f"{where}: {name}: the default must be a literal: {line!r}") from None
        help_text = comments.get(node.end_lineno, "")
        if not help_text:
            raise ConfigError(f"{where}: {name}: no help comment ('# what it is') on its line")
        if name in declared:
            raise ConfigError(f"{where}: {name} is declared twice")
        declared[name] = {"type": kind, "value": value, "help": help_text}
    return declared


def declare(raw, cells: dict[str, str], where: str = "profiles.yml") -> Profiles:
    """Profiles from the parsed ``profiles.yml`` and each notebook's parameters-cell source."""
    if not isinstance(raw, dict) or not raw.get("profiles") or set(raw) - {*TOP_KEYS}:
        raise ConfigError(
            f"{where}: expected the keys 'profiles' (a list), 'notebooks' and 'settings'"
        )
    names = tuple(raw["profiles"])
    settings = _settings(raw.get("settings"), names, where)
    entries = raw.get("notebooks") or {}
    stray = sorted(set(entries) - set(cells))
    if stray:
        raise ConfigError(f"{where} names notebooks that do not exist: {stray}")
    notebooks = {}
    for nb, source in cells.items():
        declared = parameters_cell(source, f"{nb}: parameters cell")
        bounds = entries.get(nb) or {}
        unknown = sorted(set(bounds) - set(declared))
        if unknown:
            raise ConfigError(
                f"{where}: {nb}: {unknown} not declared in the notebook's parameters cell "
                f"(it declares {list(declared)})"
            )
        notebooks[nb] = {
            name: _parameter(name, spec, bounds.get(name), names, f"{where}: {nb}.{name}")
            for name, spec in declared.items()
        }
    return Profiles(names=names, notebooks=notebooks, settings=settings)


TOP_KEYS = ("profiles", "notebooks", "settings")


def _settings(raw, names: tuple, where: str) -> dict[str, dict[str, int]]:
    """``settings: {profile: {threads: int >= 1, replications: int >= 0}}``, checked."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: settings: expected a mapping of profile to settings")
    stray = sorted(set(raw) - set(names))
    if stray:
        raise ConfigError(f"{where}: settings: unknown profiles {stray}; choose from {list(names)}")
    found = {}
    for profile in names:
        entry = raw.get(profile) or {}
        if not isinstance(entry, dict) or set(entry) - set(SETTINGS):
            raise ConfigError(
                f"{where}: settings.{profile}: expected some of {list(SETTINGS)}, got {entry!r}"
            )
        found[profile] = {}
        for name, (default, minimum) in SETTINGS.items():
            value = entry.get(name, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigError(
                    f"{where}: settings.{profile}.{name}: expected an integer >= {minimum}, "
                    f"got {value!r}"
                )
            found[profile][name] = value
    return found


def _parameter(name: str, spec: dict, entry, names: tuple, where: str) -> Parameter:
    """One declared parameter with its bounds and a checked value for every profile."""
    entry = {} if entry is None else entry
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping of bounds and profile values")
    published, others = names[0], names[1:]
    if published in entry:
        raise ConfigError(
            f"{where}: the {published!r} value is the default in the parameters cell; "
            "change it there"
        )
    unknown = sorted(set(entry) - set(BOUNDS) - set(others))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {[*BOUNDS, *others]}")
    choices = entry.get("choices")
    param = Parameter(
        name=name,
        type=spec["type"],
        help=spec["help"],
        values={},
        min=entry.get("min"),
        max=entry.get("max"),
        choices=tuple(choices) if choices is not None else None,
        nonfinite=bool(entry.get("nonfinite", False)),
    )
    values = {published: param.check(spec["value"], f"{where} (default in the cell)")}
    for profile in others:
        values[profile] = param.check(entry.get(profile, spec["value"]), f"{where} ({profile})")
    return replace(param, values=values)


def notebook_paths(folder: Path) -> dict[str, Path]:
    """The notebooks of a book, ``NN_name.md``, by name in build order."""
    return {p.stem: p for p in sorted(Path(folder).glob(NOTEBOOK_GLOB))}


def parameters_source(path: Path) -> str:
    """The source of a notebook's one cell tagged ``parameters``."""
    import jupytext

    cells = [c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ConfigError(
            f"{path.name}: needs exactly one cell tagged 'parameters', has {len(cells)}"
        )
    return cells[0].source


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice is an error, not a silent override."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        twice = sorted({str(k) for k in keys if keys.count(k) > 1})
        if twice:
            raise yaml.constructor.ConstructorError(
                None, None, f"{twice} given twice", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str):
    """Parse YAML safely, refusing duplicate keys."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def load(folder: Path) -> Profiles:
    """The parameters of every notebook in ``folder``: the cells, then ``profiles.yml``."""
    path = Path(folder) / "profiles.yml"
    try:
        raw = read_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    cells = {stem: parameters_source(p) for stem, p in notebook_paths(folder).items()}
    return declare(raw, cells, where=path.name)
