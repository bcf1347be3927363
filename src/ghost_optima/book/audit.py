"""When each rule was fixed: its history in git, so that a reader can audit pre-registration.

A rule is pre-registered when it was committed before the numbers it judges were seen. Git is
the record: for every commit that touched the registry (followed across renames), the rule of
each claim is read as it stood then and hashed (:func:`rule_digest`, over its text and its three
expressions and key). A claim's history is the list of commits at which that hash changed; the
last one is the rule in force. A change that landed in the same commit as a change to the
claim's chapter (``notebooks/<notebook>.*``) is marked; the rule in force is flagged when its
own change is: from git alone nobody can tell whether that rule was written before or after its
numbers.
"""

import subprocess
from pathlib import Path

import yaml

from .claims import rule_digest

REGISTRY = "src/ghost_optima/book/claims.yml"


def _git(root: Path, *args: str) -> str | None:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else None


def registry_commits(root: Path, path: str = REGISTRY) -> list[tuple[str, str, str]]:
    """``(commit, ISO date, path at that commit)`` of every commit that touched the registry,
    oldest first, following renames; empty outside a git checkout."""
    log = _git(root, "log", "--follow", "--format=@%H %cI", "--name-only", "--", path)
    if not log:
        return []
    commits, current = [], None
    for line in log.splitlines():
        if line.startswith("@"):
            current = line[1:].split(" ")
        elif line.strip() and current:
            commits.append((current[0], current[1], line.strip()))
            current = None
    return commits[::-1]


def rule_history(root: Path, path: str = REGISTRY) -> dict[str, dict]:
    """Per claim id: ``rule_commit``, ``rule_date`` (the change in force), ``changes`` (every
    change, oldest first, each ``{"commit", "date", "with_chapter"}``) and ``flagged`` (the
    change in force landed with its chapter; earlier versions stay listed in ``changes``).
    Empty when git or the history is unavailable."""
    history: dict[str, dict] = {}
    last: dict[str, str | None] = {}
    for commit, date, at_path in registry_commits(root, path):
        text = _git(root, "show", f"{commit}:{at_path}")
        if text is None:
            continue
        changed_files = (_git(root, "show", "--name-only", "--format=", commit) or "").split()
        for cid, entry in (yaml.safe_load(text) or {}).items():
            digest = rule_digest(entry.get("rule"))
            if digest is None or last.get(cid) == digest:
                continue
            last[cid] = digest
            chapter = f"notebooks/{entry.get('notebook', '')}."
            with_chapter = any(f.startswith(chapter) for f in changed_files)
            record = history.setdefault(cid, {"changes": []})
            record["changes"].append({"commit": commit, "date": date, "with_chapter": with_chapter})
    for record in history.values():
        record["rule_commit"] = record["changes"][-1]["commit"]
        record["rule_date"] = record["changes"][-1]["date"]
        record["flagged"] = record["changes"][-1]["with_chapter"]
    return history
