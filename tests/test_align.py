import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from ghost_optima.core.mlp import init_mlp, mlp_forward
from ghost_optima.symmetry.align import align, canonicalize, normalize_signs, permute
from ghost_optima.symmetry.group import (
    Transform,
    apply_transform,
    mlp_permutation_spec,
    random_transform,
)
from ghost_optima.symmetry.pairwise import barrier, count_distinct, distance
from ghost_optima.symmetry.spec import GroupSpec


def _planted(widths, seed, *, activation="relu", noise=0.0):
    """A random net and a transformed copy of it; returns (net, copy, transform)."""
    net = init_mlp(widths, seed)
    spec = mlp_permutation_spec(len(widths) - 2)
    transform = random_transform(spec, widths, activation, seed + 1)
    if activation != "tanh":
        transform = Transform(transform.perms)  # permutations only
    copy = apply_transform(net, spec, transform)
    gen = torch.Generator().manual_seed(seed + 2)
    copy = {
        k: v + noise * v.std() * torch.randn(v.shape, generator=gen, dtype=v.dtype)
        for k, v in copy.items()
    }
    return net, copy, transform


def _perm_matrix(p: torch.Tensor) -> torch.Tensor:
    return torch.eye(len(p), dtype=torch.float64)[p]


def test_permute_is_the_matrix_action_and_preserves_the_function():
    widths = (5, 4, 6, 2)
    net = init_mlp(widths, 0)
    gen = torch.Generator().manual_seed(1)
    perms = {"P1": torch.randperm(4, generator=gen), "P2": torch.randperm(6, generator=gen)}
    out = permute(net, perms)
    p1, p2 = _perm_matrix(perms["P1"]), _perm_matrix(perms["P2"])
    torch.testing.assert_close(out["W1"], p1 @ net["W1"])
    torch.testing.assert_close(out["W2"], p2 @ net["W2"] @ p1.T)
    torch.testing.assert_close(out["W3"], net["W3"] @ p2.T)
    torch.testing.assert_close(out["b2"], p2 @ net["b2"])
    x = torch.randn(7, 5, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(mlp_forward(out, x, "relu"), mlp_forward(net, x, "relu"))


@pytest.mark.parametrize("widths", [(10, 8, 6, 3), (20, 64, 64, 64, 5), (64, 512, 512, 10)])
def test_weight_matching_recovers_a_planted_permutation(widths):
    net, copy, transform = _planted(widths, 0, noise=1e-3)
    perms = align(net, copy, mlp_permutation_spec(len(widths) - 2), seed=3).perms
    for name, planted in transform.perms.items():
        assert torch.equal(perms[name], torch.argsort(planted)), name
    assert distance(net, permute(copy, perms)) < 1e-2 * distance(net, copy)


def _layer_score(a, b, perms, layer, n_hidden):
    """The coordinate-descent score of one layer, written with permutation matrices."""
    eye = torch.eye
    prev = _perm_matrix(perms[f"P{layer - 1}"]) if layer > 1 else eye(a["W1"].shape[1]).double()
    nxt = (
        _perm_matrix(perms[f"P{layer + 1}"])
        if layer < n_hidden
        else eye(a[f"W{layer + 1}"].shape[0]).double()
    )
    score = a[f"W{layer}"] @ (b[f"W{layer}"] @ prev.T).T
    score += torch.outer(a[f"b{layer}"], b[f"b{layer}"])
    score += a[f"W{layer + 1}"].T @ (nxt @ b[f"W{layer + 1}"])
    return score.numpy()


def test_weight_matching_ends_at_a_coordinatewise_optimum():
    widths = (12, 16, 16, 16, 4)
    a, b = init_mlp(widths, 10), init_mlp(widths, 11)
    perms = align(a, b, mlp_permutation_spec(3), seed=0).perms
    for name, p in perms.items():
        assert torch.equal(p.sort().values, torch.arange(16)), name

    identity = {name: torch.arange(16) for name in perms}
    aligned = permute(b, perms)
    assert distance(a, aligned) < distance(a, permute(b, identity))
    # No single layer can be improved by its own assignment problem.
    for layer in range(1, 4):
        score = _layer_score(a, b, perms, layer, 3)
        rows, cols = linear_sum_assignment(score, maximize=True)
        current = score[np.arange(16), perms[f"P{layer}"].numpy()].sum()
        assert score[rows, cols].sum() <= current + 1e-9


def test_weight_matching_reads_any_spec_against_brute_force():
    """A hand-written spec with a 3-axis parameter and free names: coordinate descent from the
    identity finds the brute-force optimum of <a, pi(b)> over all 3! x 4! relabellings."""
    gen = torch.Generator().manual_seed(0)
    spec = GroupSpec({"U": ("A", None), "c": ("A",), "T": ("B", "A", None), "V": (None, "B")})
    a = {
        "U": torch.randn(3, 2, generator=gen, dtype=torch.float64),
        "c": torch.randn(3, generator=gen, dtype=torch.float64),
        "T": torch.randn(4, 3, 2, generator=gen, dtype=torch.float64),
        "V": torch.randn(2, 4, generator=gen, dtype=torch.float64),
    }
    planted = Transform({"A": torch.tensor([2, 0, 1]), "B": torch.tensor([1, 3, 0, 2])})
    b = apply_transform(a, spec, planted)
    b = {
        k: v + 0.05 * torch.randn(v.shape, generator=gen, dtype=torch.float64) for k, v in b.items()
    }

    def objective(perms):
        moved = apply_transform(b, spec, Transform(perms))
        return sum(float((a[k] * moved[k]).sum()) for k in a)

    candidates = [
        {"A": torch.tensor(pa), "B": torch.tensor(pb)}
        for pa in itertools.permutations(range(3))
        for pb in itertools.permutations(range(4))
    ]
    best = max(candidates, key=objective)
    found = align(a, b, spec).perms
    assert set(found) == {"A", "B"}
    assert all(torch.equal(found[p], best[p]) for p in best)
    assert objective(found) == pytest.approx(objective(best), rel=1e-12)


def test_weight_matching_reads_the_spec_under_any_names():
    a, b = init_mlp((5, 8, 7, 6, 3), 0), init_mlp((5, 8, 7, 6, 3), 1)
    spec = mlp_permutation_spec(3)
    default = align(a, b, spec).perms
    renamed = GroupSpec(
        {
            k: tuple(None if p is None else "H" + p[1:] for p in axes)
            for k, axes in spec.axes.items()
        }
    )
    named = align(a, b, renamed).perms
    assert all(torch.equal(default[f"P{i}"], named[f"H{i}"]) for i in (1, 2, 3))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("key", ["incoming_norm", "outgoing_norm", "bias"])
def test_canonicalize_is_invariant_and_preserves_the_function(activation, key):
    widths = (6, 10, 12, 9, 3)
    net = init_mlp(widths, 7)
    spec = mlp_permutation_spec(3)
    canon = canonicalize(net, activation, key)
    x = torch.randn(20, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mlp_forward(canon, x, activation), mlp_forward(net, x, activation))
    for seed in range(3):
        transform = random_transform(spec, widths, activation, seed)
        if activation == "relu":
            transform = Transform(transform.perms)  # rescalings are not quotiented out
        else:
            assert transform.signs is not None
        other = canonicalize(apply_transform(net, spec, transform), activation, key)
        assert all(torch.equal(other[k], canon[k]) for k in canon)
    again = canonicalize(canon, activation, key)
    assert all(torch.equal(again[k], canon[k]) for k in canon)


def test_canonical_order_and_signs():
    net = init_mlp((4, 7, 5, 2), 3)
    canon = canonicalize(net, "tanh", "incoming_norm")
    for layer in (1, 2):
        rows = torch.cat([canon[f"W{layer}"], canon[f"b{layer}"][:, None]], 1)
        norms = rows.norm(dim=1)
        assert (norms[:-1] >= norms[1:]).all()
        peak = rows.gather(1, rows.abs().argmax(1, keepdim=True))
        assert (peak > 0).all()
    flipped = normalize_signs(net, mlp_permutation_spec(2, "tanh"))
    x = torch.randn(9, 4, dtype=torch.float64)
    torch.testing.assert_close(mlp_forward(flipped, x, "tanh"), mlp_forward(net, x, "tanh"))


@pytest.fixture(scope="module")
def two_nets():
    widths = (5, 16, 12, 4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 4, (64,), generator=gen)
    return init_mlp(widths, 1), init_mlp(widths, 2), x, y


def _brute_force_barrier(a, b, x, y, activation, task, ts):
    losses, accs = [], []
    for t in ts:
        params = {k: (1 - t) * a[k] + t * b[k] for k in a}
        h = x
        for layer in (1, 2):
            h = getattr(torch, activation)(h @ params[f"W{layer}"].T + params[f"b{layer}"])
        out = h @ params["W3"].T + params["b3"]
        if task == "classification":
            losses.append(F.cross_entropy(out, y).item())
            accs.append((out.argmax(1) == y).double().mean().item())
        else:
            losses.append(((out - y) ** 2).mean().item())
    losses = np.array(losses)
    chord = [(1 - t) * losses[0] + t * losses[-1] for t in ts]
    return losses, accs, max(l_t - c for l_t, c in zip(losses, chord, strict=True))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_barrier_matches_a_brute_force_loop(two_nets, activation):
    a, b, x, y = two_nets
    result = barrier(a, b, x, y, activation, "classification", n_points=11)
    ts = [k / 10 for k in range(11)]
    losses, accs, ref_barrier = _brute_force_barrier(a, b, x, y, activation, "classification", ts)
    np.testing.assert_allclose(result["t"], ts, atol=1e-12)
    np.testing.assert_allclose(result["loss"], losses, rtol=1e-10)
    np.testing.assert_allclose(result["acc"], accs)
    assert result["loss_barrier"] == pytest.approx(ref_barrier, rel=1e-9, abs=1e-12)
    drops = [(1 - t) * accs[0] + t * accs[-1] - a_t for t, a_t in zip(ts, accs, strict=True)]
    assert result["acc_barrier"] == pytest.approx(max(drops))


def test_barrier_regression_matches_brute_force(two_nets):
    a, b, x, _ = two_nets
    y = torch.randn(64, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    result = barrier(a, b, x, y, "tanh", "regression", n_points=6)
    losses, _, ref_barrier = _brute_force_barrier(
        a, b, x, y, "tanh", "regression", [k / 5 for k in range(6)]
    )
    np.testing.assert_allclose(result["loss"], losses, rtol=1e-10)
    assert result["loss_barrier"] == pytest.approx(ref_barrier, rel=1e-9, abs=1e-12)
    assert np.isnan(result["acc"]).all()


def test_barrier_self_is_zero_and_swap_symmetric(two_nets):
    a, b, x, y = two_nets
    a32 = {k: v.float() for k, v in a.items()}
    self_barrier = barrier(a32, a32, x.float(), y, "tanh", "classification")
    assert abs(self_barrier["loss_barrier"]) < 1e-6 and abs(self_barrier["acc_barrier"]) < 1e-6
    ab = barrier(a, b, x, y, "tanh", "classification")
    ba = barrier(b, a, x, y, "tanh", "classification")
    np.testing.assert_allclose(ab["loss"], ba["loss"][::-1], rtol=1e-12)
    assert ab["loss_barrier"] == pytest.approx(ba["loss_barrier"], rel=1e-10)
    assert ab["acc_barrier"] == pytest.approx(ba["acc_barrier"], abs=1e-12)
    assert ab["loss_barrier"] >= 0.0


def test_distance(two_nets):
    a, b, _, _ = two_nets
    mid = {k: (a[k] + b[k]) / 2 for k in a}
    flat = torch.cat([(a[k] - b[k]).reshape(-1) for k in a])
    assert distance(a, b) == pytest.approx(flat.norm().item(), rel=1e-12)
    assert distance(a, mid) == pytest.approx(0.5 * distance(a, b), rel=1e-12)


def test_count_distinct():
    widths = (6, 12, 10, 3)
    net, copy, _ = _planted(widths, 8)
    other = init_mlp(widths, 99)
    perms_only, signed = mlp_permutation_spec(2), mlp_permutation_spec(2, "tanh")
    n, labels = count_distinct([net, copy, other], tol=1e-6, group=perms_only)
    assert n == 2 and labels.tolist() == [0, 0, 1]
    n, labels = count_distinct([net, copy], tol=1e-6)
    assert n == 2 and labels.tolist() == [0, 1]
    # tanh: sign flips as well as permutations, once the group holds them.
    net, signed_copy, transform = _planted(widths, 8, activation="tanh")
    assert transform.signs is not None
    assert count_distinct([net, signed_copy], tol=1e-6, group=perms_only)[0] == 2
    assert count_distinct([net, signed_copy], tol=1e-6, group=signed)[0] == 1
