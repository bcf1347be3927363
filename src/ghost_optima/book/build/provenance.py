"""Provenance of a notebook run and content hashes that decide whether it must run again."""

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "seaborn",
    "matplotlib",
    "scikit-learn",
    "papermill",
    "jupyter-book",
    "ghost-optima",
)


def digest(*parts: bytes) -> str:
    """sha256 over length-prefixed parts, so that no two part lists collide by concatenation."""
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def tree_digest(
    folder: Path, names: Iterable[str] = ("*.py",), skip_dirs: Iterable[str] = ()
) -> str:
    """Digest of the files matching any of ``names`` under ``folder``, outside ``skip_dirs``."""
    skip = {"__pycache__", *skip_dirs}
    files = sorted(
        {
            p
            for pattern in names
            for p in Path(folder).rglob(pattern)
            if p.is_file() and not skip.intersection(p.relative_to(folder).parts)
        }
    )
    return digest(
        *(
            part
            for p in files
            for part in (p.relative_to(folder).as_posix().encode(), p.read_bytes())
        )
    )


def json_digest(value) -> str:
    return digest(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def git_state(root: Path) -> dict:
    """Commit and dirty flag of the working tree at ``root`` (``None`` outside a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def versions() -> dict[str, str | None]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
