"""Tables, figures and glued numbers of a remedy against its symmetry-preserving twin and the
baseline, laid out the same way in every remedy chapter.

``ghost_optima.remedies.arms.Arms`` gives the arms' table rows (``rows``: intervals over seeds,
the chosen learning rate) and the effects (``fair.effects``: Estimates named
``symmetry_effect_<m>``, remedy against twin, and ``<m>_change``, remedy against baseline), per
data set or over all of them; these helpers show them.
"""

from collections.abc import Mapping, Sequence

from ghost_optima.book.pages.tables import glue_estimate, interval, plot_intervals
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


def glue_arm_table(rec, rows: list[dict]):
    """:func:`arm_table` of ``rows``, with ``n_censored`` (chosen rates at an end of their grid)
    and ``n_arms`` glued through the chapter's ``Recorder``."""
    rec.glue("n_censored", sum(r["censored"] for r in rows))
    rec.glue("n_arms", len(rows))
    return arm_table(rows)


ARM_PANELS = {  # metric of an arm's row: (scale, axis label, panel title)
    "test_acc": (100, "test accuracy %", "Accuracy"),
    "disagreement": (100, "seeds disagreeing on a test input %", "Disagreement between seeds"),
    "barrier_aligned": (1, "test-loss barrier after alignment", "Barrier between aligned seeds"),
}


def arm_figure(
    rows: list[dict],
    metrics: Sequence[str] = ("test_acc", "disagreement"),
    figsize: tuple[float, float] = (11, 3.6),
):
    """``(fig, axes)``: one panel per metric of ``ARM_PANELS``, data sets along x and arms side
    by side, points with 95% intervals."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=figsize)
    for ax, metric in zip(axes, metrics, strict=True):
        scale, ylabel, title = ARM_PANELS[metric]
        plot_intervals(ax, rows, metric, scale=scale)
        ax.set(ylabel=ylabel, title=title)
    return fig, axes


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


def effect_figure(
    per_data: Mapping[str, Mapping[str, Estimate]], figsize: tuple[float, float] = (13, 3.6)
):
    """``(fig, axes)``: :func:`plot_effects` of the disagreement (left) and of the disagreement
    per error, at matched accuracy (right), the legend outside on the right."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=figsize, layout="constrained")
    plot_effects(axes[0], per_data, "disagreement", legend=False)
    axes[0].set(ylabel="relative change of disagreement %", title="Disagreement")
    plot_effects(axes[1], per_data, "per_error")
    axes[1].set(ylabel="relative change %", title="Disagreement per error (matched accuracy)")
    return fig, axes


EFFECT_GLUE = {  # glued name (times 100, with _lo and _hi): the effect it reads
    "sym_effect": "symmetry_effect_disagreement",
    "sym_per_error": "symmetry_effect_per_error",
    "twin_acc": "symmetry_effect_acc",
    "dis_change": "disagreement_change",
    "acc_change": "acc_change",
}


def glue_effects(rec, effects: Mapping[str, Estimate]) -> None:
    """Glue the effects the remedy chapters' prose reads (``EFFECT_GLUE``), in %, with their
    intervals, through the chapter's ``Recorder``."""
    for name, key in EFFECT_GLUE.items():
        glue_estimate(rec, name, effects[key], 100)


def direction(est: Estimate) -> str:
    """Where a 95% interval lies against zero: ``"below 0"`` (``hi < 0``), ``"above 0"``
    (``lo > 0``) or ``"includes 0"``; two settings agree on an effect when this word is the same."""
    if est.hi < 0:
        return "below 0"
    if est.lo > 0:
        return "above 0"
    return "includes 0"


def glue_common_rate(rec, common: Estimate, chosen: Estimate) -> None:
    """Glue the symmetry effect at one common rate (``common_rate_effect`` and its interval, in
    percent) and where its interval lies beside the effect at the chosen rates
    (``common_rate_where``, ``chosen_rate_where``: :func:`direction`)."""
    glue_estimate(rec, "common_rate_effect", common, 100)
    rec.glue("common_rate_where", direction(common))
    rec.glue("chosen_rate_where", direction(chosen))


def twin_accuracy(rec, claim: str, effects: Mapping[str, Estimate]) -> dict[str, float]:
    """The twin's accuracy against its remedy's (#26) for the rule of ``claim``: the figure
    ``twin_accuracy_gap`` (``|symmetry_effect_acc|``, the size of the mean accuracy gap) and,
    glued for the prose, the gap in points (``twin_gap_points``), the rule's margin
    (``twin_margin_points``, read from ``claims.yml``) and which stability figure the rule then
    reads (``twin_reads``). Returns the figure to record."""
    from ghost_optima.book.verdicts.conditions import threshold

    gap = abs(effects["symmetry_effect_acc"].value)
    margin = threshold(claim, "twin_accuracy_gap", "not_supported")
    rec.glue("twin_gap_points", 100 * gap)
    rec.glue("twin_margin_points", 100 * margin)
    rec.glue("twin_reads", twin_reading(gap, margin))
    return {"twin_accuracy_gap": gap}


def twin_reading(gap: float, margin: float) -> str:
    """The words for which stability figure a rule reads at accuracy gap ``gap`` (margin
    ``margin``): raw disagreement within it, disagreement per error beyond it."""
    if gap > margin:
        return (
            "beyond the margin, so the rule judges stability on disagreement at matched accuracy "
            "(symmetry_effect_per_error) alone"
        )
    return (
        "within the margin, so the rule reads raw disagreement (symmetry_effect_disagreement) "
        "beside disagreement at matched accuracy"
    )
