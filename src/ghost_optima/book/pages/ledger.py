"""Book pages generated from the recorded results: the claims ledger and reproducibility.

They are written at build time from ``results/*.json`` so they can never disagree with the
runs. Both are MyST markdown; verdicts use sphinx-design badges.
"""

from ghost_optima.book.pages import calibration_table
from ghost_optima.book.pages.key_figures import key_figure, plain_range
from ghost_optima.book.pages.performance import PERFORMANCE_FILE, load_performance, performance_page  # noqa: F401
from ghost_optima.book.verdicts import audit, conditions
from ghost_optima.book.verdicts.claims import (
    NOT_TESTED,
    UNSTABLE_DISAGREEMENTS,
    RuleError,
    is_unstable,
    registry,
    scoreboard,
)
from ghost_optima.book.verdicts.record import format_figure

BADGE = {
    "supported": "bdg-success",
    "not supported": "bdg-danger",
    "mixed": "bdg-warning",
    "inconclusive": "bdg-secondary",
    "not yet tested": "bdg-light",
    "unstable": "bdg-warning-line",
}


def badge(verdict: str) -> str:
    return f"{{{BADGE[verdict]}}}`{verdict}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def generated(
    profile: str, records: dict[str, dict], rows: list[dict], robustness: dict
) -> dict[str, str]:
    """File name -> MyST text of every generated page."""
    return {
        "ledger.md": ledger_page(profile, rows, records, robustness),
        "rules.md": rules_page(rows),
        "reproducibility.md": reproducibility_page(profile, records),
    }


def robustness_cell(row: dict, robustness: dict) -> str:
    """``agree/runs`` of the replications, the other verdicts they gave and the key figure's
    range; ``—`` if none. Read from the row (``robustness``, written by the build) or else from
    ``robustness`` (the ``robustness.json`` claims of ``ghost-optima verify``, keyed by id)."""
    entry = row.get("robustness") or robustness.get(row["id"])
    if not entry:
        return "—"
    if entry.get("recorded", row["verdict"]) != row["verdict"]:
        return "stale (verdict changed since the replications)"
    others = [v for v in entry.get("verdicts", []) if v != row["verdict"]]
    differ = (
        " (others: " + ", ".join(f"{v} ×{others.count(v)}" for v in dict.fromkeys(others)) + ")"
        if others
        else ""
    )
    if entry["key_min"] is None or entry["key_max"] is None:
        return f"{entry['agree']}/{entry['runs']} same verdict{differ}"
    span = plain_range(float(entry["key_min"]), float(entry["key_max"]), "en", _unit(row))
    return f"{entry['agree']}/{entry['runs']} same verdict{differ}; key figure {span}"


def _unit(row: dict) -> str:
    return row.get("key_unit", "number")


def standings(rows: list[dict]) -> dict[str, list[str]]:
    """The ids of the claims (not the deliverables) whose rule git dates, by
    ``audit.standing``: ``before``, ``legacy``, ``unshown`` (empty without git)."""
    found: dict[str, list[str]] = {name: [] for name in audit.STANDINGS}
    for row in rows:
        if row["class"] != "deliverable" and row.get("rule_standing"):
            found[row["rule_standing"]].append(row["id"])
    return found


def _standing_count(rows: list[dict]) -> str:
    found = standings(rows)
    audited = sum(len(ids) for ids in found.values())
    if not audited:
        return "no git history in this build"
    return (
        f"git shows {len(found['before'])} of the {audited} rules of claims in force decided "
        "before their numbers; the others are listed below the table"
    )


