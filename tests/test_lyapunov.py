"""The full stationary covariance (discrete Lyapunov equation), its measurement, and the
variance-flatness protocol."""

import numpy as np
import pytest
import scipy.linalg
import torch

from ghost_optima.core.mlp import init_mlp
from ghost_optima.landscape import hessian
from ghost_optima.sgd import known_problems, lyapunov, network_chains
from ghost_optima.sgd import variance_flatness as vf
from ghost_optima.sgd.chains import Schedule, Watch, run_chains


def random_problem(d, seed):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    lam = np.geomspace(1.0, 0.05, d)
    A = rng.standard_normal((d, d))
    C = A @ A.T / d + 0.1 * np.eye(d)  # does not commute with H
    return Q @ np.diag(lam) @ Q.T, C, lam, Q


@pytest.mark.parametrize("n", [None, 50])
def test_eigenbasis_formula_solves_the_lyapunov_equation_as_scipy_does(n):
    H, C, _, _ = random_problem(12, seed=1)
    eta, B = 1.3, 4
    eig = lyapunov.lyapunov_covariance(eta, H, C, B, n=n, method="eigen")
    ref = lyapunov.lyapunov_covariance(eta, H, C, B, n=n, method="scipy")
    np.testing.assert_allclose(eig, ref, rtol=1e-9, atol=1e-12)
    A = np.eye(12) - eta * H
    s = 1.0 if n is None else (n - B) / (n - 1)
    np.testing.assert_allclose(A @ eig @ A.T + eta**2 * s * C / B, eig, rtol=1e-9, atol=1e-12)
    direct = scipy.linalg.solve_discrete_lyapunov(A, eta**2 * s * C / B)
    np.testing.assert_allclose(eig, direct, rtol=1e-9, atol=1e-12)


def test_eigenbasis_diagonal_is_the_per_direction_law():
    from ghost_optima.sgd.stationary import stationary_variance

    _, C, lam, _ = random_problem(6, seed=2)
    S = lyapunov.lyapunov_eigenbasis(0.7, lam, C, 3)
    np.testing.assert_allclose(np.diag(S), stationary_variance(0.7, lam, np.diag(C), 3))
    with pytest.raises(ValueError, match="diverges"):
        lyapunov.lyapunov_eigenbasis(2.5, lam, C, 3)
    with pytest.raises(ValueError, match="method"):
        lyapunov.lyapunov_covariance(0.7, np.diag(lam), C, 3, method="nope")


def test_lyapunov_solution_matches_a_long_simulation_of_a_noisy_quadratic():
    """Off-diagonal entries included: a quadratic with known H and a C that does not commute."""
    d, eta, B = 4, 0.5, 2
    lam = np.array([1.0, 0.5, 0.25, 0.1])
    rng = np.random.default_rng(0)
    A = rng.standard_normal((d, d))
    C = A @ A.T + 0.2 * np.eye(d)
    schedule = Schedule(eta, B, 6000, 1000)
    gen = torch.Generator().manual_seed(0)
    gradient = known_problems._QuadraticGradient(
        known_problems.NoisyQuadratic(lam, C), schedule, 256, gen
    )
    zero = torch.zeros(d, dtype=torch.float64)
    _, snaps = lyapunov.run_with_snapshots(
        gradient, None, torch.zeros(256, d, dtype=torch.float64), schedule, gen, Watch(zero), 5
    )
    pred = lyapunov.lyapunov_eigenbasis(eta, lam, C, B)
    assert np.abs(pred - np.diag(np.diag(pred))).max() > 0.1 * np.diag(pred).min()
    cmp = lyapunov.compare_covariance(snaps.numpy(), pred, n_boot=200)
    scale = np.sqrt(np.outer(np.diag(pred), np.diag(pred)))
    assert np.abs((cmp.measured - pred) / scale).max() < 0.05
    assert cmp.rel_error.hi < 0.05 and cmp.diag_only_error.lo > 0.1
    assert cmp.plug_in_error >= cmp.rel_error.value
    assert 0.97 < cmp.ratio_median.lo and cmp.ratio_median.hi < 1.03


def test_diagonal_only_error_is_on_the_whole_matrix_norm():
    """Exact draws from P: the diagonal-only error is ||P - diag P||_F / ||P||_F (the whole
    matrix's norm), not the same norm over ||diag P||_F."""
    _, P, _, _ = random_problem(8, seed=4)
    L = np.linalg.cholesky(P)
    snaps = np.random.default_rng(4).standard_normal((4000, 8, 8)) @ L.T
    cmp = lyapunov.compare_covariance(snaps, P, n_boot=200)
    off = np.linalg.norm(P - np.diag(np.diag(P)))
    on_whole, on_diag = off / np.linalg.norm(P), off / np.linalg.norm(np.diag(P))
    assert on_diag > 1.1 * on_whole  # the two normalisations differ here
    assert abs(cmp.diag_only_error.value - on_whole) < 0.03 * on_whole
    assert cmp.diag_only_error.lo < on_whole < cmp.diag_only_error.hi


