"""Calibration and power of the empirical claims' key figures, from a build's replications.

The main run of a claim notebook and its replications (``verify``: the same experiment with
disjoint base seeds) are ``k = R + 1`` independent runs of one experiment. Their key figures
test two things the book otherwise takes on trust.

**Calibration.** Each run gives its key figure a 95% percentile bootstrap interval over the
units that vary; if that interval is honest, the key figure moves from run to run by about
its width. Defined, for a key figure recorded with an interval ``[lo, hi]`` in every run:

- the *spread*: the sample standard deviation (``ddof=1``) of the ``k`` runs' key figures;
- the *within-run SE*: the mean over the ``k`` runs of ``(hi - lo) / (2 * Z95)``, the standard
  error a normal 95% interval of that width implies (``Z95 = 1.96``);
- the *replication ratio*: spread / within-run SE. About 1 when the intervals are calibrated;
  above ``CALIBRATION_LIMIT`` the key figure is named *overdispersed* on the ledger (its interval
  understates how much it moves between runs). Under calibration, ``(k - 1) ratio**2`` is
  about chi-square with ``k - 1`` degrees of freedom, so a ratio above 2 happens by chance with
  probability 0.003 at ``k = 5`` and 0.05 at ``k = 2``.

**The main run among its replications.** The main run is one draw of the same experiment, so
its key figure should look like theirs: it *agrees* when it lies within the range (lowest to
highest) of the replications' key figures, or, failing that, when its own interval overlaps
the interval of at least one replication. Otherwise the ledger flags it.

**Power.** For an empirical claim with a decided verdict (``supported`` or ``not supported``),
the units its key figure would need for that verdict to hold in ``POWER_RUNS`` of
``POWER_RUNS`` replications, at the effect the runs observed:

- the *effect*: the distance from the mean of the ``k`` runs' key figures to the nearest bar
  its rule compares the key figure with (its value, or an interval's end, in either branch);
- the key figure varies between runs with the spread ``s`` at the ``n`` units it was computed
  from (the figure's ``n``), and as ``1 / sqrt(units)``: ``s sqrt(n / N)`` at ``N`` units. When
  the nearest bar is read on an interval's end (``x.lo`` or ``x.hi``), the interval's mean
  half-width ``h`` (also shrinking as ``1 / sqrt(units)``) must clear it too;
- a run keeps the verdict when its key figure stays on the runs' side of that bar, beyond the
  half-width when one applies. All ``POWER_RUNS`` runs do so with probability ``POWER`` when each
  does with probability ``POWER ** (1 / POWER_RUNS)``: ``(effect - h sqrt(n/N)) / (s sqrt(n/N))
  >= z``, ``z = Phi^-1(POWER ** (1 / POWER_RUNS))`` (1.61), that is
  ``N = n ((z s + h) / effect) ** 2``, rounded up;
- the rule for the label, fixed before any number was seen: a claim whose ``N`` exceeds the
  ``n`` units its profile gave it is **underpowered at this budget**, and the ledger says so,
  with the units it would need, beside its verdict instead of letting it stand alone.

The effect and spread are the runs' own; with few runs (the quick profile makes one
replication) both are rough, and the pages say how many runs they come from.
"""

import math
import statistics

from ghost_optima.book.verdicts import conditions
from ghost_optima.book.verdicts.claims import RuleError, figure_value, registry

Z95 = 1.96
"""The normal quantile of a two-sided 95% interval: a half-width over Z95 is a standard error."""
CALIBRATION_LIMIT = 2.0
"""A key figure whose replication ratio exceeds this is named overdispersed on the ledger."""
POWER_RUNS = 4
"""The replications a verdict should hold in, all of them (the published profile makes 4)."""
POWER = 0.8
"""The probability with which the verdict should hold in all ``POWER_RUNS`` replications."""
UNDERPOWERED = "underpowered at this budget"
"""The label of an empirical claim whose units needed (``POWER``, ``POWER_RUNS``) exceed the
units its profile gave its key figure."""

DECIDED = ("supported", "not supported")


def has_interval(figure) -> bool:
    return isinstance(figure, dict) and {"lo", "hi"} <= figure.keys()


def within_se(figure) -> float | None:
    """The standard error a figure's 95% interval implies, ``(hi - lo) / (2 Z95)``; None
    without an interval."""
    if not has_interval(figure):
        return None
    return (float(figure["hi"]) - float(figure["lo"])) / (2 * Z95)


def _overlap(a: dict, b: dict) -> bool:
    return float(a["lo"]) <= float(b["hi"]) and float(b["lo"]) <= float(a["hi"])


def calibrate(main, replicas: list) -> dict:
    """The calibration of one key figure: ``main`` (the main run's, a number or
    ``{"value", "lo", "hi", "n"}``) against ``replicas`` (its replications', at least one).

    Returns ``runs`` (k), the key figures ``values`` (main first), ``spread`` (their SD,
    ``ddof=1``), ``within_se`` (the mean within-run SE; None unless every run has an interval),
    ``replication_ratio`` (spread / within-run SE; None without intervals or when they have no
    width), ``overdispersed`` (ratio above ``CALIBRATION_LIMIT``), ``main_inside`` (the main
    key figure within the replications' range), ``main_overlaps`` (its interval overlaps one of
    theirs; None without intervals) and ``main_agrees`` (either; False flags it)."""
    if not replicas:
        raise ValueError("calibration needs at least one replication")
    figures = [main, *replicas]
    values = [figure_value(f) for f in figures]
    spread = statistics.stdev(values)
    every = all(has_interval(f) for f in figures)
    se = statistics.fmean(within_se(f) for f in figures) if every else None
    ratio = spread / se if se else None
    others = values[1:]
    inside = min(others) <= values[0] <= max(others)
    overlaps = any(_overlap(main, f) for f in replicas) if every else None
    return {
        "runs": len(values),
        "values": values,
        "spread": spread,
        "within_se": se,
        "replication_ratio": ratio,
        "overdispersed": ratio is not None and ratio > CALIBRATION_LIMIT,
        "main_inside": inside,
        "main_overlaps": overlaps,
        "main_agrees": inside or bool(overlaps),
    }


