"""Tables and figures of interval estimates, as the chapters show them.

The science modules return numbers (``ghost_optima.core.stats.Estimate`` and rows of them, e.g.
``ghost_optima.remedies.protocol.estimate_row``); this module turns them into text, tables, plots
and glued values. Intervals are written by
``ghost_optima.book.verdicts.record.format_figure``, the one format of a figure in the book.
"""

from collections.abc import Sequence

from ghost_optima.book.verdicts.record import format_figure
from ghost_optima.core.stats import Estimate


def interval(est: Estimate, digits: int = 3, scale: float = 1.0) -> str:
    """``value [lo, hi]`` to ``digits`` significant digits, all multiplied by ``scale``."""
    # + 0.0 turns a scaled -0.0 into 0.0, so no "-0" is shown
    scaled = {k: scale * getattr(est, k) + 0.0 for k in ("value", "lo", "hi")}
    return format_figure(scaled, digits)


def glue_estimate(rec, name: str, est: Estimate, scale: float = 1.0) -> Estimate:
    """Glue ``name``, ``name_lo`` and ``name_hi`` (times ``scale``) through a ``Recorder``."""
    rec.glue(name, scale * est.value)
    rec.glue(f"{name}_lo", scale * est.lo)
    rec.glue(f"{name}_hi", scale * est.hi)
    return est


def remedy_table(rows: Sequence[dict]):
    """A pandas table of ``remedies.estimate_row`` rows: accuracies and disagreements in %,
    intervals shown."""
    import pandas as pd

    out = []
    for row in rows:
        out.append(
            {
                "data": row["dataset"],
                "variant": row["variant"],
                "parameters": row["n_params"],
                "test accuracy %": interval(row["test_acc"], 3, 100),
                "test loss": interval(row["test_loss"], 3),
                "disagreement %": interval(row["disagreement"], 3, 100),
                "barrier": interval(row["barrier_raw"], 2),
                "barrier aligned": interval(row["barrier_aligned"], 2),
                "log10 perms": round(row["log10_perm"], 1),
                "log10 group": round(row["log10_group"], 1),
                "CPU ms/step": round(row["ms_per_step"], 2),
            }
        )
    return pd.DataFrame(out)


def plot_intervals(ax, rows: Sequence[dict], metric: str, *, scale: float = 1.0) -> None:
    """Points with 95% intervals of ``metric`` (an Estimate in each row, which also names its
    ``dataset`` and ``variant``), data sets along x and variants side by side."""
    import seaborn as sns

    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    colours = sns.color_palette("colorblind", len(variants))
    width = 0.8 / max(len(variants), 1)
    for j, variant in enumerate(variants):
        for row in (r for r in rows if r["variant"] == variant):
            est = row[metric]
            x = datasets.index(row["dataset"]) - 0.4 + width * (j + 0.5)
            ax.errorbar(
                x,
                scale * est.value,
                yerr=[[scale * (est.value - est.lo)], [scale * (est.hi - est.value)]],
                fmt="o",
                color=colours[j],
                capsize=3,
                label=variant if row["dataset"] == datasets[0] else None,
            )
    ax.set_xticks(range(len(datasets)), datasets)
    ax.legend(fontsize=8, frameon=False)
