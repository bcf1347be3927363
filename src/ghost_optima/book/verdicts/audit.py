"""When each rule was fixed: its history in git, so that a reader can audit pre-registration.

A rule is pre-registered when it was committed before the numbers it judges were seen. Git is
the record: for every commit that touched the registry (followed across renames), the rule of
each claim is read as it stood then and hashed (:func:`rule_digest`, over its text and its three
expressions and key). A claim's history is the list of commits at which that hash changed; the
last one is the rule in force. Each change says which fields changed and the commit's subject.

Two things flag the rule in force:

- its change landed in the same commit as a change to the claim's chapter
  (``notebooks/<notebook>.*``): from git alone nobody can tell whether the rule was written
  before or after its numbers;
- its change landed after the claim's *first recorded verdict*. Results are not kept in git, so
  that moment is defined from git as the first commit in which a notebook contained the call that
  records the claim (``.claim("<id>"``): from then on anyone who ran the committed chapter saw a
  verdict. A verdict may have been seen earlier, on uncommitted work (which is what the first
  flag is about), never later. A rule changed after it may be a fair correction, but it was
  decided with a verdict in view, and the ledger lists its history so a reader can judge.

From commit ``CUTOFF`` on, pre-registration is kept visibly: a changed rule lands in a commit of
its own, never with its chapter (``tests/test_audit.py`` fails on a commit after ``CUTOFF`` that
changes a rule and its chapter together: :func:`mixed_commits`), older than the run that records
its verdict. :func:`standing` then sorts every rule in force: decided ``before`` its numbers (as
git shows), ``legacy`` (in force since before ``CUTOFF`` and flagged) or ``unshown`` (changed
after ``CUTOFF`` but not yet shown to be older than its results).
"""

import re
import subprocess
from pathlib import Path

import yaml

from ghost_optima.book.verdicts.claims import RULE_FIELDS, rule_digest

REGISTRY = "src/ghost_optima/book/claims.yml"
CUTOFF = "74f4280a9ef50fba9eec4ee915fcbd01874b65f9"
"""The main commit when the book began to keep each changed rule in a commit of its own, older
than its results (issue 25). The history before it has rules committed with their chapter and
rules changed after a verdict was seen, and it cannot be rewritten: those rules are listed as
``legacy``. Commits after it are checked; the checks start here, not at the first commit."""
NOTEBOOKS = "notebooks"
CLAIM_CALL = re.compile(r"""\.claim\(\s*["']([A-Za-z][A-Za-z0-9_]*)["']""")


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


def first_verdicts(root: Path, notebooks: str = NOTEBOOKS) -> dict[str, dict]:
    """Per claim id, ``{"commit", "date", "notebook"}`` of the first commit (oldest first along
    the history of HEAD) that added a line recording it (``.claim("<id>"``) to a file under
    ``notebooks``; empty outside git."""
    log = _git(
        root, "log", "--reverse", "--format=%x00%H %cI", "-p", "--unified=0", "--", notebooks
    )
    found: dict[str, dict] = {}
    commit = date = file = None
    for line in (log or "").splitlines():
        if line.startswith("\0"):  # a commit's header; diff lines never start with NUL
            commit, date = line[1:].split(" ")[:2]
        elif line.startswith("+++ "):
            file = Path(line[4:].removeprefix("b/")).stem
        elif line.startswith("+") and commit:
            for cid in CLAIM_CALL.findall(line):
                found.setdefault(cid, {"commit": commit, "date": date, "notebook": file})
    return found


def _positions(root: Path) -> dict[str, int]:
    """Each commit of HEAD's history -> its position, oldest first (topological order)."""
    listed = (_git(root, "rev-list", "--topo-order", "--reverse", "HEAD") or "").split()
    return {commit: i for i, commit in enumerate(listed)}


def _after_cutoff(root: Path, cutoff: str) -> set[str] | None:
    """The commits of HEAD's history that ``cutoff`` does not contain (None: no such commit
    here, e.g. a shallow clone, so nothing can be said about them)."""
    if _git(root, "cat-file", "-e", f"{cutoff}^{{commit}}") is None:
        return None
    return set((_git(root, "rev-list", f"{cutoff}..HEAD") or "").split())


def is_ancestor(root: Path, older: str | None, newer: str | None) -> bool:
    """Whether commit ``older`` is ``newer`` or one of its ancestors (False when either is
    unknown here)."""
    if not (older and newer):
        return False
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", older, newer], cwd=root, capture_output=True
    )
    return done.returncode == 0