def _decided_section(rows: list[dict]) -> list[str]:
    """Which rules git shows were decided before their numbers, and the legacy ones, named
    once (the summaries give only the counts)."""
    found = standings(rows)
    if not any(found.values()):
        return []
    cutoff = f"`{audit.CUTOFF[:10]}`"
    lines = [
        "## When the rules were decided",
        "",
        f"From commit {cutoff} on, a changed rule lands in a commit of its own, older than the "
        "run that records its verdict, and a test refuses a commit that changes a rule together "
        "with its chapter. Git shows these rules decided before their numbers: "
        + (", ".join(found["before"]) or "none")
        + ".",
        "",
    ]
    if found["legacy"]:
        lines += [
            f"Legacy rules, in force since before {cutoff} and changed with their chapter or "
            "after it first recorded a verdict, so that git cannot show they came first: "
            + ", ".join(found["legacy"])
            + ". Each one's history is under its claim below and on the {ref}`rules` page.",
            "",
        ]
    if found["unshown"]:
        lines += [
            f"Changed after {cutoff} but not shown to be older than the run that recorded their "
            "verdict (a results commit older than the rule, a run on another version of the "
            "rule, or a change together with the chapter): " + ", ".join(found["unshown"]) + ".",
            "",
        ]
    return lines


def _verdict_cell(row: dict) -> str:
    mark = f" {badge('unstable')}" if is_unstable(row) else ""
    mark += calibration_table.verdict_mark(row)
    return f"{badge(row['verdict'])}{mark}{_override_mark(row)}"


def ledger_page(profile: str, rows: list[dict], records: dict, robustness: dict) -> str:
    """One compact row per claim; statements and sources in a section per claim below.

    The rules themselves, with the names of the figures they read, are on the rules page.
    """
    board = scoreboard(rows)
    tally = ", ".join(f"{n} {verdict}" for verdict, n in board["empirical"].items())
    identities, deliverables = ", ".join(board["identities"]), ", ".join(board["deliverables"])
    unstable = (
        f" Unstable (counted as such, not under their verdict): {', '.join(board['unstable'])}."
        if board["unstable"]
        else ""
    )
    lines = [
        "(ledger)=",
        "# Claims ledger",
        "",
        f"Every claim the book tests, with the verdict its registered rule gave on the "
        f"`{profile}` profile. Empirical findings: {tally}; the identities ({identities}) "
        f"and the book's own deliverables ({deliverables}) are listed but not counted. The "
        "rules, with every version of each and when it was decided, are on the {ref}`rules` "
        f"page ({_standing_count(rows)}); intervals are "
        "95% percentile bootstrap intervals over the units that vary (seeds, pairs, chains). "
        "*Replications* gives, beside each verdict, how many independent replications of the "
        "profile (disjoint seeds) gave the same verdict, the verdicts of the others, and the "
        "range of the key figure over them. An empirical claim whose replications disagree "
        f"with its verdict in {UNSTABLE_DISAGREEMENTS} or more runs is marked unstable and "
        f"counted as unstable on the scoreboard.{unstable}{calibration_table.pointer(rows)}",
        "",
        "```{list-table}",
        ":header-rows: 1",
        ":class: ledger-table",
        ":widths: 5 17 11 17 18 32",
        "",
        "* - id",
        "  - claim",
        "  - class",
        "  - verdict",
        "  - replications",
        "  - key figure",
    ]
    for row in rows:
        lines += [
            f"* - {row['id']}",
            f"  - [{_cell(row['title'])}](#claim-{row['id'].lower()})",
            f"  - {row['class']}",
            f"  - {_verdict_cell(row)}",
            f"  - {_cell(robustness_cell(row, robustness))}",
            f"  - {_cell(key_figure(row))}",
        ]
    lines += ["```", ""]
    lines += calibration_table.section(rows)
    lines += _decided_section(rows)
    lines += ["## The claims", ""]
    for row in rows:
        notebook = row["notebook"]
        linked = notebook in records or row["verdict"] != NOT_TESTED
        where = f"tested in {{doc}}`{notebook}`" if linked else "no chapter tests it yet"
        lines += [
            f"(claim-{row['id'].lower()})=",
            f"### {row['id']}: {row['title']} / {row['title_ja']}",
            "",
            f"{badge(row['verdict'])} {row['class']}; source: {row['source']}; {where}.",
            "",
            f"- **EN**: {' '.join(row['statement_en'].split())}",
            f"- **JA**: {row['statement_ja']}",
            f"- **When decided**: {_decided(row)}",
            "",
        ]
    return "\n".join(lines) + "\n"


