"""One look for every figure: seaborn's paper context on an opaque white background.

Opaque backgrounds keep figures readable when a reader's browser shows the book in dark mode.
"""

import matplotlib as mpl
import seaborn as sns


def use_book_style() -> None:
    """Apply the book's plotting defaults (call once at the top of a notebook)."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    mpl.rcParams.update(
        {
            "figure.facecolor": "white",
            "savefig.facecolor": "white",
            "figure.dpi": 110,
            "figure.figsize": (7.0, 4.0),
            "axes.titleweight": "bold",
        }
    )
