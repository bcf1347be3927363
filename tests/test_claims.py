"""The registry and its rule evaluator."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ghost_optima.book.verdicts import claims
from ghost_optima.book.verdicts.claims import Rule, RuleError, evaluate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "CLAIMS.md"


def rule(supported, not_supported="False_", otherwise="inconclusive", key="x"):
    return Rule("text", supported, not_supported, otherwise, key)


def test_registry_lists_every_claim_of_the_spec_in_order():
    ids = list(claims.registry())
    expected = [
        "T1",
        "T2",
        "T3",
        "T4",
        "T5",
        "T6",
        "T7",
        "E1",
        "E2",
        "E3",
        "E4",
        "E5",
        "M1",
        "M2",
        "M3",
        "M4",
        "M5",
        "X1",
        "X2",
    ]
    assert ids == expected
    if SHARED.exists():  # the spec sits beside the repository in the workplace
        assert re.findall(r"\*\*([TEMX]\d) ", SHARED.read_text()) == expected


def test_every_claim_is_bilingual_and_sourced():
    for claim in claims.registry().values():
        assert claim.statement_en and claim.statement_ja and claim.source
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", claim.statement_ja), claim.id
        page = claim.notebook in ("summary_en", "checklist")  # X1, X2: checked by the build
        assert page or re.fullmatch(r"\d\d_[a-z_]+", claim.notebook), claim.notebook


def test_rules_give_the_expected_verdicts():
    r = Rule("t", "x < 1 and y.lo > 0", "x > 2 or y.hi < 0", "mixed", "x")
    assert evaluate(r, {"x": 0.5, "y": {"value": 1, "lo": 0.1, "hi": 2}}) == "supported"
    assert evaluate(r, {"x": 3, "y": {"value": 1, "lo": 0.1, "hi": 2}}) == "not supported"
    assert evaluate(r, {"x": 1.5, "y": {"value": 1, "lo": -1, "hi": 2}}) == "mixed"


def test_chained_comparisons_and_functions():
    r = Rule("t", "0.9 < abs(x) <= 1.1", "max(x, y) > 5", "inconclusive", "x")
    assert evaluate(r, {"x": -1.0, "y": 0}) == "supported"
    assert evaluate(r, {"x": 0.0, "y": 6}) == "not supported"
    assert evaluate(r, {"x": 0.0, "y": 0}) == "inconclusive"


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_comparison_matches_python(a, b):
    r = Rule("t", "a < b", "a >= b", "inconclusive", "a")
    assert evaluate(r, {"a": a, "b": b}) == ("supported" if a < b else "not supported")


def test_missing_figures_and_code_are_refused():
    with pytest.raises(RuleError, match="'y'"):
        evaluate(Rule("t", "y > 1", "x < 0", "mixed", "x"), {"x": 1})
    with pytest.raises(RuleError, match="key figure"):
        evaluate(Rule("t", "x > 1", "x < 0", "mixed", "z"), {"x": 1})
    with pytest.raises(RuleError, match="interval"):
        evaluate(Rule("t", "x.lo > 1", "x < 0", "mixed", "x"), {"x": 1})
    with pytest.raises(RuleError, match="unsupported"):
        evaluate(Rule("t", "__import__('os')", "x < 0", "mixed", "x"), {"x": 1})


def test_ledger_marks_untested_claims():
    rows = claims.ledger(
        {"T1": {"verdict": "supported", "key": "x", "figures": {"x": 1}, "notebook": "10_symmetry"}}
    )
    assert len(rows) == len(claims.registry())
    verdicts = {row["id"]: row["verdict"] for row in rows}
    assert verdicts["T1"] == "supported"
    assert all(v == claims.NOT_TESTED for cid, v in verdicts.items() if cid != "T1")


def test_every_claim_has_a_class_and_the_ledger_carries_it():
    registry = claims.registry()
    assert {c.kind for c in registry.values()} == set(claims.CLASSES)
    assert [cid for cid, c in registry.items() if c.kind == "deliverable"] == ["X1", "X2"]
    assert all(row["class"] == registry[row["id"]].kind for row in claims.ledger({}))


def test_scoreboard_counts_empirical_claims_only():
    recorded = {
        cid: {"verdict": "supported", "key": None, "figures": {}, "notebook": "n"}
        for cid in claims.registry()
    }
    recorded["E1"]["verdict"] = "mixed"
    board = claims.scoreboard(claims.ledger(recorded))
    empirical = [c for c in claims.registry().values() if c.kind == "empirical"]
    assert board["empirical"] == {"supported": len(empirical) - 1, "mixed": 1}
    assert board["identities"] == ["T1"] and board["identities_hold"]
    recorded["T1"]["verdict"] = "not supported"
    assert claims.scoreboard(claims.ledger(recorded))["identities_hold"] is False
    del recorded["T1"]
    assert claims.scoreboard(claims.ledger(recorded))["identities_hold"] is None


def replicated(verdicts: dict[str, str], again: dict[str, list[str]]) -> list[dict]:
    """Ledger rows with ``verdicts`` recorded and, for the ids of ``again``, replications that
    gave those verdicts (key figure 0.1 * run number)."""
    recorded = {
        cid: {"verdict": v, "key": None, "figures": {}, "notebook": "n"}
        for cid, v in verdicts.items()
    }
    for cid, runs in again.items():
        recorded[cid]["robustness"] = {
            "runs": len(runs),
            "agree": sum(v == verdicts[cid] for v in runs),
            "verdicts": runs,
            "key_min": 0.1,
            "key_max": 0.1 * len(runs),
        }
    return claims.ledger(recorded)


S, N = "supported", "not supported"


def test_two_disagreeing_replications_make_an_empirical_claim_unstable():
    rows = replicated(
        {"T1": S, "T2": S, "T3": N, "T4": S, "E1": N},
        {
            "T1": [S, N, N, N],  # an identity: listed as checked, never counted
            "T2": [S, S, N, "mixed"],  # 2 of 4 disagree: unstable
            "T3": [N, N, N, S],  # 1 of 4: stays not supported
            "E1": [N, N, N, N],
        },
    )
    board = claims.scoreboard(rows)
    assert board["unstable"] == ["T2"]
    assert board["empirical"] == {S: 1, N: 2, "unstable": 1, claims.NOT_TESTED: 12}
    assert not claims.is_unstable(next(r for r in rows if r["id"] == "T1"))


def test_replications_made_for_another_verdict_are_stale_and_ignored():
    rows = replicated({"T2": S}, {"T2": [N, N, N, N]})
    rows[1]["robustness"]["recorded"] = N  # they judged an older verdict
    assert claims.replications(rows[1]) is None and not claims.is_unstable(rows[1])
    rows[1]["robustness"]["recorded"] = S
    assert claims.is_unstable(rows[1])


@given(st.lists(st.sampled_from([S, N, "mixed", "inconclusive"]), min_size=4, max_size=12))
def test_unstable_exactly_when_two_replications_disagree(runs):
    rows = replicated({"T2": S, "E2": N}, {"T2": runs})
    board = claims.scoreboard(rows)
    disagree = sum(v != S for v in runs)
    assert (board["unstable"] == ["T2"]) == (disagree >= 2)
    empirical = [r for r in rows if r["class"] == "empirical"]
    assert sum(board["empirical"].values()) == len(empirical)  # counted once, somewhere


@pytest.mark.parametrize("cid", list(claims.registry()))
def test_every_rule_can_reach_each_of_its_branches(cid):
    """A rule that cannot say "not supported" cannot fail; one that cannot fall through to its
    ``otherwise`` hides the borderline cases. Deliverables (properties of the book, judged on
    counts) need only the two verdicts."""
    claim = claims.registry()[cid]
    found = claims.branch_witnesses(claim.rule)
    needed = ["supported", "not supported"]
    if claim.kind != "deliverable":
        needed.append(claim.rule.otherwise)
    for branch in needed:
        assert found[branch] is not None, f"{cid}: no figures reach '{branch}'"
        assert evaluate(claim.rule, found[branch]) == branch


def test_an_unreachable_branch_is_reported():
    never_refuted = Rule("text", "x > 1", "x > 1 and x < 0", "inconclusive", "x")
    found = claims.branch_witnesses(never_refuted)
    assert found["supported"] is not None and found["inconclusive"] is not None
    assert found["not supported"] is None
    never_borderline = Rule("text", "x >= 0", "x < 0", "mixed", "x")
    assert claims.branch_witnesses(never_borderline)["mixed"] is None
    interval_only = Rule("text", "x.lo > 0.5 and x.hi < 0.6", "x.hi < 0.1", "mixed", "x")
    assert all(v is not None for v in claims.branch_witnesses(interval_only).values())


def test_intervals_are_found_at_any_depth_and_checked_against_their_point():
    inside = {"value": 0.5, "lo": 0.25, "hi": 0.75, "n": 8}
    beyond = {"value": 0.743, "lo": 0.693, "hi": 0.735, "n": 8}  # E5's bootstrap over members
    figures = {"a": inside, "b": 3.0, "c": {"d": beyond, "e": [inside, {"f": beyond}]}}
    found = claims.intervals(figures)
    assert [path for path, _ in found] == ["a", "c.d", "c.e[0]", "c.e[1].f"]
    assert [path for path, f in found if claims.outside_interval(f)] == ["c.d", "c.e[1].f"]
    assert claims.outside_interval({"value": float("nan"), "lo": 0, "hi": 1})
    assert not claims.outside_interval({"value": 1, "lo": 1, "hi": 1})


@given(st.floats(-1e6, 1e6), st.floats(0, 1e3), st.floats(0, 1e3), st.floats(-1e3, 1e3))
def test_outside_interval_matches_a_direct_comparison(value, below, above, shift):
    figure = {"value": value + shift, "lo": value - below, "hi": value + above}
    expected = not (figure["lo"] <= figure["value"] <= figure["hi"])
    assert claims.outside_interval(figure) == expected


def _planted_tanh_minimum(width, live, copies_of_live, seed=0):
    """A one-hidden-layer tanh net (64 inputs, 10 outputs) of ``width`` units: ``live`` distinct
    random units, each repeated (up to sign) so that ``copies_of_live`` units are live in all,
    and the rest dead (all weights zero)."""
    from ghost_optima.core import mlp

    p = mlp.init_mlp([64, width, 10], seed)
    for i in range(width):
        for name in ("W1", "b1"):
            p[name][i] = p[name][i % live] * (-1) ** (i // live) if i < copies_of_live else 0.0
        p["W2"][:, i] = p["W2"][:, i % live] * (-1) ** (i // live) if i < copies_of_live else 0.0
    return p


def _t2_figures(narrow, wide, width_narrow=128, width_wide=256):
    """T2's figures from two planted minima, measured by the chapter's own instrument (one seed:
    intervals of zero width)."""
    from ghost_optima.symmetry import group, stabiliser

    eff = [stabiliser.log10_effective_orbit(p, "tanh") for p in (narrow, wide)]
    nominal = [group.log10_orbit_size([w], "tanh") for w in (width_narrow, width_wide)]
    slope = (eff[1] - eff[0]) / (nominal[1] - nominal[0])
    return {
        "count_match": 1, "min_pairwise_distance": 0.73, "loss_spread": 3e-20,
        "log10_copies_mnist_mlp": 2333.1, "log10_nominal_widest": nominal[1],
        "log10_effective_orbit_widest": {"value": eff[1], "lo": eff[1], "hi": eff[1]},
        "log10_effective_orbit_width_slope": {"value": slope, "lo": slope, "hi": slope},
    }  # fmt: skip


def test_t2_refutation_fires_on_widths_the_chapter_measures():
    """T2's "not astronomical" branch is reachable inside the measured range (128 and 256
    units): when the added units die, 20 live units of 256 give fewer than 10^80 distinct copies
    and widening adds almost none; when they copy the live ones instead, the count stays
    astronomical and keeps growing (duplicates alone cannot make it small)."""
    rule = claims.registry()["T2"].rule
    dead = _t2_figures(_planted_tanh_minimum(128, 20, 20), _planted_tanh_minimum(256, 20, 20))
    assert dead["log10_effective_orbit_widest"]["value"] < 80
    assert dead["log10_effective_orbit_width_slope"]["value"] < 0.1
    assert evaluate(rule, dead) == "not supported"
    thirty = _planted_tanh_minimum(256, 30, 30)  # the rule text's "all but about 30 units dead"
    assert 75 < _t2_figures(thirty, thirty)["log10_effective_orbit_widest"]["value"] < 85
    copied = _t2_figures(_planted_tanh_minimum(128, 60, 128), _planted_tanh_minimum(256, 60, 256))
    assert copied["log10_effective_orbit_width_slope"]["value"] > 0.5
    assert evaluate(rule, copied) == "supported"
    # a few more live units at the wider width: astronomical, but widening keeps a small share
    half = _t2_figures(_planted_tanh_minimum(128, 60, 60), _planted_tanh_minimum(256, 100, 100))
    assert evaluate(rule, half) == "mixed"


def _t3_figures(uniform_hits, gaussian_hits, starts=200, spectrum_max_diff=1e-11):
    """T3's figures as the chapter records them: counts of spurious ends out of ``starts``
    initialisations at k = n = 14, with the chapter's Wilson intervals."""
    from ghost_optima.landscape.spurious import wilson_interval

    def fraction(hits):
        lo, hi = wilson_interval(hits, starts)
        return {"value": hits / starts, "lo": lo, "hi": hi, "n": starts}

    return {
        "spectrum_max_diff": spectrum_max_diff,
        "spurious_fraction_uniform_k14": fraction(uniform_hits),
        "spurious_fraction_gaussian_k14": fraction(gaussian_hits),
    }


def test_t3_each_branch_is_reached_by_counts_of_the_chapters_size():
    """With the chapter's 200 starts per arm, 3 spurious ends from the Gaussian (primary) start
    already put the interval below one in twenty (the refutation); 20 of 200 are common in both
    arms."""
    rule = claims.registry()["T3"].rule
    assert rule.key == "spurious_fraction_gaussian_k14"
    assert evaluate(rule, _t3_figures(150, 3)) == "not supported"
    assert evaluate(rule, _t3_figures(3, 150)) == "mixed"  # only the second arm is rare
    assert evaluate(rule, _t3_figures(20, 20)) == "supported"
    assert evaluate(rule, _t3_figures(150, 10)) == "mixed"  # 0.05 inside the interval
    assert evaluate(rule, _t3_figures(4, 124)) == "mixed"  # the uniform start rarely sticks
    assert evaluate(rule, _t3_figures(124, 149, spectrum_max_diff=1e-5)) == "not supported"
