"""Tests of ghost_optima.sgd.copies: the nearest copy of an iterate, the polish check, the
slowest relaxation, segmented runs and the cloud's figures along the way to a copy."""

import itertools
import math

import numpy as np
import pytest
import torch
from planted_nets import planted_merged_pair, tiny_objective

from ghost_optima.core import mlp
from ghost_optima.landscape import hessian
from ghost_optima.sgd import copies, network_chains, reach
from ghost_optima.sgd.chains import Schedule, Watch
from ghost_optima.symmetry import group

DT = torch.float64


def _transformed(params, perm, signs):
    spec = group.mlp_permutation_spec(1)
    t = group.Transform({"P1": torch.tensor(perm)}, signs={"P1": torch.tensor(signs, dtype=DT)})
    return group.apply_transform(params, spec, t)


def _all_copies(params):
    """Every copy of a one-hidden-layer tanh net: all permutations times all sign patterns."""
    n = len(params["b1"])
    spec = group.mlp_permutation_spec(1)
    for perm in itertools.permutations(range(n)):
        for signs in itertools.product([1.0, -1.0], repeat=n):
            t = group.Transform(
                {"P1": torch.tensor(perm)}, signs={"P1": torch.tensor(signs, dtype=DT)}
            )
            yield group.apply_transform(params, spec, t)


def _flat(params):
    return torch.cat([params[k].reshape(-1) for k in ("W1", "b1", "W2", "b2")])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nearest_copy_is_the_nearest_of_every_signed_permutation(seed):
    """Brute force over all 4! 2^4 = 384 copies of a width-4 tanh net."""
    centre = mlp.init_mlp([3, 4, 2], seed)
    g = torch.Generator().manual_seed(10 + seed)
    point = {k: v + 0.8 * torch.randn(v.shape, generator=g, dtype=DT) for k, v in centre.items()}
    distances = [float((_flat(c) - _flat(point)).norm()) for c in _all_copies(centre)]
    match = copies.nearest_copy(centre, point, "tanh")
    assert match.distance == pytest.approx(min(distances), rel=1e-10)
    assert match.centre_distance == pytest.approx(float((_flat(centre) - _flat(point)).norm()))
    # the copy it names is at that distance
    t = group.Transform(
        {"P1": torch.as_tensor(match.perm)}, signs={"P1": torch.as_tensor(match.signs)}
    )
    named = group.apply_transform(centre, group.mlp_permutation_spec(1), t)
    assert float((_flat(named) - _flat(point)).norm()) == pytest.approx(match.distance, rel=1e-10)
    with pytest.raises(ValueError, match="one hidden layer"):
        copies.nearest_copy(mlp.init_mlp([3, 4, 4, 2], 0), mlp.init_mlp([3, 4, 4, 2], 1), "tanh")


def test_nearer_distinct_copy_counts_planted_copies_but_not_merged_swaps():
    params = planted_merged_pair()
    g = torch.Generator().manual_seed(2)

    def jitter(p):
        return {k: v + 1e-3 * torch.randn(v.shape, generator=g, dtype=DT) for k, v in p.items()}

    ones = [1.0] * 6
    swap_04 = _transformed(params, [4, 1, 2, 3, 0, 5], ones)
    merged_swap_13 = _transformed(params, [0, 3, 2, 1, 4, 5], [1, -1, 1, -1, 1, 1])
    lone_flips = _transformed(params, list(range(6)), [-1, 1, 1, 1, -1, 1])
    # halfway to the swap of units 0 and 4, a little on theta*'s side, and a little past it
    flat_c, flat_s = _flat(params), _flat(swap_04)
    names = {"W1": (6, 3), "b1": (6,), "W2": (2, 6), "b2": (2,)}

    def unflat(v):
        out, k = {}, 0
        for name, shape in names.items():
            size = math.prod(shape)
            out[name] = v[k : k + size].reshape(shape)
            k += size
        return out

    before = unflat(flat_c + 0.45 * (flat_s - flat_c))
    past = unflat(flat_c + 0.55 * (flat_s - flat_c))
    points = [
        jitter(params),
        jitter(swap_04),
        jitter(merged_swap_13),
        jitter(lone_flips),
        before,
        past,
    ]
    threshold = reach.merge_threshold(params, 0.05)
    flags = copies.nearer_distinct_copy(params, points, "tanh", merged_below=threshold)
    assert flags.tolist() == [False, True, False, True, False, True]


