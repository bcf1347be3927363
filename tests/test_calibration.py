"""Calibration and power of the key figures across a build's replications, on planted figures:
a well-calibrated set and an overdispersed one, a main run outside its replications, an
underpowered claim and a well-powered one, each checked against numpy and a simulation."""

import numpy as np
import pytest

from ghost_optima.book.pages import calibration_table, ledger
from ghost_optima.book.verdicts import calibration, claims
from ghost_optima.book.verdicts.calibration import (
    CALIBRATION_LIMIT,
    POWER,
    POWER_RUNS,
    UNDERPOWERED,
    Z95,
    calibrate,
    power,
    units_needed,
    z_power,
)

VALUES = [0.60, 0.66, 0.55, 0.63, 0.58]  # main run first, then four replications


def planted(values, half_width, n=100):
    return [{"value": v, "lo": v - half_width, "hi": v + half_width, "n": n} for v in values]


def sd(values):
    return float(np.std(values, ddof=1))


def test_a_well_calibrated_set_has_a_ratio_near_one():
    half = Z95 * sd(VALUES)  # intervals exactly as wide as the spread implies
    main, *others = planted(VALUES, half)
    found = calibrate(main, others)
    assert found["runs"] == 5 and found["spread"] == pytest.approx(sd(VALUES))
    assert found["within_se"] == pytest.approx(half / Z95)
    assert found["replication_ratio"] == pytest.approx(1.0)
    assert not found["overdispersed"]
    assert found["main_inside"] and found["main_agrees"]


def test_an_overdispersed_set_is_flagged_above_the_limit():
    half = Z95 * sd(VALUES) / 3  # intervals a third as wide as the spread implies
    found = calibrate(*planted(VALUES[:1], half), planted(VALUES[1:], half))
    assert found["replication_ratio"] == pytest.approx(3.0)
    assert found["replication_ratio"] > CALIBRATION_LIMIT and found["overdispersed"]
    # with unequal widths, the SE is the mean of the runs' own (numpy's answer)
    figures = planted(VALUES, 0.01)
    figures[0]["hi"] += 0.02
    found = calibrate(figures[0], figures[1:])
    se = np.mean([(f["hi"] - f["lo"]) / (2 * 1.96) for f in figures])
    assert found["replication_ratio"] == pytest.approx(sd(VALUES) / se)


def test_a_ratio_needs_intervals_with_width():
    assert calibrate(0.5, [0.6, 0.7])["replication_ratio"] is None
    flat = [{"value": v, "lo": v, "hi": v} for v in VALUES]
    found = calibrate(flat[0], flat[1:])
    assert found["replication_ratio"] is None and not found["overdispersed"]
    with pytest.raises(ValueError):
        calibrate(0.5, [])


def test_a_main_run_outside_its_replications_is_flagged_unless_its_interval_overlaps():
    replicas = planted([0.54, 0.61, 0.70, 0.78], 0.03)
    outside = calibrate(planted([0.90], 0.03)[0], replicas)  # the T4
    assert not outside["main_inside"] and outside["main_overlaps"] is False
    assert not outside["main_agrees"]
    near = calibrate(planted([0.82], 0.03)[0], replicas)  # outside, interval reaches 0.81
    assert not near["main_inside"] and near["main_overlaps"] and near["main_agrees"]
    inside = calibrate(planted([0.65], 0.001)[0], replicas)
    assert inside["main_inside"] and not inside["main_overlaps"] and inside["main_agrees"]
    plain = calibrate(0.9, [0.5, 0.6])  # no intervals: only the range can tell
    assert plain["main_overlaps"] is None and not plain["main_agrees"]


@pytest.fixture
def planted_claim(monkeypatch):
    """A registry with one claim Z1: supported when x.lo > 0.5, not supported when x.hi < 0.5."""
    rule = claims.Rule("planted", "x.lo > 0.5", "x.hi < 0.5", "inconclusive", "x")
    claim = claims.Claim("Z1", "t", "t", "x", "x", "share", "s", "empirical", "nb", "s", "s", rule)
    monkeypatch.setattr(calibration, "registry", lambda: {"Z1": claim})
    return claim


