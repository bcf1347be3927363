"""The executive pages follow the verdicts: wording rules and generated content."""

from pathlib import Path

import pytest

from ghost_optima.book.pages import checklist, key_figures, summary, verdict_figure
from ghost_optima.book.verdicts import claims, deliverables


def rows_with(verdicts: dict[str, str]) -> list[dict]:
    recorded = {
        cid: {
            "verdict": v,
            "key": "x",
            "figures": {"x": {"value": 0.5, "lo": 0.25, "hi": 0.75, "n": 16}},
            "notebook": "10_symmetry",
        }
        for cid, v in verdicts.items()
    }
    return claims.ledger(recorded)


@pytest.mark.parametrize(
    ("found", "status"),
    [
        (["supported", "supported"], "say"),
        (["supported", "not supported"], "instead"),
        (["mixed", "not yet tested"], "instead"),
        (["supported", "not yet tested"], "untested"),
        (["inconclusive", "supported"], "untested"),
    ],
)
def test_phrase_status(found, status):
    assert deliverables.phrase_status(["A", "B"], dict(zip("AB", found, strict=True))) == status


def test_wording_refers_to_registered_claims_in_both_languages():
    ids = set(claims.registry())
    for phrase in deliverables.checklist()["phrases"]:
        assert set(phrase["claims"]) <= ids
        for status in ("say", "instead", "untested"):
            assert phrase[f"{status}_en"] and phrase[f"{status}_ja"]
    for stage in deliverables.checklist()["stages"]:
        assert set(stage["claims"]) <= ids and stage["en"] and stage["ja"]


def test_summary_groups_claims_by_verdict_with_their_figures():
    rows = rows_with({"T1": "supported", "E4": "not supported"})
    page = summary.summary_page(rows, "en")
    held = page.index("## What held")
    failed = page.index("## What did not hold")
    assert held < page.index("**T1**") < failed < page.index("**E4**")
    assert "0.50 (95% interval 0.25 to 0.75)" in page and "`x`" not in page
    assert "T3" in page[page.index("## Not yet tested") :]
    # T1 is an identity: listed, not counted; E4 is the one empirical verdict
    assert "Empirical findings: 1 not supported, " in page
    assert "T1 (all hold)" in page
    japanese = summary.summary_page(rows, "ja")
    empirical = sum(c.kind == "empirical" for c in claims.registry().values())
    assert "## 支持された主張" in japanese and "## 支持されなかった主張" in japanese
    assert f"実験で検証する主張 {empirical} 件のうち、不支持 1 件、未検証 {empirical - 1} 件。" in (
        japanese
    )


def test_checklist_switches_to_the_corrected_phrasing():
    supported = checklist.checklist_page(rows_with({"T2": "supported", "E4": "supported"}))
    refuted = checklist.checklist_page(rows_with({"T2": "supported", "E4": "not supported"}))
    phrase = deliverables.checklist()["phrases"][0]
    assert claims.join_cjk(phrase["say_en"]) in supported
    assert claims.join_cjk(phrase["instead_en"]) in refuted
    assert claims.join_cjk(phrase["instead_ja"]) in refuted


def test_join_cjk_removes_only_gaps_between_japanese_characters():
    assert claims.join_cjk("付け替え\n られる ReLU では") == "付け替えられる ReLU では"


def test_verdict_figure_is_drawn_in_each_language_with_japanese_glyphs():
    import warnings

    rows = rows_with({"T1": "supported", "E4": "not supported"})
    english = verdict_figure.draw_figure(rows, "en")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing from font")  # tofu boxes fail
        japanese = verdict_figure.draw_figure(rows, "ja")
    assert english.startswith(b"\x89PNG") and japanese.startswith(b"\x89PNG")
    assert english != japanese


def test_the_japanese_font_has_japanese_glyphs():
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    from ghost_optima.book.pages.plotting import japanese_font

    path = font_manager.findfont(japanese_font(), fallback_to_default=False)
    font = FT2Font(path)
    assert all(font.get_char_index(ord(c)) for c in "支持不判定置換不変性")


def test_deliverables_judge_coverage():
    ids = [cid for cid, c in claims.registry().items() if c.kind != "deliverable"]
    partial = deliverables.deliverables(rows_with({"T1": "supported", "T2": "supported"}))
    assert partial["X1"]["verdict"] == partial["X2"]["verdict"] == "not supported"
    assert partial["X1"]["figures"]["untested"] == len(ids) - 2
    assert partial["X2"]["figures"]["untested_phrases"] == len(deliverables.checklist()["phrases"])
    complete = deliverables.deliverables(rows_with({cid: "not supported" for cid in ids}))
    assert complete["X1"]["verdict"] == complete["X2"]["verdict"] == "supported"
    phrases = deliverables.checklist()["phrases"]
    assert complete["X2"]["figures"]["corrected_phrases"] == len(phrases)


