"""The summaries' figure: one bar per claim, coloured by its verdict, with its key figure."""

from ghost_optima.book.pages.key_figures import plain_figure
from ghost_optima.book.pages.plotting import japanese_font
from ghost_optima.book.verdicts.claims import NOT_TESTED, UNSTABLE, is_unstable, replications

COLORS = {
    "supported": "#1a7f37",
    "not supported": "#cf222e",
    "mixed": "#bf8700",
    "inconclusive": "#6e7781",
    UNSTABLE: "#8250df",
    NOT_TESTED: "#d0d7de",
}
JA_VERDICT = {
    "supported": "支持",
    "not supported": "不支持",
    "mixed": "一部支持",
    "inconclusive": "判定不能",
    UNSTABLE: "不安定",
    NOT_TESTED: "未検証",
}


def draw_figure(rows: list[dict], lang: str) -> bytes:
    """One bar per claim, coloured by verdict, with its key figure, in the page's language.

    An unstable claim (``claims.is_unstable``) is coloured as unstable and its bar names the
    verdict its replications did not confirm; a claim with replications shows ``k/n`` (runs
    with the same verdict) after its key figure. The Japanese figure is drawn in a font
    with Japanese glyphs (``plotting.japanese_font``) and fails loudly when there is none.
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    en = lang == "en"
    family = "DejaVu Sans" if en else japanese_font()
    with plt.rc_context({"font.family": family}):
        fig, ax = plt.subplots(figsize=(8.5, 0.34 * len(rows) + 1.2), facecolor="white")
        shown = [UNSTABLE if is_unstable(r) else r["verdict"] for r in rows]
        for y, (row, verdict) in enumerate(zip(reversed(rows), reversed(shown), strict=True)):
            ax.barh(y, 1, color=COLORS[verdict], height=0.8)
            label = f"{row['id']}  {row['title'] if en else row['title_ja']}"
            if verdict == UNSTABLE:
                label += f" ({row['verdict'] if en else JA_VERDICT[row['verdict']]}?)"
            ax.text(
                0.02,
                y,
                label,
                va="center",
                fontsize=9,
                color="white" if verdict in ("supported", "not supported", UNSTABLE) else "black",
            )
            unit = row.get("key_unit", "number")
            figure = plain_figure(row["figures"][row["key"]], lang, unit) if row["key"] else ""
            again = replications(row)
            if again:
                figure += f"  [{again['agree']}/{again['runs']}]"
            ax.text(1.02, y, figure, va="center", fontsize=8)
        ax.set(xlim=(0, 1.75), ylim=(-0.6, len(rows) - 0.4))
        ax.axis("off")
        present = [v for v in COLORS if v in shown]
        ax.legend(
            handles=[Patch(color=COLORS[v], label=v if en else JA_VERDICT[v]) for v in present],
            loc="lower center",
            bbox_to_anchor=(0.45, 1.0),
            ncol=len(present),
            frameon=False,
            fontsize=8,
        )
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=110, facecolor="white", metadata={"Software": None})
        plt.close(fig)
    return png.getvalue()