def held_in_all(n, units, mean, spread, half, bar, rng, trials=200_000):
    """Simulated probability that all ``POWER_RUNS`` runs at ``n`` units keep ``lo > bar``."""
    scale = np.sqrt(units / n)
    keys = rng.normal(mean, spread * scale, size=(trials, POWER_RUNS))
    return float(np.mean(np.all(keys - half * scale > bar, axis=1)))


def test_units_needed_keep_the_verdict_in_four_of_four_runs_by_simulation():
    rng = np.random.default_rng(0)
    mean, spread, half, bar, units = 0.56, 0.03, 0.02, 0.5, 100
    needed = units_needed(mean - bar, spread, half, units)
    assert needed == int(np.ceil(units * ((z_power() * spread + half) / (mean - bar)) ** 2))
    assert held_in_all(needed, units, mean, spread, half, bar, rng) == pytest.approx(
        POWER, abs=0.01
    )
    assert held_in_all(units, units, mean, spread, half, bar, rng) < POWER  # the budget is short
    assert units_needed(0.0, spread, half, units) is None


def test_an_underpowered_claim_is_labelled_with_the_units_it_needs(planted_claim):
    figures = planted([0.56, 0.60, 0.51, 0.58, 0.55], 0.04)  # runs close to the bar 0.5
    found = calibrate(figures[0], figures[1:])
    got = power("Z1", "supported", {"x": figures[0]}, found)
    assert (got["bar"], got["bar_part"]) == (0.5, "lo")
    assert got["effect"] == pytest.approx(np.mean([f["value"] for f in figures]) - 0.5)
    expected = units_needed(got["effect"], found["spread"], Z95 * found["within_se"], 100)
    assert got["needed"] == expected > 100 and got["underpowered"]
    row = {"id": "Z1", "class": "empirical", "calibration": {**found, "power": got}}
    assert calibration.underpowered(row)
    assert f"`{UNDERPOWERED}` (needs {expected:,} units (has 100))" in (
        calibration_table.verdict_mark(row)
    )
    assert (
        calibration_table.underpowered_text(row)
        == f"{UNDERPOWERED}: needs {expected:,} units (has 100)"
    )
    assert f"必要なユニット数 {expected:,}(現在 100)" in calibration_table.underpowered_text(
        row, "ja"
    )


def test_a_well_powered_claim_and_undecided_verdicts_are_not_labelled(planted_claim):
    figures = planted([0.90, 0.91, 0.89, 0.92, 0.90], 0.01)  # far above the bar
    found = calibrate(figures[0], figures[1:])
    got = power("Z1", "supported", {"x": figures[0]}, found)
    assert got["needed"] < 100 and not got["underpowered"]
    assert calibration_table.units_text({**got, "needed": 1}) == "needs 1 unit (has 100)"
    assert power("Z1", "inconclusive", {"x": figures[0]}, found) is None
    row = {"id": "Z1", "class": "empirical", "calibration": {**found, "power": got}}
    assert calibration_table.verdict_mark(row) == ""
    assert calibration_table.underpowered_text(row) is None
    on_bar = planted([0.5, 0.52, 0.48], 0.01)  # the runs' mean on the bar: no units suffice
    got = power("Z1", "supported", {"x": on_bar[0]}, calibrate(on_bar[0], on_bar[1:]))
    assert got["needed"] is None and got["underpowered"]


