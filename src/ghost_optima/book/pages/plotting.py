"""One look for every figure: seaborn's paper context on an opaque white background.

Opaque backgrounds keep figures readable when a reader's browser shows the book in dark mode.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib as mpl
import numpy as np
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


@contextmanager
def seeded_jitter(seed: int) -> Iterator[None]:
    """Seaborn's strip plots jitter their points with NumPy's global generator
    (``np.random.uniform`` in seaborn 0.13), so the same figure came out different from run to
    run. Inside this block that generator starts from ``seed``; its state before is restored
    after, so nothing outside the block draws from a seeded global generator."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class NoJapaneseFont(RuntimeError):
    """No font with Japanese glyphs is available to matplotlib."""


def japanese_font() -> str:
    """The family name of a font with Japanese glyphs, registered with matplotlib.

    IPAexGothic, shipped inside the ``matplotlib-fontja`` wheel (a pinned dependency, so every
    machine that installs the lock has it), is found without importing that package (its import
    restyles every figure); otherwise any installed Noto CJK or IPA font. Raises
    :class:`NoJapaneseFont` with the remedy when there is none, rather than drawing boxes.
    """
    from importlib.util import find_spec
    from pathlib import Path

    from matplotlib import font_manager

    spec = find_spec("matplotlib_fontja")
    if spec and spec.submodule_search_locations:
        ttf = Path(spec.submodule_search_locations[0]) / "fonts" / "ipaexg.ttf"
        if ttf.exists():
            font_manager.fontManager.addfont(str(ttf))
            return font_manager.FontProperties(fname=str(ttf)).get_name()
    for font in font_manager.fontManager.ttflist:
        if any(tag in font.name for tag in ("Noto Sans CJK", "IPAexGothic", "IPAGothic")):
            return font.name
    raise NoJapaneseFont(
        "no font with Japanese glyphs for the Japanese summary figure: install the lock "
        "(it pins matplotlib-fontja) or Debian's fonts-noto-cjk"
    )


def interval_panels(
    table, panels, *, by: str, hue: str, ylabel: str, logy: bool = False, ylim=None
):
    """One panel per entry of ``panels`` (rows of ``table`` whose column ``by`` equals it), one
    line per value of ``hue`` against ``width`` (log2 axis) with its ``[lo, hi]`` band; the
    panels share their y axis. ``table`` is long: columns ``by``, ``hue``, ``width``, ``value``,
    ``lo``, ``hi``. Returns ``(fig, axes)``."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.75 * len(panels), 3.8), sharey=True, squeeze=False
    )
    for ax, panel in zip(axes[0], panels, strict=True):
        part = table[table[by] == panel]
        for colour, (label, line) in zip(
            sns.color_palette(), part.groupby(hue, sort=False), strict=False
        ):
            ax.plot(line.width, line.value, marker="o", ms=3, color=colour, label=label)
            ax.fill_between(line.width, line.lo, line.hi, color=colour, alpha=0.2, lw=0)
        ax.set_xscale("log", base=2)
        if logy:
            ax.set_yscale("log")
        ax.set(title=panel, xlabel="hidden width", ylabel=ylabel)
        if ylim is not None:
            ax.set_ylim(*ylim)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig, axes[0]
