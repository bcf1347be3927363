"""The learning-rate search: ``G`` rates times ``S`` selection seeds as one ensemble, grid-major,
scored on a validation split carved from the training data and chosen on the seed-mean score.

Members. A search over the increasing grid ``(eta_1, ..., eta_G)`` with selection seeds
``(s_1, ..., s_S)`` trains ``G * S`` members in one ensemble, **grid-major**: member
``g * S + s`` has seed ``seeds[s]`` and rate ``grid[g]`` (:func:`members`), so the ``S`` networks
of one rate are one contiguous block (:meth:`LrSearch.chosen`). The order changes no result:
``core.train.member_generators`` draws a member's initialisation and minibatch order from its
own seed alone and members share nothing, so permuting the members permutes the results, bit
for bit on the CPU kernels used here (tested). Runs of one seed share their initialisation and
minibatch order at every rate (common random numbers): along a seed's row only the rate differs.

Scores. ``V[r, s, g]`` is the validation score of seed ``s`` at rate ``g`` at the ``r``-th row of
the run's history (:func:`score_table`): the cross-entropy (``"loss"``) or the error
``1 - accuracy`` (``"error"``) on the split's held-out examples, ``+inf`` where the member's loss
is not finite (it diverged). The search's choice (``pooled``) is the lowest seed-mean final score
``mean_s V[-1, s, g]`` (ties to the smaller rate; one diverged seed makes its rate ``+inf``).
Each seed's own search, ``select(grid, V[-1, s])``, gives its best rate, whether that is censored
(an end of the grid, so the optimum may lie beyond it) and its good band ``band(tol)``, the
octaves spanned by the rates within ``tol`` of that seed's best (Smith 2017's learning-rate
range, scored on validation). The seed mean is summed seed by seed in seed order.

Selection seeds. How many seeds choose a rate is the caller's ``seeds`` and nothing else: one
seed is a search of ``G`` members, three seeds the same search with three runs per rate.

The trainer is the caller's (``Train``: a plain ensemble, a remedy's architecture, several arms
trained together); it must return one member per entry, in the order given. A search receives
a validation split (``validation.validation_split``) and refuses any other data set before it
trains, so the test set is never part of a choice.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ghost_optima.core.data import Dataset
from ghost_optima.core.mlp import ActivationLike, Params, init_mlp
from ghost_optima.core.train import (
    EnsembleResult,
    History,
    TrainConfig,
    member_generators,
    train_ensemble,
)
from ghost_optima.selection.validation import (
    Score,
    Selection,
    check_score,
    require_validation,
    select,
)

Train = Callable[[Dataset, list[int], list[float]], EnsembleResult]
"""``train(split, member_seeds, member_rates)``: one ensemble, one member per entry, in order."""

TrainArms = Callable[[Dataset, list[int], list[float]], Sequence[EnsembleResult]]
"""The same for several arms trained on the same members: one result per arm."""


def members(values: Sequence, seeds: Sequence[int]) -> tuple[list[int], list]:
    """The ``G * S`` members of a search over ``values``, grid-major: their seeds and values."""
    return [int(s) for _ in values for s in seeds], [v for v in values for _ in seeds]


def score_table(history: History, n_values: int, n_seeds: int, score: Score = "loss") -> np.ndarray:
    """``(R, S, G)``: the validation score of every member of a :func:`members` run at every row
    of its ``history`` (whose test slot holds the validation examples), ``+inf`` where the
    member's loss is not finite (module docstring)."""
    check_score(score)
    loss = history.test_loss
    values = loss if score == "loss" else 1.0 - history.test_acc
    values = np.where(np.isfinite(loss) & np.isfinite(values), values, np.inf)
    table = values.reshape(len(values), n_values, n_seeds).transpose(0, 2, 1)
    return np.ascontiguousarray(table)


