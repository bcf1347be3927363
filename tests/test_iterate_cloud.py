"""The SGD iterate cloud (``ghost_optima.sgd.iterate_cloud``) against a direct computation."""

import numpy as np
import pytest
import torch

from ghost_optima.core.data import teacher_student
from ghost_optima.core.train import TrainConfig, TrainHooks, member, train_ensemble
from ghost_optima.sgd.iterate_cloud import StepSnapshots, cloud_radius


def test_snapshots_and_cloud_radius():
    data, _ = teacher_student(40, 10, 3, (2, 1), "regression", seed=9)
    steps_per_epoch = 4  # 40 examples, batches of 10
    snaps = StepSnapshots([steps_per_epoch * e for e in (2, 3, 4)])
    result = train_ensemble(
        data, (3, 5, 1), "tanh", [0, 1], TrainConfig(4, 10, lr=0.1), TrainHooks(step_hook=snaps)
    )
    stacked = snaps.stacked()
    assert stacked["W1"].shape == (3, 2, 5, 3)
    for k, v in result.params.items():  # the last snapshot is the final iterate
        assert torch.equal(stacked[k][-1], v)
    radius = cloud_radius(stacked)
    for e in range(2):
        flat = np.stack(
            [np.concatenate([s[k][e].double().numpy().ravel() for k in s]) for s in snaps.kept]
        )
        expected = np.sqrt(((flat - flat.mean(0)) ** 2).sum(1).mean())
        assert radius[e] == pytest.approx(expected)
    assert member(result.params, 0)["W1"].shape == (5, 3)
