"""Rule history from git, on a small repository made for the test."""

import subprocess

from ghost_optima.book.verdicts.audit import rule_history
from ghost_optima.book.verdicts.claims import rule_digest

RULE = {
    "text": "t",
    "supported": "x > 1",
    "not_supported": "x < 0",
    "otherwise": "mixed",
    "key": "x",
}


def registry_text(supported_a: str, supported_b: str) -> str:
    def claim(notebook, supported):
        rule = dict(RULE, supported=supported)
        lines = [f"  notebook: {notebook}", "  rule:"]
        lines += [f"    {k}: '{v}'" for k, v in rule.items()]
        return "\n".join(lines)

    return f"A:\n{claim('10_a', supported_a)}\nB:\n{claim('20_b', supported_b)}\n"


def commit(repo, message, files):
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message],
        cwd=repo,
        check=True,
    )
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_history_follows_each_rule_across_renames_and_flags_changes_with_their_chapter(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    first = commit(tmp_path, "rules", {"old/claims.yml": registry_text("x > 1", "x > 1")})
    subprocess.run(["git", "mv", "old/claims.yml", "claims.yml"], cwd=tmp_path, check=True)
    commit(tmp_path, "move", {})
    second = commit(
        tmp_path,
        "B's rule with its chapter",
        {"claims.yml": registry_text("x > 1", "x > 2"), "notebooks/20_b.md": "chapter"},
    )
    history = rule_history(tmp_path, "claims.yml")
    assert history["A"]["rule_commit"] == first and not history["A"]["flagged"]
    assert [c["commit"] for c in history["B"]["changes"]] == [first, second]
    assert history["B"]["rule_commit"] == second and history["B"]["flagged"]
    assert history["B"]["changes"][1]["with_chapter"] and history["B"]["rule_date"]
    third = commit(tmp_path, "B's rule alone", {"claims.yml": registry_text("x > 1", "x > 3")})
    history = rule_history(tmp_path, "claims.yml")
    assert history["B"]["rule_commit"] == third and not history["B"]["flagged"]
    assert len(history["B"]["changes"]) == 3  # the flagged version stays in the history


def test_digest_ignores_line_folding_but_not_content():
    folded = dict(RULE, text="a  long\n text")
    assert rule_digest(folded) == rule_digest(dict(RULE, text="a long text"))
    assert rule_digest(dict(RULE, supported="x > 2")) != rule_digest(RULE)
    assert rule_digest(None) is None


def test_outside_git_there_is_no_history(tmp_path):
    assert rule_history(tmp_path, "claims.yml") == {}


def test_a_registered_rule_hashes_like_its_yaml():
    from ghost_optima.book.verdicts.claims import Rule

    assert rule_digest(Rule(**RULE)) == rule_digest(RULE)


def test_a_rule_changed_after_its_first_recorded_verdict_is_flagged_with_its_history(tmp_path):
    from ghost_optima.book.pages import ledger

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    rules = commit(tmp_path, "rules", {"claims.yml": registry_text("x > 1", "x > 1")})
    chapter = commit(
        tmp_path,
        "chapter A records its claim",
        {"notebooks/10_a.md": 'x = 1\n_ = rec.claim("A", {"x": x})\n'},
    )
    history = rule_history(tmp_path, "claims.yml")
    assert history["A"]["first_verdict"]["commit"] == chapter
    assert history["A"]["first_verdict"]["notebook"] == "10_a"
    assert history["B"]["first_verdict"] is None  # no chapter records B
    assert not history["A"]["flagged"] and not history["B"]["flagged"]
    changed = commit(tmp_path, "A's rule, later", {"claims.yml": registry_text("x > 5", "x > 1")})
    commit(tmp_path, "chapter edited", {"notebooks/10_a.md": '_ = rec.claim("A", {"x": 2})\n'})
    history = rule_history(tmp_path, "claims.yml")
    a = history["A"]
    assert a["first_verdict"]["commit"] == chapter  # the first, not the latest, recording
    assert [c["commit"] for c in a["changes"]] == [rules, changed]
    assert [c["after_first_verdict"] for c in a["changes"]] == [False, True]
    assert a["changes"][1]["fields"] == ["supported"] and a["flagged"]
    assert a["changes"][1]["subject"] == "A's rule, later"
    assert a["changes"][0]["expressions"]["supported"] == "x > 1"
    assert a["changes"][1]["expressions"]["supported"] == "x > 5"
    assert not history["B"]["flagged"]
    row = {
        "rule_commit": a["rule_commit"],
        "rule_date": a["rule_date"],
        "rule_flagged": a["flagged"],
        "rule_changes": a["changes"],
        "rule_first_verdict": a["first_verdict"],
        "results_commit": None,
    }
    said = ledger._decided(row)
    assert "**Flagged**: the rule in force was changed after the chapter's first recorded" in said
    assert f"first recorded this claim in `{chapter[:10]}`" in said
    assert f"`{rules[:10]}`" in said and "supported branch" in said


def test_after_the_cutoff_a_rule_changed_with_its_chapter_is_refused(tmp_path):
    from ghost_optima.book.verdicts.audit import mixed_commits

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    before = commit(
        tmp_path,
        "rule and chapter together, before the check began",
        {"claims.yml": registry_text("x > 1", "x > 1"), "notebooks/10_a.md": "chapter"},
    )
    alone = commit(tmp_path, "A's rule alone", {"claims.yml": registry_text("x > 2", "x > 1")})
    history = rule_history(tmp_path, "claims.yml", cutoff=before)
    assert mixed_commits(history) == []  # the mixed commit is the cutoff's own: legacy
    assert [c["after_cutoff"] for c in history["A"]["changes"]] == [False, True]
    together = commit(
        tmp_path,
        "B's rule with its chapter",
        {"claims.yml": registry_text("x > 2", "x > 5"), "notebooks/20_b.md": "chapter"},
    )
    history = rule_history(tmp_path, "claims.yml", cutoff=before)
    assert mixed_commits(history) == [
        {"claim": "B", "commit": together, "subject": "B's rule with its chapter"}
    ]
    assert history["A"]["rule_commit"] == alone
    unknown = rule_history(tmp_path, "claims.yml", cutoff="f" * 40)  # e.g. a shallow clone
    assert mixed_commits(unknown) == []
    assert {c["after_cutoff"] for c in unknown["B"]["changes"]} == {None}


def standing_row(**fields) -> dict:
    change = {"after_cutoff": True, "with_chapter": False, "after_first_verdict": True}
    change.update(digest="d1", **{k: fields.pop(k) for k in list(fields) if k in change})
    return {"rule_changes": [change], "rule_sha": "d1", "rule_before_results": True, **fields}


def test_standing_sorts_rules_by_what_git_shows():
    from ghost_optima.book.verdicts.audit import standing

    assert standing({"rule_changes": []}) is None
    assert standing(standing_row(after_cutoff=False, rule_flagged=True)) == "legacy"
    assert standing(standing_row(after_cutoff=False, rule_flagged=False)) == "before"
    assert standing(standing_row()) == "before"  # own commit, older than the results
    assert standing(standing_row(rule_before_results=False)) == "unshown"
    assert standing(standing_row(rule_sha="d0")) == "unshown"  # judged by another version
    assert standing(standing_row(with_chapter=True)) == "unshown"
    assert standing(standing_row(after_first_verdict=False, rule_before_results=False)) == (
        "before"  # a new claim's rule, committed before its chapter recorded it
    )


def test_no_commit_since_the_cutoff_changes_a_rule_together_with_its_chapter():
    """The pre-registration check (issue 25): from ``audit.CUTOFF`` on, a changed rule lands
    in a commit of its own, never with the chapter that records its verdict."""
    from pathlib import Path

    import pytest

    from ghost_optima.book.verdicts.audit import CUTOFF, mixed_commits

    root = Path(__file__).resolve().parents[1]
    history = rule_history(root)
    if not history:
        pytest.skip("not a git checkout: no history to check")
    if all(c["after_cutoff"] is None for r in history.values() for c in r["changes"]):
        pytest.skip(f"commit {CUTOFF[:10]} is not in this history (a shallow clone?)")
    mixed = mixed_commits(history)
    assert not mixed, "rules changed together with their chapter (commit the rule first): " + (
        "; ".join(f"{m['claim']} in {m['commit'][:10]} ({m['subject']})" for m in mixed)
    )