def z_power(power: float = POWER, runs: int = POWER_RUNS) -> float:
    """``Phi^-1(power ** (1 / runs))``: how many SDs each run must clear its bar by for all
    ``runs`` to do so with probability ``power``."""
    return statistics.NormalDist().inv_cdf(power ** (1 / runs))


def units_needed(effect: float, spread: float, half_width: float, units: int) -> int | None:
    """``N = n ((z s + h) / effect) ** 2`` rounded up (at least 1), the units at which a key
    figure ``effect`` from its bar, with between-run SD ``spread`` and a half-width
    ``half_width`` to clear (0 when the bar reads its value) at ``units`` units, keeps its side
    in all ``POWER_RUNS`` runs with probability ``POWER``; None (no number of units) when the
    effect is 0."""
    if effect <= 0:
        return None
    return max(1, math.ceil(units * ((z_power() * spread + half_width) / effect) ** 2))


def key_bars(claim_id: str, figures: dict) -> list[tuple[str, float]]:
    """``(part, bar)`` for every bar the rule of ``claim_id`` compares its key figure with, in
    either branch: ``part`` is ``value``, ``lo`` or ``hi`` (the key's value or interval end)."""
    claim = registry()[claim_id]
    found = set()
    for branch in conditions.BRANCHES:
        for part in ("value", "lo", "hi"):
            read = claim.rule.key if part == "value" else f"{claim.rule.key}.{part}"
            try:
                found |= {(part, t) for t in conditions.thresholds(claim, read, branch, figures)}
            except RuleError:  # a bar that is an expression of figures not recorded
                continue
    return sorted(found, key=lambda bar: (bar[1], bar[0]))


def power(claim_id: str, verdict: str, figures: dict, found: dict) -> dict | None:
    """The power of a decided verdict (see the module): ``units`` (the key figure's ``n``),
    ``bar`` and ``bar_part`` (the nearest bar, and ``value`` or, when the rule reads it on an
    interval's end, the end that faces it from the runs' side), ``effect`` (the runs' mean
    key figure's distance to it), ``needed`` (units, None when no number suffices) and
    ``underpowered`` (needed above units, or none suffices). None when the verdict is not
    decided, the key figure has no ``n`` or interval, or its rule compares it with no bar.
    ``figures``: the main run's; ``found``: its ``calibrate`` entry."""
    key = figures.get(registry()[claim_id].rule.key)
    if verdict not in DECIDED or not has_interval(key) or "n" not in key:
        return None
    bars = key_bars(claim_id, figures)
    if not bars or found["within_se"] is None:
        return None
    mean = statistics.fmean(found["values"])
    bar = min((b for _, b in bars), key=lambda b: abs(mean - b))
    on_interval = any(part != "value" for part, b in bars if b == bar)
    # the end of the interval that faces the bar from the runs' side must clear it
    part = ("lo" if mean >= bar else "hi") if on_interval else "value"
    units = int(key["n"])
    half_width = Z95 * found["within_se"] if on_interval else 0.0
    effect = abs(mean - bar)
    needed = units_needed(effect, found["spread"], half_width, units)
    return {
        "units": units,
        "bar": bar,
        "bar_part": part,
        "effect": effect,
        "needed": needed,
        "underpowered": needed is None or needed > units,
    }


def report(rows: list[dict], robustness: dict[str, dict]) -> dict:
    """``calibration.json``: per empirical claim with replications (``robustness``: the
    ``verify.robustness`` claims, whose ``key_figures`` are the replications' key figures), its
    ``calibrate`` entry and ``power``, and the constants the labels read."""
    found = {}
    for row in rows:
        entry = robustness.get(row["id"])
        if row["class"] != "empirical" or not entry or not row.get("key"):
            continue
        main = row["figures"].get(row["key"])
        replicas = [f for f in entry.get("key_figures", []) if f is not None]
        if main is None or not replicas:
            continue
        calibrated = calibrate(main, replicas)
        calibrated["power"] = power(row["id"], row["verdict"], row["figures"], calibrated)
        found[row["id"]] = calibrated
    return {
        "z95": Z95,
        "calibration_limit": CALIBRATION_LIMIT,
        "power": POWER,
        "power_runs": POWER_RUNS,
        "z_power": z_power(),
        "claims": found,
    }


def attach(rows: list[dict], found: dict) -> None:
    """Give each claim row its ``calibration`` entry (``replication_ratio`` among its fields)."""
    for row in rows:
        if row["id"] in found["claims"]:
            row["calibration"] = found["claims"][row["id"]]


def underpowered(row: dict) -> bool:
    """Whether the row's calibration labels it ``UNDERPOWERED``."""
    return bool(((row.get("calibration") or {}).get("power") or {}).get("underpowered"))
