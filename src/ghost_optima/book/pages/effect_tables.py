"""Tables and figures of a remedy against its symmetry-preserving twin and the baseline.

``ghost_optima.remedies.fair.effects`` returns, per data set or over all of them, Estimates named
``symmetry_effect_<m>`` (remedy against twin) and ``<m>_change`` (remedy against baseline);
these helpers lay them out the same way in every remedy chapter.
"""

from collections.abc import Mapping

from ghost_optima.book.pages.tables import interval
from ghost_optima.core.stats import Estimate

METRICS = {
    "disagreement": ("disagreement", 100, "relative change of disagreement %"),
    "per_error": ("per_error", 100, "relative change of disagreement per error %"),
    "acc": ("acc", 100, "accuracy change (points)"),
}


def arm_table(rows: list[dict]):
    """Per data set and arm: chosen learning rate, test accuracy, disagreement and disagreement
    per error (``remedies.estimate_row`` rows with ``lr`` added)."""
    import pandas as pd

    out = [
        {
            "data": r["dataset"],
            "arm": r["variant"],
            "parameters": r["n_params"],
            "log10 perms": round(r["log10_perm"], 1),
            "lr (validation)": f"{r['lr']:.3g}" + (" (grid edge)" if r.get("censored") else ""),
            "test accuracy %": interval(r["test_acc"], 3, 100),
            "disagreement %": interval(r["disagreement"], 3, 100),
            "disagreement per error %": interval(r["disagreement_per_error"], 3, 100),
        }
        for r in rows
    ]
    return pd.DataFrame(out).set_index(["data", "arm"])


def effect_table(per_data: Mapping[str, Mapping[str, Estimate]]):
    """One row per data set (or label): the remedy against its twin and against the baseline,
    disagreement, disagreement per error and accuracy, as intervals."""
    import pandas as pd

    rows = []
    for label, est in per_data.items():
        row = {"data": label}
        for against, prefix in (("twin", "symmetry_effect_{}"), ("baseline", "{}_change")):
            for short, (_, scale, title) in METRICS.items():
                row[f"vs {against}: {title}"] = interval(est[prefix.format(short)], 2, scale)
        rows.append(row)
    return pd.DataFrame(rows).set_index("data")


def plot_effects(
    ax, per_data: Mapping[str, Mapping[str, Estimate]], metric: str = "disagreement", legend=True
):
    """Points with 95% intervals (in %): the remedy against its twin (the effect of breaking the
    symmetry) and against the baseline (the whole change), per data set, with a zero line; the
    legend (if any) outside the axes, on the right."""
    labels = list(per_data)
    arms = (("its twin", "symmetry_effect_{}", "o"), ("the baseline", "{}_change", "s"))
    for k, (against, prefix, marker) in enumerate(arms):
        ests = [per_data[label][prefix.format(metric)] for label in labels]
        x = [i + (k - 0.5) * 0.25 for i in range(len(labels))]
        y = [100 * e.value for e in ests]
        err = [[100 * (e.value - e.lo) for e in ests], [100 * (e.hi - e.value) for e in ests]]
        ax.errorbar(x, y, yerr=err, fmt=marker, capsize=3, label=f"remedy against {against}")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(labels)), labels)
    if legend:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


def direction(est: Estimate) -> str:
    """Where a 95% interval lies against zero: ``"below 0"`` (``hi < 0``), ``"above 0"``
    (``lo > 0``) or ``"includes 0"``; two settings agree on an effect when this word is the same."""
    if est.hi < 0:
        return "below 0"
    if est.lo > 0:
        return "above 0"
    return "includes 0"