def test_bars_are_read_from_both_branches_and_from_other_figures_when_recorded(monkeypatch):
    def registered(supported, not_supported):
        rule = claims.Rule("planted", supported, not_supported, "inconclusive", "x")
        claim = claims.Claim(
            "Z2", "t", "t", "x", "x", "number", "s", "empirical", "nb", "s", "s", rule
        )
        monkeypatch.setattr(calibration, "registry", lambda: {"Z2": claim})

    registered("-0.1 <= x.lo and x.hi <= 0.1", "x > 1 or x.hi < -2")
    assert calibration.key_bars("Z2", {}) == [
        ("hi", -2.0),
        ("lo", -0.1),
        ("hi", 0.1),
        ("value", 1.0),
    ]
    registered("x.lo > y", "x < 0")
    assert calibration.key_bars("Z2", {}) == [("value", 0.0)]  # y not recorded: its bar unknown
    assert calibration.key_bars("Z2", {"y": 3.0}) == [("value", 0.0), ("lo", 3.0)]
    figures = planted([0.2, 0.25, 0.22], 0.01)
    found = calibrate(figures[0], figures[1:])
    registered("x.lo > y", "x.hi < y")
    assert power("Z2", "supported", {"x": figures[0]}, found) is None  # no bar known
    assert power("Z2", "supported", {"x": 0.2}, found) is None  # no interval, no units


def test_every_empirical_rule_compares_its_key_figure_with_a_bar_to_power_against():
    """Power is computed against the nearest bar of the key figure: every empirical rule has
    one (from its constants alone), on its value or an interval's end."""
    for cid, claim in claims.registry().items():
        if claim.kind != "empirical" or claim.rule is None:
            continue
        bars = calibration.key_bars(cid, {})
        assert bars, f"{cid}: its rule compares its key figure with no bar; power needs one"
        assert all(part in ("value", "lo", "hi") for part, _ in bars), cid


def rows_with_calibration():
    """Ledger rows whose T4 is planted overdispersed and outside its replications, and whose M1
    is well calibrated; the registry's own claims otherwise."""
    rows = claims.ledger({})
    calibrated = {
        "T4": calibrate(planted([0.90], 0.01)[0], planted([0.54, 0.61, 0.70, 0.78], 0.01)),
        "M1": calibrate(*planted([0.60], 0.1), planted(VALUES[1:], 0.1)),
    }
    for row in rows:
        if row["id"] in calibrated:
            row.update(verdict="supported", calibration={**calibrated[row["id"]], "power": None})
    return rows


def test_the_ledger_names_overdispersed_and_outlying_key_figures():
    rows = rows_with_calibration()
    page = ledger.ledger_page("quick", rows, {}, {})
    section = page[page.index("## Calibration and power") :]
    assert "named overdispersed: T4." in section
    assert "the main runs that do neither are flagged: T4." in section
    assert "(overdispersed)" in section[section.index("| [T4]") :].splitlines()[0]
    t4 = claims.registry()["T4"]
    why = (
        f"- **T4**: the interval resamples {t4.interval_resamples}; "
        f"each run fixes {t4.interval_fixed}."
    )
    assert why in section.splitlines() and "- **M1**" not in section  # M1 is well calibrated

    m1 = section[section.index("| [M1]") :].splitlines()[0]
    assert "within their range" in m1 and "overdispersed" not in m1
    assert f"*{UNDERPOWERED}*: none." in section
    assert "{ref}`calibration`" in page
    bare = ledger.ledger_page("quick", claims.ledger({}), {}, {})
    assert "## Calibration and power" not in bare and "{ref}`calibration`" not in bare


def test_the_summaries_say_underpowered_beside_the_verdict():
    from ghost_optima.book.pages import summary

    rows = rows_with_calibration()
    power_entry = {"units": 40, "needed": 1234, "underpowered": True}
    m1 = next(r for r in rows if r["id"] == "M1")
    m1["calibration"]["power"] = power_entry
    english = summary.summary_page(rows, "en")
    item = next(line for line in english.splitlines() if line.startswith("- **M1**"))
    assert f"{UNDERPOWERED}: needs 1,234 units (has 40)" in item
    assert "必要なユニット数 1,234(現在 40)" in summary.summary_page(rows, "ja")
    page = ledger.ledger_page("quick", rows, {}, {})
    assert f"*{UNDERPOWERED}*: M1." in page


def test_every_empirical_claim_says_what_its_interval_resamples_and_what_a_run_fixes():
    for claim in claims.registry().values():
        declared = bool(claim.interval_resamples) and bool(claim.interval_fixed)
        assert declared == (claim.kind == "empirical"), claim.id
