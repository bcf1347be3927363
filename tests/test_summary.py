"""The executive pages follow the verdicts: wording rules and generated content."""

import pytest

from ghost_optima.book.pages import summary
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
    assert "## 成り立ったこと" in japanese and "実証的な主張: 1 不支持、" in japanese


def test_checklist_switches_to_the_corrected_phrasing():
    supported = summary.checklist_page(rows_with({"T2": "supported", "E4": "supported"}))
    refuted = summary.checklist_page(rows_with({"T2": "supported", "E4": "not supported"}))
    phrase = deliverables.checklist()["phrases"][0]
    assert claims.join_cjk(phrase["say_en"]) in supported
    assert claims.join_cjk(phrase["instead_en"]) in refuted
    assert claims.join_cjk(phrase["instead_ja"]) in refuted


def test_join_cjk_removes_only_gaps_between_japanese_characters():
    assert claims.join_cjk("付け替え\n られる ReLU では") == "付け替えられる ReLU では"


def test_verdict_figure_is_drawn_in_each_language_with_japanese_glyphs():
    import warnings

    rows = rows_with({"T1": "supported", "E4": "not supported"})
    english = summary.draw_figure(rows, "en")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*missing from font")  # tofu boxes fail
        japanese = summary.draw_figure(rows, "ja")
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
    assert "same verdict in 3/4 replications, key figure 0.25 to 0.75" in held
    japanese = summary.summary_page(rows, "ja")
    assert "1 不安定" in japanese and "不安定(T2)" in japanese
    assert "独立な再現 4 回中 2 回で同じ判定" in japanese
    ledger = ledger.ledger_page("quick", rows, {}, {})
    assert "Unstable (counted as such, not under their verdict): T2." in ledger
    t2 = ledger[ledger.index("* - T2") : ledger.index("* - T3")]
    assert "{bdg-warning-line}`unstable`" in t2
    assert "2/4 same verdict (others: mixed ×1, not supported ×1); key figure 0.25 to 0.75" in t2
    m1 = ledger[ledger.index("* - M1") : ledger.index("* - M2")]
    assert "unstable" not in m1 and "3/4 same verdict" in m1
    for lang in ("en", "ja"):
        assert summary.draw_figure(rows, lang).startswith(b"\x89PNG")


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


def test_summaries_count_the_rules_the_git_audit_flags():
    rows = rows_with({"T2": "supported", "E4": "not supported"})
    assert summary.audit_line(rows, "en") is None  # no git history: nothing claimed
    for row in rows:
        row["rule_commit"] = "0123456789"
        row["rule_flagged"] = row["id"] in ("T2", "M3")
    english = summary.summary_page(rows, "en")
    assert "2 of the 17 rules in force were changed together with their chapter" in english
    assert "(T2, M3)" in english
    assert "現行の規則 17 件のうち 2 件" in summary.summary_page(rows, "ja")


def test_the_ledger_counts_flagged_rules_over_the_claims():
    from ghost_optima.book.pages import ledger

    rows = rows_with({"T2": "supported"})
    for row in rows:
        row["rule_commit"], row["rule_date"] = "0123456789", "2026-12-01"
        row["rule_flagged"] = row["id"] in ("T2", "X1")  # X1 is a deliverable: not counted
    ledger = ledger.ledger_page("quick", rows, {}, {})
    assert "(1 of the 17 rules of claims in force are flagged:" in ledger
