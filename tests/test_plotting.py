"""The book's shared figure helpers."""

import matplotlib
import numpy as np
import pandas as pd

from ghost_optima.book.pages.plotting import interval_panels, seeded_jitter

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


def strip_offsets(seed: int) -> np.ndarray:
    """The x positions seaborn's strip plot gives six points of one category."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots()
    with seeded_jitter(seed):
        sns.stripplot(data=pd.DataFrame(dict(x=["a"] * 6, y=range(6))), x="x", y="y", ax=ax)
    offsets = ax.collections[0].get_offsets()[:, 0].copy()
    plt.close(fig)
    return np.asarray(offsets)


def test_seeded_jitter_repeats_a_strip_plot_and_restores_the_global_generator():
    np.random.seed(11)
    before = np.random.get_state()[1].copy()
    first, again, other = strip_offsets(3), strip_offsets(3), strip_offsets(4)
    np.testing.assert_array_equal(first, again)
    assert np.ptp(first) > 0 and not np.array_equal(first, other)  # jittered, by the seed
    np.testing.assert_array_equal(np.random.get_state()[1], before)
