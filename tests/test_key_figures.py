"""The key figure in words: its unit, its sign and the way it points, chosen by code."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghost_optima.book.pages import key_figures
from ghost_optima.book.pages.key_figures import plain_figure
from ghost_optima.book.verdicts import claims


def interval(value, lo, hi):
    return {"value": value, "lo": lo, "hi": hi, "n": 8}


def test_plain_figures_round_to_what_the_interval_supports():
    assert plain_figure({"value": 0.5012, "lo": 0.25, "hi": 0.75}) == (
        "0.50 (95% interval 0.25 to 0.75)"
    )
    assert plain_figure({"value": -0.0613, "lo": -0.0712, "hi": -0.0514}) == (
        "-0.061 (95% interval -0.071 to -0.051)"
    )
    assert plain_figure({"value": 12.3, "lo": 3.0, "hi": 40.0}, "ja") == "12(95% 区間 3〜40)"
    assert plain_figure(3.06e-15) == "$3.1 \\times 10^{-15}$"
    assert plain_figure(2333.4) == "2,333" and plain_figure(28700.0) == "28,700"
    assert plain_figure(7) == "7" and plain_figure({"value": 0.12345}) == "0.123"


def test_each_unit_is_written_its_own_way():
    assert plain_figure(interval(0.12, 0.08, 0.17), "en", "share") == (
        "12.0% (95% interval 8.0% to 17.0%)"
    )
    assert plain_figure(interval(0.295, 0.102, 0.451), "en", "share difference") == (
        "+30 percentage points (95% interval +10 to +45)"
    )
    assert plain_figure(0.295, "ja", "share difference") == "+29.5 %ポイント"
    assert plain_figure(interval(-0.21, -0.35, -0.08), "en", "relative change") == (
        "-21% (95% interval -35% to -8%)"
    )
    assert plain_figure(interval(-0.031, -0.05, 0.012), "ja", "change") == (
        "-0.031(95% 区間 -0.050〜+0.012)"
    )


@given(st.floats(-1, 1, allow_subnormal=False), st.sampled_from(["en", "ja"]))
def test_a_share_difference_is_written_in_points_a_hundred_times_its_value(value, lang):
    text = plain_figure(value, lang, "share difference")
    number = re.match(r"^([+-]?[\d,.]+)", text.replace("$", ""))
    if number and abs(value) >= 1e-5:  # very small values are written as powers of ten
        assert float(number.group(1).replace(",", "")) == pytest.approx(100 * value, abs=0.06)
        assert (value > 0) == text.startswith("+")


@given(st.floats(0, 1, allow_subnormal=False), st.sampled_from(["en", "ja"]))
def test_a_share_is_written_in_percent_never_in_points(value, lang):
    text = plain_figure(value, lang, "share")
    assert "points" not in text and "ポイント" not in text
    assert text.endswith("%")


@pytest.mark.parametrize(
    ("figure", "word"),
    [
        (interval(-0.21, -0.35, -0.08), "a decrease"),
        (interval(-0.05, -0.2, 0.1), "no clear change"),
        (interval(0.2, 0.1, 0.3), "an increase"),
        (-0.3, "a decrease"),
        (0.3, "an increase"),
    ],
)
def test_the_change_word_agrees_with_the_sign(figure, word):
    assert key_figures.change_word(figure) == word


def row(cid, verdict, figures):
    return next(
        r
        for r in claims.ledger(
            {
                cid: {
                    "verdict": verdict,
                    "key": claims.registry()[cid].rule.key,
                    "figures": figures,
                    "notebook": claims.registry()[cid].notebook,
                }
            }
        )
        if r["id"] == cid
    )


M4_FAVOURABLE = {
    "log10_perm_reduction": -3.0,
    "symmetry_effect_disagreement": interval(-0.21, -0.32, -0.07),
    "symmetry_effect_per_error": interval(-0.1, -0.2, 0.05),
    "acc_change": interval(-0.01, -0.03, 0.01),
    "twin_accuracy_gap": 0.005,
}


def test_the_key_figure_says_its_sign_and_which_way_it_points():
    m4 = row("M4", "not supported", M4_FAVOURABLE)
    text = key_figures.key_figure(m4)
    assert text.endswith(": -21% (95% interval -32% to -7%), a decrease, pointing the claim's way")
    assert key_figures.key_figure(m4, "ja").endswith("、減少、主張を支持する向き")
    note = key_figures.placement_note(m4)
    assert note.startswith("The key figure points the claim's way, but its rule decided")
    assert "1 other condition of its rule for 'not supported' held" in note
    assert "{ref}`M4 <rule-m4>`" in key_figures.placement_note(m4, "ja")
    mixed = row(
        "M4",
        "mixed",
        dict(
            M4_FAVOURABLE,
            log10_perm_reduction=1.0,
            symmetry_effect_disagreement=interval(-0.21, -0.32, 0.07),
        ),
    )
    assert "the upper end of its 95% interval, +7%, is not below 0%" in (
        key_figures.placement_note(mixed)
    )
    assert "95% 区間の上端(+7%)は 0% より小さくない" in key_figures.placement_note(mixed, "ja")
    agreeing = row(
        "M4",
        "not supported",
        dict(
            M4_FAVOURABLE,
            log10_perm_reduction=1.0,
            symmetry_effect_disagreement=interval(0.05, -0.02, 0.1),
        ),
    )
    assert key_figures.key_figure(agreeing).endswith("pointing against the claim")
    assert key_figures.placement_note(agreeing) is None


def test_replications_are_written_in_the_key_figures_unit_and_say_when_the_run_is_outside():
    m5 = row(
        "M5",
        "supported",
        {
            "cleaning_margin": interval(0.295, 0.1, 0.45),
            "cleaning_accuracy_change": interval(0.0, -0.005, 0.005),
        },
    )
    m5["robustness"] = {
        "runs": 4,
        "agree": 4,
        "verdicts": ["supported"] * 4,
        "key_min": 0.113,
        "key_max": 0.246,
    }
    text = key_figures.replication_text(m5)
    assert "key figure +11.3 to +24.6 percentage points" in text
    assert text.endswith("the published run's figure lies above that range")
    assert "(本実行の値はこの範囲より上)" in key_figures.replication_text(m5, "ja")
    m5["robustness"].update(key_min=0.2, key_max=0.3)
    assert "published" not in key_figures.replication_text(m5)