def with_replications(rows: list[dict], again: dict[str, list[str]]) -> list[dict]:
    for row in rows:
        if row["id"] in again:
            runs = again[row["id"]]
            row["robustness"] = {
                "runs": len(runs),
                "agree": sum(v == row["verdict"] for v in runs),
                "verdicts": runs,
                "key_min": 0.25,
                "key_max": 0.75,
            }
    return rows


def test_summaries_and_ledger_name_unstable_claims():
    from ghost_optima.book.pages import ledger

    rows = with_replications(
        rows_with({"T2": "supported", "E4": "not supported", "M1": "supported"}),
        {
            "T2": ["supported", "mixed", "not supported", "supported"],
            "M1": ["supported"] * 3 + ["mixed"],
        },
    )
    page = summary.summary_page(rows, "en")
    assert "Empirical findings: 1 supported, 1 not supported, 1 unstable," in page
    assert "Unstable (T2)" in page
    shaky = page[page.index("## Unstable") :]
    assert "**T2**" in shaky and "recorded verdict: supported" in shaky
    held = page[page.index("## What held") : page.index("## What did not hold")]
    assert "**T2**" not in held and "**M1**" in held
    assert "same verdict in 3/4 replications, key figure +25% to +75%" in held
    japanese = summary.summary_page(rows, "ja")
    assert "不安定 1 件" in japanese and "不安定(T2)" in japanese
    assert "再現実験 4 回中 2 回で同じ判定" in japanese
    ledger = ledger.ledger_page("quick", rows, {}, {})
    assert "Unstable (counted as such, not under their verdict): T2." in ledger
    t2 = ledger[ledger.index("* - T2") : ledger.index("* - T3")]
    assert "{bdg-warning-line}`unstable`" in t2
    assert "2/4 same verdict (others: mixed ×1, not supported ×1); key figure 0.25 to 0.75" in t2
    m1 = ledger[ledger.index("* - M1") : ledger.index("* - M2")]
    assert "unstable" not in m1 and "3/4 same verdict" in m1
    for lang in ("en", "ja"):
        assert verdict_figure.draw_figure(rows, lang).startswith(b"\x89PNG")


def test_ledger_reads_legacy_robustness_and_says_when_it_is_stale():
    from ghost_optima.book.pages import ledger

    rows = rows_with({"T2": "supported"})
    legacy = {
        "T2": {
            "recorded": "mixed",
            "runs": 4,
            "agree": 4,
            "verdicts": ["mixed"] * 4,
            "key_min": 1.0,
            "key_max": 2.0,
        }
    }
    assert ledger.robustness_cell(rows[1], legacy).startswith("stale")
    legacy["T2"].update(recorded="supported", agree=1, verdicts=["supported"] + ["mixed"] * 3)
    assert ledger.robustness_cell(rows[1], legacy).startswith("1/4 same verdict (others: mixed ×3)")
    assert ledger.robustness_cell(rows[2], legacy) == "—"


def with_history(rows: list[dict], standing: dict[str, str]) -> list[dict]:
    """Rows with a rule history from git, as the build adds it; ``standing`` by id (legacy
    when not named), deliverables included."""
    for row in rows:
        row["rule_commit"], row["rule_date"] = "0123456789", "2026-12-01"
        row["rule_standing"] = standing.get(row["id"], "legacy")
        row["rule_flagged"] = row["rule_standing"] == "legacy"
        row["rule_changes"] = [
            {"commit": "0123456789", "date": "2026-12-01", "fields": ["first version"]}
        ]
    return rows


def test_the_summary_counts_rules_decided_first_at_its_end_and_names_none():
    rows = rows_with({"T2": "supported", "E4": "not supported"})
    assert summary.decided_line(rows, "en") is None  # no git history: nothing claimed
    rows = with_history(rows, {"T2": "before", "M3": "before", "E1": "unshown"})
    english = summary.summary_page(rows, "en")
    ending = english[english.index("## When the rules were decided") :]
    assert "Git shows 2 of the 17 rules in force decided before the numbers" in ending
    assert "The other 14 are legacy rules, fixed before commit `74f4280`" in ending
    assert "1 changed since then are not yet shown to come first" in ending
    opening = english[: english.index("## What")]
    assert "legacy" not in opening and "git cannot show" not in opening
    for cid in ("T3", "M1", "E1"):  # the legacy and unshown ones are named on the ledger only
        assert f" {cid}," not in ending and f" {cid})" not in ending
    japanese = summary.summary_page(rows, "ja")
    assert "現行の判定規則 17 件のうち" in japanese and "git の履歴で示せるのは 2 件" in japanese
    assert "残る 14 件は" in japanese


def test_the_ledger_names_the_legacy_rules_once_and_dates_rule_against_results():
    from ghost_optima.book.pages import ledger

    rows = with_history(rows_with({"T2": "supported"}), {"T2": "before", "X1": "before"})
    page = ledger.ledger_page("quick", rows, {}, {})
    assert "git shows 1 of the 17 rules of claims in force decided before" in page
    section = page[page.index("## When the rules were decided") : page.index("## The claims")]
    assert "Git shows these rules decided before their numbers: T2." in section
    assert "Legacy rules, in force since before `74f4280a9e`" in section
    assert section.count("T3") == 1 and "X1" not in section  # deliverables are not counted
    rows[1].update(results_commit="abcdef0123", rule_before_results=True)
    assert "results from commit `abcdef0123` (the rule's commit is older)" in ledger._decided(
        rows[1]
    )