def test_polish_shift_reports_the_move_in_copy_distances():
    objective, theta = tiny_objective()
    rough, _, _ = network_chains.minimize(objective.loss, theta, grad_tol=1e-3)
    direction = torch.zeros(theta.numel(), dtype=DT)
    direction[0] = 2.0
    out = copies.polish_shift(objective.loss, rough, 1e-9, direction, 0.5)
    step = out.theta - rough
    assert out.shift == pytest.approx(float(step.norm()) / 0.5)
    assert out.along == pytest.approx(float(step[0]) / 0.5)
    assert out.grad_norm < 1e-7 and out.shift > 0
    again = copies.polish_shift(objective.loss, out.theta, 1e-9, direction, 0.5)
    assert again.shift < 1e-6 * out.shift + 1e-12
    with pytest.raises(ValueError):
        copies.polish_shift(objective.loss, rough, 1e-9, direction, 0.0)


def test_smallest_eigenvalue_matches_the_dense_hessian():
    objective, theta = tiny_objective()
    star, _, _ = network_chains.minimize(objective.loss, theta, grad_tol=1e-10)
    for point in (star, theta):  # at the minimum and away from it (negative curvature)
        dense = np.linalg.eigvalsh(hessian.hessian_matrix(objective.loss, point).numpy())
        lam, n_hvp = copies.smallest_eigenvalue(objective.loss, point, dense[-1] * 1.1, tol=1e-10)
        assert lam == pytest.approx(dense[0], abs=1e-7) and n_hvp > 0


def test_segment_summaries_are_the_states_of_one_run():
    objective, theta = tiny_objective()
    schedule = Schedule(0.1, 8, 50)

    def summarise(states):
        return {"first": states[:, 0].numpy(), "sq": (states - theta).pow(2).sum(1).numpy()}

    steps, out = copies.segment_summaries(
        objective, schedule, 3, torch.Generator().manual_seed(5), theta, 20, summarise
    )
    assert steps.tolist() == [20, 40] and out["first"].shape == (3, 2)
    for k, n in enumerate(steps):
        ref = network_chains.mlp_sgd_chains(
            objective, Schedule(0.1, 8, int(n)), 3, torch.Generator().manual_seed(5), Watch(theta)
        ).final
        np.testing.assert_allclose(out["first"][:, k], ref[:, 0].numpy(), rtol=1e-12)
        np.testing.assert_allclose(out["sq"][:, k], (ref - theta).pow(2).sum(1).numpy(), rtol=1e-12)
    assert np.ptp(out["first"][:, -1]) > 1e-6  # the chains differ
    with pytest.raises(ValueError):
        copies.segment_summaries(objective, schedule, 3, torch.Generator(), theta, 0, summarise)


def test_gaussian_share_and_cloud_figures_against_direct_counts():
    # the share of N(0, (0.5 delta)^2) past delta / 2 is P(Z > 1)
    from scipy.stats import norm

    assert copies.gaussian_share_past_midpoint(0.5) == pytest.approx(norm.sf(1.0), rel=1e-12)
    assert copies.gaussian_share_past_midpoint(0.25) == pytest.approx(norm.sf(2.0), rel=1e-12)
    rng = np.random.default_rng(0)
    proj = rng.normal(0.3, 0.5, size=(6, 4000))  # distance 2: projected ratio ~ sqrt(.34) / 2
    nearer = proj > 1.0
    out = copies.cloud_figures(proj, nearer, 2.0, n_boot=300, seed=0)
    assert out["projected"].value == pytest.approx(math.sqrt((proj**2).mean()) / 2)
    assert out["mean"].value == pytest.approx(proj.mean() / 2)
    assert out["nearer"].value == pytest.approx(nearer.mean())
    assert out["nearer"].lo < norm.sf(1.4) < out["nearer"].hi
    with pytest.raises(ValueError):
        copies.cloud_figures(proj, nearer[:, :5], 2.0, n_boot=10, seed=0)


def test_radius_growth_is_one_for_a_stationary_cloud_and_sees_drift():
    rng = np.random.default_rng(1)
    steps = np.arange(1, 1001)
    flat = rng.exponential(1.0, size=(16, 1000))
    est = copies.radius_growth(flat, steps, 1000, 0.5, n_boot=300, seed=0)
    assert est.lo < 1.0 < est.hi
    drifting = flat * (steps / 500.0)  # mean grows in proportion to the step
    est = copies.radius_growth(drifting, steps, 1000, 0.5, n_boot=300, seed=0)
    # later half 750..1000 against 500..750: about the ratio of mean steps, 875 / 625
    assert est.lo > 1.2
    with pytest.raises(ValueError):
        copies.radius_growth(flat, steps, 1000, 0.999, n_boot=10, seed=0)