def _changed_fields(before: dict | None, after: dict) -> list[str]:
    if before is None:
        return ["first version"]
    return [
        k
        for k in RULE_FIELDS
        if " ".join(str(before.get(k)).split()) != " ".join(str(after.get(k)).split())
    ]


def rule_history(
    root: Path, path: str = REGISTRY, notebooks: str = NOTEBOOKS, cutoff: str = CUTOFF
) -> dict[str, dict]:
    """Per claim id: ``rule_commit``, ``rule_date`` (the change in force), ``changes`` (every
    change, oldest first, each ``{"commit", "date", "subject", "fields", "expressions",
    "digest", "with_chapter", "after_first_verdict", "after_cutoff"}``), ``first_verdict``
    (:func:`first_verdicts`, or None) and ``flagged`` (the change in force landed with its
    chapter or after the first recorded verdict; earlier versions stay listed in ``changes``).
    ``after_cutoff`` is None when ``cutoff`` is not in this history. Empty when git or the
    history is unavailable."""
    verdicts = first_verdicts(root, notebooks)
    order = _positions(root)
    recent = _after_cutoff(root, cutoff)
    subjects = dict(
        line.split("\0", 1) for line in (_git(root, "log", "--format=%H%x00%s") or "").splitlines()
    )
    history: dict[str, dict] = {}
    last: dict[str, dict] = {}
    for commit, date, at_path in registry_commits(root, path):
        text = _git(root, "show", f"{commit}:{at_path}")
        if text is None:
            continue
        changed_files = (_git(root, "show", "--name-only", "--format=", commit) or "").split()
        for cid, entry in (yaml.safe_load(text) or {}).items():
            rule = entry.get("rule")
            digest = rule_digest(rule)
            if digest is None or last.get(cid, {}).get("digest") == digest:
                continue
            chapter = f"{notebooks}/{entry.get('notebook', '')}."
            first = verdicts.get(cid)
            after = first is not None and order.get(commit, -1) > order.get(first["commit"], -1)
            record = history.setdefault(cid, {"changes": [], "first_verdict": first})
            record["changes"].append(
                {
                    "commit": commit,
                    "date": date,
                    "subject": subjects.get(commit, ""),
                    "fields": _changed_fields(last.get(cid, {}).get("rule"), rule),
                    "expressions": {k: rule[k] for k in RULE_FIELDS if k != "text"},
                    "digest": digest,
                    "with_chapter": any(f.startswith(chapter) for f in changed_files),
                    "after_first_verdict": after,
                    "after_cutoff": None if recent is None else commit in recent,
                }
            )
            last[cid] = {"digest": digest, "rule": rule}
    for record in history.values():
        in_force = record["changes"][-1]
        record["rule_commit"] = in_force["commit"]
        record["rule_date"] = in_force["date"]
        record["flagged"] = in_force["with_chapter"] or in_force["after_first_verdict"]
    return history


def mixed_commits(history: dict[str, dict]) -> list[dict]:
    """The changes of rules made after ``CUTOFF`` in the same commit as their chapter, each
    ``{"claim", "commit", "subject"}``: what the pre-registration check refuses."""
    return [
        {"claim": cid, "commit": change["commit"], "subject": change["subject"]}
        for cid, record in history.items()
        for change in record["changes"]
        if change["after_cutoff"] and change["with_chapter"]
    ]


STANDINGS = ("before", "legacy", "unshown")


def standing(row: dict) -> str | None:
    """Whether git shows a ledger row's rule in force was decided before its numbers.

    ``before``: a rule fixed before ``CUTOFF`` and not flagged, or one changed after it in a
    commit without its chapter that is older than (or is) the commit of the run that recorded
    its verdict, which was judged by that very rule (``rule_sha``); ``legacy``: in force since
    before ``CUTOFF`` and flagged; ``unshown``: changed after ``CUTOFF`` but not (yet) shown to
    come first. None without a history (no git). Reads the build's fields ``rule_changes``,
    ``rule_flagged``, ``rule_sha`` and ``rule_before_results``.
    """
    changes = row.get("rule_changes") or []
    if not changes:
        return None
    in_force = changes[-1]
    if not in_force.get("after_cutoff"):
        return "legacy" if row.get("rule_flagged") else "before"
    if in_force["with_chapter"]:
        return "unshown"
    judged_by_it = row.get("rule_sha") == in_force.get("digest")
    if not in_force["after_first_verdict"] or (judged_by_it and row.get("rule_before_results")):
        return "before"
    return "unshown"
