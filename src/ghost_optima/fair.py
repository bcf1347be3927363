"""Fair arms: the learning rate of every arm chosen on validation data carved from training.

A remedy compared with a baseline at one learning rate tuned for neither can win or lose by the
learning rate alone. ``select_lr`` gives every arm its own: it holds out a fraction of the
*training* set (``selection.validation_split``), trains ``len(seeds) x len(grid)`` members as one
ensemble (member ``(g, s)``: seed ``s`` at learning rate ``grid[g]``, ``train_ensemble`` takes a
learning rate per member), scores each grid value by the mean final validation loss over its
seeds, and picks the lowest (``selection.choose_on_validation``, which refuses anything but a
validation split: the test set is never seen). The main run then trains on the whole training
set at the chosen rate, every arm for the same number of steps.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ghost_optima import remedies
from ghost_optima.data import Dataset
from ghost_optima.remedies import Architecture
from ghost_optima.selection import Selection, choose_on_validation, validation_split
from ghost_optima.stats import Estimate
from ghost_optima.train import EnsembleResult


@dataclass(frozen=True)
class LrChoice:
    """The grid, validation scores ``(G,)`` and the chosen rate of one arm on one data set."""

    variant: str
    dataset: str
    selection: Selection

    @property
    def lr(self) -> float:
        return self.selection.best


def select_lr(
    arch: Architecture,
    data: Dataset,
    grid: Sequence[float],
    seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
    fraction: float = 0.2,
    split_seed: int = 0,
) -> LrChoice:
    """The learning rate of ``arch`` on ``data`` from ``grid``, chosen on a validation split
    (``fraction`` of the training set, drawn with ``split_seed``); ``seeds`` seed the members
    of the selection run (use seeds apart from the main run's)."""
    grid = np.asarray(grid, float)
    seeds = list(seeds)

    def score(split: Dataset, values: np.ndarray) -> np.ndarray:
        members = [s for _ in values for s in seeds]
        lrs = [float(v) for v in values for _ in seeds]
        result = remedies.train(arch, split, members, epochs=epochs, batch_size=batch_size, lr=lrs)
        loss = result.history.test_loss[-1].reshape(len(values), len(seeds))  # validation slot
        return np.where(np.isfinite(loss), loss, np.inf).mean(1)

    split = validation_split(data, fraction, seed=split_seed)
    return LrChoice(arch.variant, data.name, choose_on_validation(score, split, grid))


def fit(
    arch: Architecture,
    data: Dataset,
    seeds: Sequence[int],
    grid: Sequence[float],
    select_seeds: Sequence[int],
    *,
    epochs: int,
    batch_size: int,
) -> tuple[LrChoice, EnsembleResult]:
    """``select_lr`` (split drawn with ``select_seeds[0]``), then the main run of ``seeds`` on
    the whole training set at the chosen rate (measure it with ``remedies.measure``)."""
    kw = dict(epochs=epochs, batch_size=batch_size)
    choice = select_lr(arch, data, grid, select_seeds, split_seed=select_seeds[0], **kw)
    return choice, remedies.train(arch, data, seeds, lr=choice.lr, **kw)


def effects(
    triples: Sequence[tuple[remedies.Measured, remedies.Measured, remedies.Measured]],
    *,
    n_boot: int,
    seed: int = 0,
) -> dict[str, Estimate]:
    """The figures of a remedy's rule from ``(baseline, remedy, twin)`` per data set (or
    pattern), each averaged over the triples with seeds resampled per data set:

    * ``symmetry_effect_<m>``: remedy against its twin, the effect of breaking the symmetry;
    * ``<m>_change``: remedy against the baseline, the effect of the whole change;

    for ``m`` = disagreement (relative change, ``remedy / other - 1``), per_error (the same of
    ``remedies.per_error``, disagreement at matched accuracy) and acc (test accuracy,
    difference in fraction points).
    """
    out = {}
    for label, pairs in (
        ("symmetry_effect_{}", [(t, r) for _, r, t in triples]),
        ("{}_change", [(b, r) for b, r, _ in triples]),
    ):
        for short, metric, relative in (
            ("disagreement", "disagreement", True),
            ("per_error", "disagreement_per_error", True),
            ("acc", "test_acc", False),
        ):
            est = remedies.change(pairs, metric, relative=relative, n_boot=n_boot, seed=seed)
            out[label.format(short)] = est
    return out
