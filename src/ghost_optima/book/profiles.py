"""Profiles: every parameter each notebook takes, declared once, checked before anything runs.

``notebooks/profiles.yml`` lists the profiles and, per notebook, each parameter with its type,
bounds and value::

    profiles: [full, quick]
    notebooks:
      10_symmetry:
        seed: {type: int, min: 0, value: 0, help: base seed of every generator}
        n_archs: {type: int, min: 1, full: 300, quick: 40, help: random architectures tried}

``value`` is shared by all profiles; otherwise each profile names its own. Types are ``int``,
``float``, ``bool``, ``str`` and ``list[int]``/``list[float]``; ``min``, ``max`` and
``choices`` bound them. ``resolve`` applies ``--set`` overrides (``key=value`` for every
notebook declaring ``key``, or ``notebook.key=value`` for one) and raises ``ConfigError`` with
the problem named, before any work starts.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

import yaml

TYPES = ("int", "float", "bool", "str", "list[int]", "list[float]")


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

    def check(self, value, where: str):
        """``value`` converted to this parameter's type, or ConfigError naming the problem."""
        kind = self.type
        if kind.startswith("list["):
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{where}: expected a non-empty list, got {value!r}")
            item = Parameter(self.name, kind[5:-1], self.help, {}, self.min, self.max)
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
            targets = (
                [notebook] if dot else [nb for nb in self.notebooks if name in self.notebooks[nb]]
            )
            targets = [nb for nb in targets if name in self.notebooks[nb]]
            if not targets:
                known = sorted({n for decl in self.notebooks.values() for n in decl})
                raise ConfigError(f"--set {item!r}: unknown parameter {name!r}; known: {known}")
            for nb in targets:
                params[nb][name] = self.notebooks[nb][name].parse(text, f"--set {key}")
        return params


def load(path: Path) -> Profiles:
    """Read and check ``profiles.yml``: every value present for every profile and well typed."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    names = tuple(raw["profiles"])
    notebooks = {}
    for nb, decl in raw["notebooks"].items():
        params = {}
        for name, spec in (decl or {}).items():
            spec = dict(spec)
            kind = spec.pop("type")
            if kind not in TYPES:
                raise ConfigError(f"{path}: {nb}.{name}: unknown type {kind!r}")
            shared = spec.pop("value", None)
            values = {p: spec.pop(p, shared) for p in names}
            param = Parameter(
                name=name,
                type=kind,
                help=spec.pop("help", ""),
                values={},
                min=spec.pop("min", None),
                max=spec.pop("max", None),
                choices=tuple(spec.pop("choices")) if "choices" in spec else None,
            )
            if spec:
                raise ConfigError(f"{path}: {nb}.{name}: unknown keys {sorted(spec)}")
            for profile, value in values.items():
                if value is None:
                    raise ConfigError(f"{path}: {nb}.{name}: no value for profile {profile!r}")
                values[profile] = param.check(value, f"{path}: {nb}.{name} ({profile})")
            params[name] = Parameter(**{**param.__dict__, "values": values})
        notebooks[nb] = params
    return Profiles(names=names, notebooks=notebooks)


def parameters_cell(source: str) -> dict:
    """The literal assignments ``name = value`` of a notebook's parameters cell."""
    values = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            raise ConfigError(
                f"parameters cell: only 'name = literal' lines, got {ast.unparse(node)}"
            )
        target = node.targets[0]
        if not isinstance(target, ast.Name):
            raise ConfigError(f"parameters cell: cannot assign to {ast.unparse(target)}")
        values[target.id] = ast.literal_eval(node.value)
    return values
