"""Learning-rate searches on a validation split: one ensemble per architecture, seeds x grid.

A *search* (one per seed ``s``) trains the same architecture at every value ``eta_g`` of a
fixed, increasing learning-rate grid ``(G,)`` and scores each run by its final loss on a
validation split carved from the training data
(:func:`ghost_optima.selection.validation.validation_split`);
the test set is not part of what a search receives, and :func:`lr_search` refuses any data set
that is not such a split. All ``S * G`` runs of ``S`` seeds are one call of
:func:`ghost_optima.core.train.train_ensemble`, one learning rate per member, members in seed-major
order: member ``s * G + g`` has seed ``seeds[s]`` and learning rate ``grid[g]``. Runs of one seed
share their initialisation and their minibatch order (the trainer draws both from the seed), so
the learning rate is the only thing that differs along a search: common random numbers.

From the validation losses ``V`` of shape ``(S, G)`` (``+inf`` where a run diverged):

* the search of seed ``s`` is ``select(grid, V[s])``: its best value, whether it is *censored*
  (the best is an end of the grid, so the optimum may lie beyond it) and its good band
  ``band(tol)``, the octaves ``log2(max / min)`` spanned by the grid values within ``tol`` of
  that search's best validation loss (Smith 2017's learning-rate range, scored on validation);
* the learning rate used for the architecture is chosen on the seed-mean validation loss,
  ``choose_on_validation`` on ``mean_s V[s]`` (``pooled``); :meth:`LrSearch.chosen` returns the
  ``S`` networks trained at it, one per seed, for reproducibility measures on the test set.

A band is also flagged when its good values reach an end of the grid
(:meth:`LrSearch.band_at_edge`): the band may then extend past the grid and is only a lower bound.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ghost_optima.core.data import Dataset
from ghost_optima.core.mlp import ActivationLike, Params, init_mlp
from ghost_optima.core.train import EnsembleResult, TrainConfig, member_generators, train_ensemble
from ghost_optima.selection.validation import Selection, choose_on_validation, select


@dataclass(frozen=True)
class LrSearch:
    """The runs of ``S`` searches over one grid, their validation losses and the choices.

    ``run`` holds ``S * G`` members in seed-major order; ``val_loss`` is ``(S, G)`` with
    ``+inf`` for runs whose final validation loss is not finite; ``pooled`` is the selection on
    the seed-mean validation loss.
    """

    run: EnsembleResult
    grid: np.ndarray
    val_loss: np.ndarray
    pooled: Selection

    @property
    def n_seeds(self) -> int:
        return self.val_loss.shape[0]

    def searches(self) -> list[Selection]:
        """One selection per seed, on that seed's validation losses alone."""
        return [select(self.grid, row) for row in self.val_loss]

    def censored(self) -> np.ndarray:
        """``(S,)`` bool: the seed's best learning rate is an end of the grid."""
        return np.array([s.censored for s in self.searches()])

    def bands(self, tol: float) -> np.ndarray:
        """``(S,)`` good-band widths in octaves, each within ``tol`` of that seed's best."""
        return np.array([s.band(tol) for s in self.searches()])

    def band_at_edge(self, tol: float) -> np.ndarray:
        """``(S,)`` bool: a grid end lies within ``tol`` of the seed's best (band truncated)."""
        best = self.val_loss.min(1, keepdims=True)
        good = self.val_loss <= best + tol
        return good[:, 0] | good[:, -1]

    def chosen(self) -> Params:
        """The ``S`` networks trained at the pooled choice, stacked ``(S, ...)`` in seed order."""
        index = np.arange(self.n_seeds) * len(self.grid) + self.pooled.best_index
        return {k: v[torch.as_tensor(index)] for k, v in self.run.params.items()}


def lr_search(
    split: Dataset,
    widths: Sequence[int],
    activation: ActivationLike,
    seeds: Sequence[int],
    grid: Sequence[float],
    config: TrainConfig,
) -> LrSearch:
    """Run ``len(seeds)`` searches over ``grid`` as one ensemble on a validation split.


    ``split`` must come from :func:`~ghost_optima.selection.validation.validation_split`: training
    uses
    ``split.x_train`` and the scores are the final losses on its held-out training examples
    (``split.x_test``); a data set that is not a validation split is refused before any training.
    ``config.lr`` is ignored (the grid sets each member's rate).
    """
    grid = np.asarray(grid, float)
    seeds = [int(s) for s in seeds]
    runs: list[EnsembleResult] = []

    def score(data: Dataset, values: np.ndarray) -> np.ndarray:
        member_seeds = np.repeat(seeds, len(values)).tolist()
        lrs = np.tile(values, len(seeds))
        runs.append(train_ensemble(data, widths, activation, member_seeds, replace(config, lr=lrs)))
        final = runs[-1].history.test_loss[-1].reshape(len(seeds), len(values))
        return np.where(np.isfinite(final), final, np.inf).mean(0)

    pooled = choose_on_validation(score, split, grid)
    final = runs[0].history.test_loss[-1].reshape(len(seeds), len(grid))
    return LrSearch(runs[0], grid, np.where(np.isfinite(final), final, np.inf), pooled)


def initial_params(
    widths: Sequence[int], seeds: Sequence[int], dtype: torch.dtype = torch.float32
) -> Params:
    """The untrained networks of ``seeds`` as ``train_ensemble`` draws them, stacked ``(S, ...)``.

    The reference for distances: two initialisations of the same architecture, aligned like
    trained networks, show how far apart unrelated networks are.
    """
    nets = [init_mlp(widths, member_generators(int(s))[0], dtype=dtype) for s in seeds]
    return {k: torch.stack([n[k] for n in nets]) for k in nets[0]}
