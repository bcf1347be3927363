"""One network's SGD cloud and its Lyapunov prediction (sgd.network_cloud), against numpy."""

import numpy as np
import pytest
import torch

from ghost_optima.core.data import Dataset
from ghost_optima.core.train import TrainConfig
from ghost_optima.sgd import lyapunov, network_cloud


def small_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(90, 5, generator=g)
    x[:, 4] = 0.0  # an input that is zero in every example: its weights carry no gradient noise
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return Dataset(x[:60], y[:60], x[60:], y[60:], "classification", 3, "toy")


def test_network_cloud_pieces_agree_with_numpy_and_with_each_other():
    data = small_problem()
    train = TrainConfig(10, batch_size=16, lr=0.1, momentum=0.9, weight_decay=0.01)
    config = network_cloud.CloudConfig(3, train, 1e-9, 4, 0.25, 8, 3, 200, 40, 20, 1e-10)
    cloud = network_cloud.network_cloud(
        data, config, seed=1, generator=torch.Generator().manual_seed(2)
    )
    d = cloud.theta_star.numel()
    assert d == 5 * 3 + 3 + 3 * 3 + 3 and cloud.grad_norm < 1e-6
    np.testing.assert_allclose(cloud.Q @ np.diag(cloud.lam) @ cloud.Q.T, cloud.H, atol=1e-10)
    assert np.all(np.diff(cloud.lam) <= 0) and cloud.lam[-1] > 0  # a minimum (weight decay)
    np.testing.assert_allclose(cloud.lam_top, cloud.lam[:4], rtol=1e-6)  # Lanczos against eigh
    assert cloud.eta == pytest.approx(0.25 / cloud.lam_top[0])
    G = cloud.G.numpy()
    np.testing.assert_allclose(cloud.C, np.cov(G.T, bias=True), atol=1e-14)
    # no noise along the dead input's 3 weights, nor where every logit moves alike (the same
    # vector added to every class's output weights, 3 directions, or to every output bias, 1)
    assert len(cloud.noisy) == d - 3 - 3 - 1
    noisy = cloud.noisy
    expected = lyapunov.lyapunov_eigenbasis(
        cloud.eta, cloud.lam[noisy], cloud.C_eig[np.ix_(noisy, noisy)], 8
    )
    np.testing.assert_allclose(cloud.predicted, expected)
    assert cloud.snapshots.shape == (8, 3, d)  # (200 - 40) / 20 snapshots of 3 chains
    np.testing.assert_allclose(cloud.projected, cloud.snapshots.numpy() @ cloud.Q[:, noisy])
