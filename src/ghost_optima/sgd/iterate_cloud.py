"""The cloud of SGD iterates over a run's last steps, and its spread.

``StepSnapshots`` is a ``ghost_optima.core.train.train_ensemble`` step hook that keeps copies of
every member's parameters at chosen steps; ``cloud_radius`` measures how far those iterates
spread around their own centre (chapters 50 and 55 compare it with the distance between seeds).
"""

from collections.abc import Sequence

import numpy as np
import torch

Params = dict[str, torch.Tensor]


class StepSnapshots:
    """A ``train_ensemble`` ``step_hook`` that keeps copies of the parameters at chosen steps.

    Keeps a copy of every stacked parameter after step ``s`` for each ``s`` in ``steps``;
    ``stacked()`` returns them as ``{name: (K, E, ...)}``.
    """

    def __init__(self, steps: Sequence[int]):
        self.steps = set(int(s) for s in steps)
        self.kept: list[Params] = []

    def __call__(self, step: int, params: Params, state: dict) -> None:
        if step in self.steps:
            self.kept.append({k: v.detach().clone() for k, v in params.items()})

    def stacked(self) -> Params:
        return {k: torch.stack([s[k] for s in self.kept]) for k in self.kept[0]}


def cloud_radius(snapshots: Params) -> np.ndarray:
    """Per member, ``sqrt(mean_k ||theta_k - mean_k theta_k||^2)`` over ``K`` snapshots.

    ``snapshots`` maps names to ``(K, E, ...)`` tensors (``StepSnapshots.stacked()``); returns
    shape ``(E,)``: the root-mean-square distance of the iterates to their own centre.
    """
    total = None
    for v in snapshots.values():
        v = v.double()
        dev = (v - v.mean(0, keepdim=True)).pow(2).reshape(v.shape[0], v.shape[1], -1).sum(-1)
        total = dev if total is None else total + dev
    return total.mean(0).sqrt().numpy()
