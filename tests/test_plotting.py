"""The book's shared figure helpers."""

import matplotlib
import numpy as np
import pandas as pd

from ghost_optima.book.pages.plotting import interval_panels

matplotlib.use("Agg")


def test_interval_panels_draw_one_line_and_band_per_hue_in_each_panel():
    rows = [
        {"data": d, "kind": k, "width": w, "value": v, "lo": v - 0.1, "hi": v + 0.1}
        for d in ("a", "b")
        for k, base in (("x", 1.0), ("y", 2.0))
        for w, v in ((4, base), (8, base + 1), (16, base + 2))
    ]
    fig, axes = interval_panels(
        pd.DataFrame(rows), ["a", "b"], by="data", hue="kind", ylabel="v", logy=True
    )
    assert len(axes) == 2 and [ax.get_title() for ax in axes] == ["a", "b"]
    for ax in axes:
        assert [line.get_label() for line in ax.get_lines()] == ["x", "y"]
        np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), [2.0, 3.0, 4.0])
        assert len(ax.collections) == 2 and ax.get_xscale() == "log" and ax.get_yscale() == "log"
    matplotlib.pyplot.close(fig)
