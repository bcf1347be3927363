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