NOTES = {
    "en": ("The key figure points against the claim", "The key figure points the claim's way"),
    "ja": ("主要な数値は主張に反する向き", "主要な数値は主張を支持する向き"),
}


def one_claim(cid: str, verdict: str, figures: dict) -> list[dict]:
    claim = claims.registry()[cid]
    entry = {"verdict": verdict, "key": claim.rule.key, "figures": figures}
    return claims.ledger({cid: {**entry, "notebook": claim.notebook}})


def placed(page: str, cid: str) -> tuple[str, str]:
    """The heading a claim is listed under, and its item."""
    item = next(line for line in page.splitlines() if line.startswith(f"- **{cid}**"))
    heading = page[: page.index(item)].rsplit("\n## ", 1)[1].splitlines()[0]
    return heading, item


@pytest.mark.parametrize(
    "cid", [cid for cid, c in claims.registry().items() if c.kind != "deliverable"]
)
def test_no_claim_sits_under_a_heading_its_key_figure_contradicts_without_a_sentence_why(cid):
    """Issue 25, must-show 2: on figures that reach every branch of the rule, each claim is
    listed under its verdict; its key figure says which way it points, and where that is not
    the verdict's way, a sentence made by code names the conditions that decided."""
    rule = claims.registry()[cid].rule
    for verdict, figures in claims.branch_witnesses(rule, tries=4000).items():
        if figures is None:
            continue
        rows = one_claim(cid, verdict, figures)
        way = key_figures.favours(next(r for r in rows if r["id"] == cid))
        for lang in ("en", "ja"):
            heading, item = placed(summary.summary_page(rows, lang), cid)
            assert heading == summary.HEADINGS[verdict][lang == "ja"]
            contradicts = way is not None and way != (verdict == "supported")
            assert any(note in item for note in NOTES[lang]) == contradicts, item
            if way is not None:
                assert key_figures.DIRECTION_WORDS[lang][way] in item


def test_a_favourable_figure_under_a_negative_verdict_is_explained_not_left_silent():
    """M4 as the issue found it: disagreement down 21% (the claim's way), not supported because
    the modules have more permutations than the baseline."""
    figures = {
        "log10_perm_reduction": -35.7,
        "symmetry_effect_disagreement": {"value": -0.21, "lo": -0.32, "hi": -0.07, "n": 8},
        "symmetry_effect_per_error": {"value": 0.3, "lo": -0.1, "hi": 0.6, "n": 8},
        "acc_change": {"value": -0.02, "lo": -0.03, "hi": -0.016, "n": 8},
        "twin_accuracy_gap": 0.005,
    }
    rows = one_claim("M4", "not supported", figures)
    heading, item = placed(summary.summary_page(rows, "en"), "M4")
    assert heading == "What did not hold"
    assert "-21% (95% interval -32% to -7%), a decrease, pointing the claim's way" in item
    assert item.endswith(
        "The key figure points the claim's way, but its rule decided otherwise: 1 other "
        "condition of its rule for 'not supported' held (the conditions are on the rules page: "
        "{ref}`M4 <rule-m4>`)."
    )
    _, japanese = placed(summary.summary_page(rows, "ja"), "M4")
    assert (
        "減少、主張を支持する向き" in japanese and "「不支持」の条件が他に 1 件成立した" in japanese
    )
    page = checklist.checklist_page(rows)
    p3 = page[page.index("## P3") :]
    assert "The key figure points the claim's way" in p3 and "主要な数値は主張を支持する向き" in p3


BRIEF = Path(__file__).resolve().parents[2] / "shared" / "seed"
TERMS = (
    "順列冗長性",
    "ゴースト最適解",
    "損失関数",
    "再現性",
    "チューニング工数",
    "データ品質",
    "投資",
)


def test_the_japanese_summary_speaks_the_briefs_vocabulary():
    """Issue 25: the Japanese summary uses the terms the brief (written for a Japanese
    executive) uses, counts in 件, and leaves no English verdict word in its prose."""
    rows = rows_with({"T2": "supported", "E4": "not supported", "M1": "mixed"})
    page = summary.summary_page(rows, "ja")
    prose = page[: page.index("## 投資判断への示唆")]  # the table below shows badges
    for term in TERMS:
        assert term in page, term
    if BRIEF.exists():  # the brief sits beside the repository in the workplace
        brief = "".join(p.read_text(encoding="utf-8") for p in BRIEF.glob("*.txt"))
        assert all(term in brief for term in TERMS)
    assert "支持 1 件、不支持 1 件、一部支持 1 件" in prose
    for word in ("supported", "mixed", "inconclusive", "Scoreboard", "interval"):
        assert word not in prose, word