FIELD_WORDS = {
    "first version": "first version",
    "text": "text",
    "supported": "supported branch",
    "not_supported": "not-supported branch",
    "otherwise": "otherwise branch",
    "key": "key figure",
}


def _flags(change: dict) -> list[str]:
    return (["with its chapter"] if change.get("with_chapter") else []) + (
        ["after the chapter's first recorded verdict"] if change.get("after_first_verdict") else []
    )


def _change_words(change: dict) -> str:
    what = ", ".join(FIELD_WORDS.get(f, f) for f in change.get("fields", []))
    head = f"`{change['commit'][:10]}` ({change['date'][:10]}"
    return head + (f": {what}" if what else "") + "".join(f"; {f}" for f in _flags(change)) + ")"


def _decided(row: dict) -> str:
    """The rule's commit and date from git, the results' commit, the flag and the rule's
    history, in words (no names of figures: the rules page has those)."""
    if not row.get("rule_commit"):
        return "no git history of the rule is available in this build."
    text = f"rule in force since commit `{row['rule_commit'][:10]}` ({row['rule_date'][:10]})"
    if row.get("results_commit"):
        text += f"; results from commit `{row['results_commit'][:10]}`"
        if row.get("rule_before_results"):
            same = row["results_commit"] == row["rule_commit"]
            text += " (the rule's own commit)" if same else " (the rule's commit is older)"
    first = row.get("rule_first_verdict")
    if first:
        text += f"; the chapter first recorded this claim in `{first['commit'][:10]}`"
    changes = row.get("rule_changes", [])
    in_force = changes[-1] if changes else {}
    if row.get("rule_flagged"):
        reasons = " and ".join(_flags(in_force)) or "see the rules page"
        text += (
            f". **Flagged**: the rule in force was changed {reasons}, so git cannot show that "
            "it was fixed before the numbers were seen; its history is on the {ref}`rules` page"
        )
    if len(changes) > 1:
        text += "; versions, oldest first: " + ", ".join(_change_words(c) for c in changes)
    return text + "."


def _override_mark(row: dict) -> str:
    return " (run with overrides)" if row.get("overrides") else ""


def rules_page(rows: list[dict]) -> str:
    """Every rule as registered: its text, the expressions a verdict is computed from, and the
    recorded figures they read (by name: this page is for reviewers)."""
    lines = [
        "(rules)=",
        "# Rules",
        "",
        "The registered rule of every claim, as the registry (`claims.yml`) holds it. A rule "
        "is three expressions over the recorded figures: `supported` is checked first, then "
        "`not_supported`; when both are false the verdict is the rule's `otherwise`. A test "
        "checks that every rule can reach each of its branches.",
        "",
        "**When each rule was decided.** Every version of a rule is read from the git history "
        "of the registry. A version is flagged when it landed in the same commit as its "
        "chapter's code (git cannot show which came first), or after the claim's first "
        "recorded verdict. Results are not kept in git, so that moment is defined from git: "
        "the first commit in which a chapter contained the call that records the claim. From "
        "then on anyone who ran the committed chapter saw a verdict; one may have been seen "
        "earlier on uncommitted work, never later. A flagged change may be a fair correction, "
        "but it was made with a verdict in view: each rule's versions are listed below with "
        "what changed, so a reader can see what was decided when.",
        "",
    ]
    for row in rows:
        lines += [f"(rule-{row['id'].lower()})=", f"## {row['id']}: {row['title']}", ""]
        if row["rule"] is None:
            lines += ["No rule fixed yet: the claim has not been tested.", ""]
            continue
        rule_claim = registry()[row["id"]]
        rule = rule_claim.rule
        lines += [" ".join(rule.text.split()), ""]
        lines += [
            "```text",
            f"supported:     {' '.join(rule.supported.split())}",
            f"not_supported: {' '.join(rule.not_supported.split())}",
            f"otherwise:     {rule.otherwise}",
            f"key figure:    {rule.key}",
            "```",
            "",
        ]
        recorded = ", ".join(
            f"`{name}` = {format_figure(value)}" for name, value in row["figures"].items()
        )
        lines += [f"Recorded figures: {recorded or 'none yet'}.", ""]
        if row["verdict"] != NOT_TESTED:
            lines += [_explained(rule_claim, row["figures"]), ""]
        lines += _history_lines(row)
    return "\n".join(lines) + "\n"