def test_run_with_snapshots_equals_one_run_of_the_engine():
    """The snapshots are the engine's own states at those steps, and the time averages those of
    one uninterrupted run, when both draw their batches from the same seeded generator."""
    lam = torch.tensor([1.0, 0.3], dtype=torch.float64)

    def gradient(u, batch):
        return lam * u + 0.1 * (batch.double().mean(dim=1, keepdim=True) - 4.5)

    schedule = Schedule(0.5, 3, 45, 5)
    watch = Watch(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    start = torch.ones(4, 2, dtype=torch.float64)
    seg, snaps = lyapunov.run_with_snapshots(
        gradient, 10, start, schedule, torch.Generator().manual_seed(1), watch, 8
    )
    assert snaps.shape == (5, 4, 2) and seg.n_samples == 40
    for k in range(5):  # the engine run straight to step 5 + 8 (k + 1), same batches
        upto = Schedule(0.5, 3, 5 + 8 * (k + 1), 0)
        ref = run_chains(gradient, 10, start, upto, torch.Generator().manual_seed(1), watch)
        torch.testing.assert_close(snaps[k], ref.final, rtol=1e-12, atol=1e-12)
    one = run_chains(gradient, 10, start, schedule, torch.Generator().manual_seed(1), watch)
    torch.testing.assert_close(seg.final, one.final, rtol=1e-12, atol=1e-12)
    for field in ("proj_mean", "proj_sq", "msd"):
        torch.testing.assert_close(getattr(seg, field), getattr(one, field), rtol=1e-12, atol=1e-12)
    # the chains differ (the batches are random), so equal snapshots are not a trivial match
    assert float((snaps[-1, 0] - snaps[-1, 1]).abs().max()) > 1e-3
    other = lyapunov.run_with_snapshots(
        gradient, 10, start, schedule, torch.Generator().manual_seed(2), watch, 8
    )[1]
    assert float((other - snaps).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="every"):
        lyapunov.run_with_snapshots(gradient, 10, start, schedule, torch.Generator(), watch, 0)


def test_compare_covariance_is_unbiased_for_iid_draws_and_sees_a_wrong_scale():
    rng = np.random.default_rng(3)
    _, P, _, _ = random_problem(30, seed=3)
    L = np.linalg.cholesky(P)
    snaps = rng.standard_normal((400, 16, 30)) @ L.T
    right = lyapunov.compare_covariance(snaps, P, n_boot=300)
    assert right.rel_error.value < 0.03 and right.rel_error.value < right.plug_in_error
    assert right.noise_floor > 0.5 * right.plug_in_error
    wrong = lyapunov.compare_covariance(snaps, 2 * P, n_boot=300)
    assert wrong.rel_error.lo < 0.5 < wrong.rel_error.hi or abs(wrong.rel_error.value - 0.5) < 0.03


def test_full_hessian_agrees_with_hessian_vector_products():
    torch.manual_seed(0)
    params = init_mlp([5, 4, 3], torch.Generator().manual_seed(0))
    X = torch.randn(40, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    objective, theta = network_chains.mlp_objective(params, X, y, weight_decay=0.01)
    H = hessian.hessian_matrix(objective.loss, theta)
    V = torch.randn(theta.numel(), 3, dtype=torch.float64)
    for j in range(3):
        torch.testing.assert_close(H @ V[:, j], hessian.hvp(objective.loss, theta, V[:, j]))
    lam_top, _, _ = hessian.top_eigenpairs(objective.loss, theta, 3)
    np.testing.assert_allclose(
        np.sort(np.linalg.eigvalsh(H.numpy()))[::-1][:3], lam_top.numpy(), rtol=1e-8
    )


def test_gradient_covariance_and_noisy_directions():
    G = np.array([[1.0, 0.0, 2.0], [3.0, 0.0, 2.0], [2.0, 0.0, 2.0]])
    C = lyapunov.gradient_covariance(G)
    np.testing.assert_allclose(C, np.cov(G.T, bias=True))
    assert list(lyapunov.noisy_directions(np.diag(C), 1e-10)) == [0]


def test_loss_widths_on_a_quadratic_and_the_exponent():
    kappa = torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    L0 = 0.5

    def loss(th):
        return L0 + 0.5 * (kappa * th * th).sum()

    widths = vf.loss_widths(loss, torch.zeros(3, dtype=torch.float64), np.eye(3), factor=3.0)
    np.testing.assert_allclose(widths, 2 * np.sqrt(2 * 2 * L0 / kappa.numpy()), rtol=1e-6)
    psi = vf.flatness_exponent(np.array([1.0, 4.0, 16.0]) ** -1, widths, n_boot=100)
    assert psi.value == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("widths", "activation"), [([5, 4, 3], "tanh"), ([5, 4, 3], "sin"), ([5, 3, 4, 3], "tanh")]
)
def test_mlp_line_loss_is_the_loss_along_each_direction(widths, activation):
    g = torch.Generator().manual_seed(1)
    params = init_mlp(widths, g)
    X = torch.randn(30, 5, dtype=torch.float64, generator=g)
    y = torch.randint(0, 3, (30,), generator=g)
    objective, theta = network_chains.mlp_objective(
        params, X, y, activation=activation, weight_decay=0.05
    )
    P = torch.randn(theta.numel(), 6, dtype=torch.float64, generator=g)
    t = torch.linspace(-2.0, 3.0, 6, dtype=torch.float64)
    along = vf.mlp_line_loss(objective)(theta, P)(t)
    direct = torch.stack([objective.loss(theta + t[i] * P[:, i]) for i in range(6)])
    torch.testing.assert_close(along, direct, rtol=1e-12, atol=1e-12)
    plain = vf.loss_widths(objective.loss, theta, P.numpy(), factor=1.5)
    fast = vf.loss_widths(
        objective.loss, theta, P.numpy(), factor=1.5, line=vf.mlp_line_loss(objective)
    )
    np.testing.assert_allclose(fast, plain, rtol=1e-9)


def test_principal_directions_recover_a_known_covariance():
    rng = np.random.default_rng(4)
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    X = rng.standard_normal((20000, 5)) * np.array([3.0, 2.0, 1.0, 0.5, 0.1]) @ Q.T
    var, vec = vf.principal_directions(X, 2)
    np.testing.assert_allclose(var, [9.0, 4.0], rtol=0.05)
    assert abs(abs(vec[:, 0] @ Q[:, 0]) - 1) < 1e-3


def _networks(scales, chains=6, steps=60, seed=0):
    """Gaussian 'chains' around networks whose prediction is off by ``scales[i]``."""
    rng = np.random.default_rng(seed)
    snaps, preds = [], []
    for i, scale in enumerate(scales):
        _, P, _, _ = random_problem(4 + i, seed=seed + i)
        snaps.append(rng.standard_normal((steps, chains, 4 + i)) @ np.linalg.cholesky(P).T)
        preds.append(scale * P)
    return snaps, preds


def _compared(snaps, preds, n_boot=50):
    return [
        lyapunov.compare_covariance(u, p, n_boot=n_boot) for u, p in zip(snaps, preds, strict=True)
    ]


def test_across_networks_point_is_the_mean_of_each_networks_comparison():
    each = _compared(*_networks([1.0, 1.5, 2.0]))
    error, ratio = lyapunov.compare_across_networks(each, n_boot=50)
    assert error.value == pytest.approx(np.mean([c.rel_error.value for c in each]), rel=1e-12)
    assert ratio.value == pytest.approx(np.mean([c.ratio_median.value for c in each]), rel=1e-12)
    assert error.n == ratio.n == 3 and error.lo <= error.value <= error.hi


def test_across_networks_resamples_networks_then_their_chains_by_brute_force():
    from ghost_optima.core.stats import Nested, resample

    snaps, preds = _networks([1.0, 3.0], chains=5, steps=30, seed=4)
    n_boot = 40
    error, ratio = lyapunov.compare_across_networks(_compared(snaps, preds), n_boot=n_boot, seed=9)
    outer, inner = resample(Nested(2, 5), n_boot=n_boot, seed=9)[0]

    def one_network(i, drawn):  # straight from the definition: pairs of slots of distinct chains
        U = snaps[i] - snaps[i].reshape(-1, snaps[i].shape[2]).mean(0)
        M = np.einsum("tci,tcj->cij", U, U) / len(U)
        D = M[drawn] - preds[i]
        cross = [np.sum(D[a] * D[b]) for a in range(5) for b in range(5) if drawn[a] != drawn[b]]
        err = np.sqrt(max(np.mean(cross), 0.0)) / np.linalg.norm(preds[i])
        return err, np.median(np.diag(M[drawn].mean(0)) / np.diag(preds[i]))

    values = np.array(
        [
            np.mean([one_network(outer[r, s], inner[r, s]) for s in range(2)], axis=0)
            for r in range(n_boot + 1)
        ]
    )
    lo, hi = np.quantile(values[1:], [0.025, 0.975], axis=0)
    assert (error.value, ratio.value) == pytest.approx(tuple(values[0]), rel=1e-10)
    assert (error.lo, error.hi, ratio.lo, ratio.hi) == pytest.approx((lo[0], hi[0], lo[1], hi[1]))


def test_across_networks_interval_holds_the_spread_between_networks():
    snaps, preds = _networks([1.0, 1.0, 2.0, 2.0], chains=8, steps=200, seed=2)
    each = _compared(snaps, preds, n_boot=400)
    error, _ = lyapunov.compare_across_networks(each, n_boot=400)
    assert error.hi - error.lo > 2 * max(c.rel_error.hi - c.rel_error.lo for c in each)
    same, _ = lyapunov.compare_across_networks(each[:2], n_boot=400)
    assert same.hi - same.lo < error.hi - error.lo
    fewer = lyapunov.compare_covariance(snaps[1][:, :4], preds[1], n_boot=10)
    with pytest.raises(ValueError, match="same number of chains"):
        lyapunov.compare_across_networks([each[0], fewer])
    with pytest.raises(ValueError, match="at least one network"):
        lyapunov.compare_across_networks([])
