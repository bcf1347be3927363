"""The ledger's calibration and power section, from each empirical claim's ``calibration``
(``verdicts.calibration``: the main run and its replications as runs of one experiment).

Every number is the build's, and every word that depends on one (overdispersed, outside its
replications, underpowered at this budget) is chosen here by the rules of
``verdicts.calibration``, whose constants the text states.
"""

from ghost_optima.book.pages.key_figures import in_unit, plain_number
from ghost_optima.book.verdicts import claims
from ghost_optima.book.verdicts.calibration import (
    CALIBRATION_LIMIT,
    POWER,
    POWER_RUNS,
    UNDERPOWERED,
    Z95,
    underpowered,
    z_power,
)


def _entry(row: dict) -> dict | None:
    return row.get("calibration") if row["class"] == "empirical" else None


def overdispersed(rows: list[dict]) -> list[str]:
    """Ids of the key figures whose replication ratio exceeds ``CALIBRATION_LIMIT``."""
    return [r["id"] for r in rows if (_entry(r) or {}).get("overdispersed")]


def outside_replications(rows: list[dict]) -> list[str]:
    """Ids of the claims whose main run neither lies within its replications' range nor has an
    interval overlapping one of theirs."""
    return [r["id"] for r in rows if _entry(r) and not _entry(r)["main_agrees"]]


def underpowered_ids(rows: list[dict]) -> list[str]:
    return [r["id"] for r in rows if _entry(r) and underpowered(r)]


def units(n: int) -> str:
    return f"{n:,} unit" + ("" if n == 1 else "s")


def units_text(power: dict) -> str:
    """``needs 1,200 units (has 300)``, or that no number suffices."""
    if power["needed"] is None:
        return f"no number of units suffices (has {power['units']:,})"
    return f"needs {units(power['needed'])} (has {power['units']:,})"


def verdict_mark(row: dict) -> str:
    """What the ledger's verdict cell adds to an underpowered claim's verdict."""
    if not (_entry(row) and underpowered(row)):
        return ""
    return f" {{bdg-warning-line}}`{UNDERPOWERED}` ({units_text(row['calibration']['power'])})"


def underpowered_text(row: dict, lang: str = "en") -> str | None:
    """The summaries' words for an underpowered claim (None for any other)."""
    if not (_entry(row) and underpowered(row)):
        return None
    power = row["calibration"]["power"]
    if lang == "en":
        return f"{UNDERPOWERED}: {units_text(power)}"
    if power["needed"] is None:
        return f"この予算では検出力不足:どのユニット数でも足りない(現在 {power['units']:,})"
    return f"この予算では検出力不足:必要なユニット数 {power['needed']:,}(現在 {power['units']:,})"


def _amount(x: float | None, unit: str) -> str:
    """A spread or standard error (positive) written as the table writes the key figures."""
    if x is None:
        return "—"
    return in_unit(x, "en", unit, points=False).lstrip("+")


def _main_words(entry: dict) -> str:
    if entry["main_inside"]:
        return "within their range"
    if entry["main_overlaps"]:
        return "outside their range; its interval overlaps one of theirs"
    return "**outside their range and intervals** (flagged)"


def _ratio_words(entry: dict) -> str:
    ratio = entry["replication_ratio"]
    if ratio is None:
        return "— (no interval width)"
    text = plain_number(ratio, 1)
    return f"**{text}** (overdispersed)" if entry["overdispersed"] else text


def _power_words(entry: dict) -> str:
    power = entry.get("power")
    if power is None:
        return "—"
    words = units_text(power)
    return f"{UNDERPOWERED}: {words}" if power["underpowered"] else words


def _named(ids: list[str]) -> str:
    return ", ".join(ids) if ids else "none"


def pointer(rows: list[dict]) -> str:
    """The ledger's sentence that points to the section (empty when there is none)."""
    if not any(_entry(r) for r in rows):
        return ""
    return (
        " How far each key figure moves between runs against its own interval, and the units "
        "a verdict would need to hold in every replication, are under {ref}`calibration`."
    )


def section(rows: list[dict]) -> list[str]:
    """``## Calibration and power``: the words, then one table row per empirical claim with
    replications (nothing when no claim has any)."""
    shown = [r for r in rows if _entry(r)]
    if not shown:
        return []
    runs = sorted({_entry(r)["runs"] for r in shown})
    lines = [
        "(calibration)=",
        "## Calibration and power",
        "",
        "The main run and its replications are the same experiment with disjoint seeds, "
        f"{' or '.join(str(k) for k in runs)} runs per claim here. The *replication ratio* is "
        "the standard deviation of the runs' key figures over the standard error their own "
        f"95% intervals imply (the interval's half-width over {Z95}, averaged over the runs): "
        "about 1 when a run's interval says how much the key figure moves between runs. Above "
        f"{plain_number(CALIBRATION_LIMIT, 0)} the key figure is named overdispersed: "
        f"{_named(overdispersed(shown))}. A main run should lie within the range of its "
        "replications' key figures, or its interval overlap one of theirs; the main runs that "
        f"do neither are flagged: {_named(outside_replications(shown))}. Spreads and standard "
        "errors are written in the key figure's unit, as its column writes it (shares in "
        "percent, differences of shares in percentage points).",
        "",
        "*Units needed* is how many units (the key figure's own: seeds, pairs, chains) would "
        f"keep the verdict in {POWER_RUNS} of {POWER_RUNS} replications with probability "
        f"{plain_number(POWER, 1)}, at the effect the runs observed: the distance from their "
        "mean key figure to the nearest bar of its rule must exceed "
        f"{plain_number(z_power(), 2)} between-run standard deviations (plus the interval's "
        "half-width when the bar reads an interval's end), and both shrink as one over the "
        "square root of the units. A decided verdict that would need more units than its "
        f"profile gave it is *{UNDERPOWERED}*: {_named(underpowered_ids(shown))}. With few "
        "runs the spread and the effect are themselves rough.",
        "",
        "| claim | runs | key figure: main; replications | spread (SD) | within-run SE "
        "| ratio | main run among its replications | units for the verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in shown:
        entry, unit = _entry(row), row.get("key_unit", "number")
        main, *others = (in_unit(v, "en", unit, points=False) for v in entry["values"])
        lines.append(
            f"| [{row['id']}](#claim-{row['id'].lower()}) | {entry['runs']} "
            f"| {main}; {', '.join(others)} | {_amount(entry['spread'], unit)} "
            f"| {_amount(entry['within_se'], unit)} | {_ratio_words(entry)} "
            f"| {_main_words(entry)} | {_power_words(entry)} |"
        )
    return [*lines, "", *why_overdispersed(shown)]


def why_overdispersed(rows: list[dict]) -> list[str]:
    """For each overdispersed key figure, what its interval resamples and what each run fixes
    (``interval`` in ``claims.yml``, declared for every empirical claim before any build): the
    fixed parts vary only between runs, so they widen the spread and not the interval."""
    named = overdispersed(rows)
    if not named:
        return []
    registry = claims.registry()
    lines = [
        "Why the overdispersed key figures move more than their intervals say: each run draws "
        "some parts of its experiment once, from its seed, and its interval resamples only the "
        "rest.",
        "",
    ]
    for cid in named:
        claim = registry[cid]
        lines.append(
            f"- **{cid}**: the interval resamples {claim.interval_resamples}; each run fixes "
            f"{claim.interval_fixed}."
        )
    return [*lines, ""]