def _explained(claim, figures: dict) -> str:
    """Each condition of the rule with whether it held (``conditions.explain``)."""
    try:
        return conditions.explain(claim, figures)
    except RuleError as err:  # figures recorded for another version of the rule
        return f"The recorded figures do not fit the rule in force ({err}); rebuild to judge them."


def _history_lines(row: dict) -> list[str]:
    """The versions of a claim's rule, oldest first, with their expressions and flags."""
    changes = row.get("rule_changes") or []
    if not changes:
        return []
    first = row.get("rule_first_verdict")
    lines = [
        "Versions of this rule, oldest first" + (" (flagged)" if row.get("rule_flagged") else "")
    ]
    lines[0] += (
        f"; the chapter first recorded this claim in `{first['commit'][:10]}` "
        f"({first['date'][:10]}):"
        if first
        else ":"
    )
    lines.append("")
    for change in changes:
        expressions = change.get("expressions", {})
        shown = "; ".join(f"{k}: `{' '.join(str(v).split())}`" for k, v in expressions.items())
        subject = _cell(change.get("subject", ""))
        lines.append(
            f"- {_change_words(change)}"
            + (f" — {shown}" if shown else "")
            + (f". Commit: *{subject}*" if subject else "")
        )
    return [*lines, ""]


def reproducibility_page(profile: str, records: dict[str, dict]) -> str:
    lines = [
        "(reproducibility)=",
        "# Reproducibility",
        "",
        f"How each notebook of this book was last executed (profile `{profile}`). Rebuild any "
        "notebook with `ghost-optima build --only NAME --set KEY=VALUE`; a notebook runs again "
        "only when its source, parameters, the package sources or the lock file change.",
        "",
        "| notebook | commit | parameters | seeds | threads | seconds |",
        "|---|---|---|---|---|---|",
    ]
    versions, machine = {}, {}
    for stem, record in records.items():
        prov = record["provenance"]
        commit = (prov["commit"] or "none")[:10] + (" (dirty)" if prov["dirty"] else "")
        params = ", ".join(f"`{k}={v}`" for k, v in prov["parameters"].items())
        seeds = ", ".join(f"`{k}={v}`" for k, v in prov["seeds"].items()) or "—"
        lines.append(
            f"| {{doc}}`{stem}` | `{commit}` | {params} | {seeds} | {prov['threads']} "
            f"| {prov['wall_seconds']} |"
        )
        versions, machine = prov["versions"], prov["machine"]
    lines += ["", "## Versions and machine", "", "| package | version |", "|---|---|"]
    lines += [f"| {name} | {version} |" for name, version in versions.items()]
    lines += ["", ", ".join(f"{k}: `{v}`" for k, v in machine.items()), ""]
    return "\n".join(lines)


def override_banner(overrides: dict[str, dict]) -> str | None:
    """The banner of a book whose notebooks ran with ``--set`` overrides (None without any)."""
    changed = {stem: values for stem, values in overrides.items() if values}
    if not changed:
        return None
    listed = "; ".join(
        f"{stem}: " + ", ".join(f"{k}={v}" for k, v in values.items())
        for stem, values in changed.items()
    )
    return (
        f"Built with parameter overrides ({listed}): these numbers are not the profile's own. "
        "A plain build restores them."
    )
