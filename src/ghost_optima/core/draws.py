"""Statistics over flip draws and seeds at once, for bootstraps that resample both.

An experiment repeated over ``D`` independent corruption draws, each with the same ``S`` seeds,
gives per condition ``q`` (noise kind, rate, measure) either a pair matrix per draw,
``pairs[q, d]`` of shape ``(S, S)`` (disagreement, aligned distance), or a value per seed,
``values[q, d]`` of shape ``(S,)`` (test loss, cloud radius). A bootstrap resample is a pair
``(draw_idx (D,), seed_idx (S,))``: the draws resampled, and within every draw the same seeds
(seeds are exchangeable, and resampling them jointly keeps each seed paired with itself across
conditions). These functions evaluate every condition on one resample in a few array
operations, so thousands of resamples stay cheap.
"""

import numpy as np


def pair_means(pairs: np.ndarray, draw_idx: np.ndarray, seed_idx: np.ndarray) -> np.ndarray:
    """``(Q,)``: for every condition, the mean over the resampled draws of the mean of
    ``pairs[q, d, i, j]`` over resampled seed pairs ``a < b`` with distinct originals
    (``experiments.pair_mean``); NaN where no distinct pair is left.

    ``pairs``: ``(Q, D, S, S)`` symmetric in the last two axes.
    """
    seed_idx = np.asarray(seed_idx)
    sub = pairs[:, :, seed_idx][:, :, :, seed_idx]  # (Q, D, S', S')
    keep = np.triu(np.ones((len(seed_idx),) * 2, bool), 1) & (seed_idx[:, None] != seed_idx[None])
    if not keep.any():
        return np.full(pairs.shape[0], np.nan)
    per_draw = sub[..., keep].mean(-1)  # (Q, D)
    return per_draw[:, np.asarray(draw_idx)].mean(1)


def seed_stat(
    values: np.ndarray, draw_idx: np.ndarray, seed_idx: np.ndarray, stat: str
) -> np.ndarray:
    """``(Q,)``: per condition, the mean over resampled draws of ``stat`` ("mean" or "std",
    unbiased) over the resampled seeds of ``values`` ``(Q, D, S)``; "std" is NaN with one seed."""
    sub = values[:, :, np.asarray(seed_idx)]
    if stat == "mean":
        per_draw = sub.mean(-1)
    elif stat == "std":
        if sub.shape[-1] < 2:
            return np.full(values.shape[0], np.nan)
        per_draw = sub.std(-1, ddof=1)
    else:
        raise ValueError(f"unknown statistic {stat!r}")
    return per_draw[:, np.asarray(draw_idx)].mean(1)


def slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slopes of every row of ``y`` ``(..., m)`` on ``x`` ``(m,)``."""
    x = np.asarray(x, float)
    xc = x - x.mean()
    return (np.asarray(y, float) * xc).sum(-1) / (xc @ xc)
