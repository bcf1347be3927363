"""Tests of ghost_optima.landscape.critical against critical points known in closed form."""

import math

import numpy as np
import pytest
import torch

from ghost_optima.landscape.critical import hessian_spectrum, morse_index, refine_critical_point

DT = torch.float64


def double_well(theta):
    """``(x^2 - 1)^2 + y^2 - z^2 / 2 + x y z``: critical points worked out by hand below."""
    x, y, z = theta
    return (x * x - 1) ** 2 + y * y - 0.5 * z * z + x * y * z


def test_reaches_a_saddle_that_descent_would_leave():
    # Near the origin: grad = (4x^3 - 4x + yz, 2y + xz, -z + xy) = 0 at 0, Hessian
    # diag(-4, 2, -1): a saddle of index 2, which gradient descent is repelled from.
    cp = refine_critical_point(double_well, torch.tensor([0.05, -0.03, 0.02], dtype=DT))
    assert cp.converged and cp.grad_norm <= 1e-12
    np.testing.assert_allclose(cp.theta.numpy(), 0.0, atol=1e-12)
    spectrum = hessian_spectrum(double_well, cp.theta)
    np.testing.assert_allclose(spectrum.numpy(), [-4.0, -1.0, 2.0], atol=1e-10)
    assert morse_index(spectrum) == (2, 0)


def test_reaches_the_nearby_well_bottom():
    # At (1, 0, 0): grad = 0; Hessian [[8, 0, 0], [0, 2, 1], [0, 1, -1]] (x y z couples y, z).
    cp = refine_critical_point(double_well, torch.tensor([0.9, 0.1, -0.1], dtype=DT))
    assert cp.converged
    np.testing.assert_allclose(cp.theta.numpy(), [1.0, 0.0, 0.0], atol=1e-12)
    spectrum = hessian_spectrum(double_well, cp.theta).numpy()
    yz = np.linalg.eigvalsh(np.array([[2.0, 1.0], [1.0, -1.0]]))
    np.testing.assert_allclose(np.sort(spectrum), np.sort([8.0, *yz]), atol=1e-10)
    assert cp.loss == pytest.approx(0.0, abs=1e-20)


def test_quadratic_converges_in_one_newton_like_step():
    A = torch.tensor([[3.0, 1.0], [1.0, -2.0]], dtype=DT)
    b = torch.tensor([1.0, -1.0], dtype=DT)

    def quad(t):
        return 0.5 * t @ A @ t - b @ t

    cp = refine_critical_point(quad, torch.zeros(2, dtype=DT), mu0=1e-14)
    np.testing.assert_allclose(cp.theta.numpy(), np.linalg.solve(A.numpy(), b.numpy()), atol=1e-12)
    assert cp.n_iter <= 2


def test_gives_up_without_a_critical_point():
    def ramp(t):  # gradient never vanishes
        return t.sum() + 0.0 * t.pow(2).sum()

    cp = refine_critical_point(ramp, torch.zeros(3, dtype=DT), max_iter=20)
    assert not cp.converged
    assert cp.grad_norm == pytest.approx(math.sqrt(3))


def test_morse_index_counts_signs_relative_to_scale():
    ev = torch.tensor([-1e-3, -1e-14, 0.0, 1e-13, 2.0], dtype=DT)
    assert morse_index(ev) == (1, 3)
