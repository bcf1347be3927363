"""A rule taken apart into its conditions, and the direction of its key figure."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghost_optima.book.verdicts import claims, conditions
from ghost_optima.book.verdicts.claims import Rule, evaluate


def interval(value, lo, hi):
    return {"value": value, "lo": lo, "hi": hi, "n": 8}


M4_FAVOURABLE = {  # disagreement down 21%, but the modules have more permutations
    "log10_perm_reduction": -3.0,
    "symmetry_effect_disagreement": interval(-0.21, -0.32, -0.07),
    "symmetry_effect_per_error": interval(-0.1, -0.2, 0.05),
    "acc_change": interval(-0.01, -0.03, 0.01),
    "twin_accuracy_gap": 0.005,
}


def test_explain_lists_every_condition_of_the_registered_rule_with_whether_it_held():
    text = conditions.explain("M4", M4_FAVOURABLE)
    assert "gives **not supported**" in text
    assert "`log10_perm_reduction > 0` (log10_perm_reduction = -3): **no**" in text
    assert "`symmetry_effect_disagreement.hi < 0` (symmetry_effect_disagreement.hi = -0.07)" in text
    assert "`log10_perm_reduction <= 0` (log10_perm_reduction = -3): **held**" in text
    assert text.rstrip().endswith("otherwise *mixed*.")
    rule = claims.registry()["M4"].rule
    found = conditions.conditions(rule, M4_FAVOURABLE)
    assert [len(c) for _, c in found.values()] == [4, 4]  # the top-level operands
    assert [how for how, _ in found.values()] == ["all", "any"]


@pytest.mark.parametrize("cid", ["M1", "M3", "M4"])
def test_beyond_the_twin_accuracy_margin_stability_is_judged_at_matched_accuracy(cid):
    """#26: a twin less (or more) accurate than its remedy by more than the rule's margin makes
    raw disagreement unfair, so 'not supported' then reads the per-error effect alone."""
    margin = conditions.threshold(cid, "twin_accuracy_gap", "not_supported")
    assert margin == 0.02
    base = {
        "log10_perm_group_max": 0.0,
        "log10_perm_group": 0.0,
        "log10_perm_reduction": 1.0,
        "acc_change": interval(0.0, -0.01, 0.01),
    }
    flat_raw = interval(0.01, -0.02, 0.04)  # raw disagreement: no reduction of 5%
    better_matched = interval(-0.3, -0.4, -0.2)  # at matched accuracy: a clear reduction
    rule = claims.registry()[cid].rule
    figures = dict(base, symmetry_effect_disagreement=flat_raw)
    figures["symmetry_effect_per_error"] = better_matched
    for gap, verdict in ((0.0, "not supported"), (margin / 2, "not supported"), (0.05, "mixed")):
        figures["twin_accuracy_gap"] = gap
        assert evaluate(rule, figures) == verdict, gap
    # beyond the margin the per-error effect decides 'not supported' on its own
    figures["symmetry_effect_per_error"] = interval(0.0, -0.03, 0.03)
    figures["twin_accuracy_gap"] = 0.08
    assert evaluate(rule, figures) == "not supported"
    figures["symmetry_effect_disagreement"] = interval(-0.3, -0.4, -0.2)
    assert evaluate(rule, figures) == "not supported"  # raw disagreement no longer rescues it


@pytest.mark.parametrize("cid", [c for c, k in claims.registry().items() if k.rule])
def test_conditions_agree_with_the_verdict_on_figures_reaching_every_branch(cid):
    """Read the conditions as the rule combines them and get the verdict ``evaluate`` gives."""
    rule = claims.registry()[cid].rule
    for verdict, figures in claims.branch_witnesses(rule, tries=4000).items():
        if figures is None:
            continue
        found = conditions.conditions(rule, figures)
        held = {}
        for branch, (how, parts) in found.items():
            combine = any if how == "any" else all
            held[branch] = combine(c.held for c in parts)
        expected = (
            "supported"
            if held["supported"]
            else "not supported"
            if held["not supported"]
            else rule.otherwise
        )
        assert expected == verdict == evaluate(rule, figures)
        deciding = conditions.deciding_conditions(rule, figures)
        assert deciding, cid
        if verdict == "not supported":
            assert all(c.held for c in deciding)
        elif verdict != "supported":
            assert not any(c.held for c in deciding)
        assert f"gives **{verdict}**" in conditions.explain(cid, figures)


def test_the_key_direction_is_read_from_either_branch():
    m4 = claims.registry()["M4"].rule
    assert conditions.favours_claim(m4, M4_FAVOURABLE) is True
    worse = dict(M4_FAVOURABLE, symmetry_effect_disagreement=interval(0.1, 0.02, 0.2))
    assert conditions.favours_claim(m4, worse) is False
    # a key compared with a threshold only in "not supported" (half of another figure)
    only_against = Rule("t", "n > 0.5", "x.hi < 0.5 * y", "mixed", "x")
    direction = conditions.key_direction(only_against, {"y": 40.0})
    assert direction.against and direction.bounds == (("<", 20.0),)
    assert direction.favours(30.0) and not direction.favours(10.0)
    # T2 compares its key in "supported": more than 10^80 distinct copies
    t2 = conditions.key_direction(claims.registry()["T2"].rule, {})
    assert not t2.against and t2.bounds == ((">", 80.0),)
    # T5 favours a band around 0: both bounds must hold
    t5 = conditions.key_direction(claims.registry()["T5"].rule, {})
    assert t5.favours(0.0) and not t5.favours(0.5) and not t5.favours(-0.5)


def test_a_rule_without_a_threshold_on_its_key_has_no_direction():
    rule = Rule("t", "y > 1", "y < 0", "mixed", "x")
    assert conditions.key_direction(rule, {"x": 1.0, "y": 2.0}) is None
    assert conditions.favours_claim(rule, {"x": 1.0, "y": 2.0}) is None


@given(st.floats(-10, 10), st.floats(-10, 10), st.sampled_from(["<", "<=", ">", ">="]))
def test_direction_matches_the_comparison_either_way_round(value, threshold, symbol):
    import operator

    ops = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
    flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
    key_left = Rule("t", f"x {symbol} {threshold!r}", "x != x", "mixed", "x")
    key_right = Rule("t", f"{threshold!r} {flipped[symbol]} x", "x != x", "mixed", "x")
    for rule in (key_left, key_right):
        assert conditions.favours_claim(rule, {"x": value}) == ops[symbol](value, threshold)


def test_threshold_reads_a_rules_own_bar():
    assert conditions.threshold("T3", "spurious_fraction_uniform_k14.lo") == 0.05
    assert conditions.threshold("T3", "spurious_fraction_gaussian_k14.lo") == 0.05
    assert conditions.threshold("T3", "spurious_fraction_gaussian_k14.hi", "not supported") == 0.05
    assert conditions.threshold("E5", "auroc_oof_label_disagreement_mnist1d.lo") == 0.75
    assert conditions.threshold("T1", "max_rel_change") == 1e-10
    assert (
        conditions.threshold("T2", "log10_effective_orbit_width_slope.hi", "not supported") == 0.1
    )
    relative = dataclasses.replace(  # a bar that is an expression of other figures
        claims.registry()["T2"], rule=Rule("t", "x.lo > y", "x.hi < 0.5 * y", "mixed", "x")
    )
    assert conditions.threshold(relative, "x.hi", "not supported", {"y": 40.0}) == pytest.approx(
        20.0
    )
    with pytest.raises(ValueError, match="compares"):
        conditions.threshold("T5", "full_spectrum_slope")  # only its interval is compared
    assert conditions.threshold("T5", "full_spectrum_slope.lo", "not supported") == 0.2


def test_thresholds_lists_every_bar_a_band_reads():
    """E2's rule reads each slope against a band [-t, t]: ``thresholds`` gives both ends, and
    ``threshold`` refuses to pick one of them."""
    bars = conditions.thresholds("E2", "basin_split_slope_digits.lo")
    assert len(bars) == 2 and bars[0] == -bars[1] < 0
    with pytest.raises(ValueError, match="compares basin_split_slope_digits.lo with"):
        conditions.threshold("E2", "basin_split_slope_digits.lo")