@dataclass(frozen=True)
class LrSearch:
    """One search: the ``grid`` ``(G,)``, the selection ``seeds`` ``(S,)``, the validation
    scores ``(R, S, G)`` of :func:`score_table`, the choice on the seed-mean final score
    (``pooled``) and the ``run`` of ``G * S`` members, grid-major."""

    grid: np.ndarray
    seeds: tuple[int, ...]
    scores: np.ndarray
    pooled: Selection
    run: EnsembleResult

    @property
    def best(self) -> float:
        """The chosen learning rate."""
        return self.pooled.best

    @property
    def final(self) -> np.ndarray:
        """``(S, G)``: each seed's final validation score at each rate."""
        return self.scores[-1]

    def curve(self) -> np.ndarray:
        """``(R - 1, G)``: the seed-mean score at every recorded row after the start."""
        return self.scores[1:].mean(1)

    def searches(self) -> list[Selection]:
        """One selection per seed, on that seed's final scores alone."""
        return [select(self.grid, row) for row in self.final]

    def censored(self) -> np.ndarray:
        """``(S,)`` bool: the seed's best learning rate is an end of the grid."""
        return np.array([s.censored for s in self.searches()])

    def bands(self, tol: float) -> np.ndarray:
        """``(S,)`` good-band widths in octaves, each within ``tol`` of that seed's best."""
        return np.array([s.band(tol) for s in self.searches()])

    def band_at_edge(self, tol: float) -> np.ndarray:
        """``(S,)`` bool: a grid end lies within ``tol`` of the seed's best (band truncated)."""
        good = self.final <= self.final.min(1, keepdims=True) + tol
        return good[:, 0] | good[:, -1]

    def chosen(self) -> Params:
        """The ``S`` networks trained at the chosen rate, stacked ``(S, ...)`` in seed order."""
        block = slice(
            self.pooled.best_index * len(self.seeds), (self.pooled.best_index + 1) * len(self.seeds)
        )
        return {k: v[block].clone() for k, v in self.run.params.items()}

    def starts(self) -> Params:
        """The untrained networks of the seeds as ``train_ensemble`` draws them (before masks or
        reparameterizations), stacked ``(S, ...)``: the reference for the chosen networks'
        distances (two starts are as far apart as unrelated networks)."""
        dtype = self.run.params["W1"].dtype
        nets = [init_mlp(self.run.widths, member_generators(s)[0], dtype=dtype) for s in self.seeds]
        return {k: torch.stack([n[k] for n in nets]) for k in nets[0]}


def lr_searches(
    train: TrainArms,
    split: Dataset,
    grid: Sequence[float],
    seeds: Sequence[int],
    score: Score = "loss",
) -> list[LrSearch]:
    """One :class:`LrSearch` per arm of ``train``'s ensemble over ``grid`` x ``seeds`` on the
    validation ``split`` (refused before any training if it is not one)."""
    check_score(score)
    require_validation(split)
    grid, seeds = np.asarray(grid, float), tuple(int(s) for s in seeds)
    member_seeds, rates = members([float(v) for v in grid], seeds)
    out = []
    for run in train(split, member_seeds, rates):
        table = score_table(run.history, len(grid), len(seeds), score)
        out.append(LrSearch(grid, seeds, table, select(grid, table[-1].mean(0)), run))
    return out


def lr_search(
    train: Train,
    split: Dataset,
    grid: Sequence[float],
    seeds: Sequence[int],
    score: Score = "loss",
) -> LrSearch:
    """The search of one trainer (:func:`lr_searches` with one arm)."""
    (search,) = lr_searches(lambda *args: [train(*args)], split, grid, seeds, score)
    return search


def plain_trainer(widths: Sequence[int], activation: ActivationLike, config: TrainConfig) -> Train:
    """A ``Train`` of plain ``train_ensemble`` runs (``config.lr`` replaced by the members')."""

    def train(data: Dataset, seeds: list[int], rates: list[float]) -> EnsembleResult:
        return train_ensemble(data, widths, activation, seeds, replace(config, lr=tuple(rates)))

    return train
