import math

import alignment_reference as old
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial import chebyshev, legendre

from ghost_optima.core.data import teacher_student
from ghost_optima.core.mlp import ensemble_forward, init_mlp
from ghost_optima.core.train import TrainConfig, stack_params, train_ensemble
from ghost_optima.remedies.orthopoly import (
    PolyActivation,
    basis_values,
    degree_pattern,
    log10_group_order,
    parities,
    poly_spec,
    random_pattern,
    shared_pattern,
    symmetry_classes,
)
from ghost_optima.symmetry.align import normalize_signs
from ghost_optima.symmetry.group import Transform, apply_transform, mlp_permutation_spec

NUMPY = {"legendre": legendre.legval, "chebyshev": chebyshev.chebval}


def _forward(params, x, act):
    return ensemble_forward(stack_params([params]), x, act)[0]


@pytest.mark.parametrize("basis", ["legendre", "chebyshev"])
def test_basis_matches_numpy_polynomial(basis):
    x = torch.linspace(-1, 1, 401, dtype=torch.float64)
    values = basis_values(x, 9, basis)
    assert values.shape == (401, 10)
    for d in range(10):
        unit = np.zeros(d + 1)
        unit[d] = 1.0
        np.testing.assert_allclose(values[:, d].numpy(), NUMPY[basis](x.numpy(), unit), atol=1e-13)


@pytest.mark.parametrize("basis", ["legendre", "chebyshev"])
def test_activation_value_and_gradient(basis):
    coefs = random_pattern(5, 6, generator=torch.Generator().manual_seed(0))
    act = PolyActivation((coefs,), basis)
    z = torch.randn(3, 7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    expected = np.stack(
        [NUMPY[basis](np.tanh(z[..., i].numpy()), coefs[i].numpy()) for i in range(5)], -1
    )
    np.testing.assert_allclose(act(z, 1).numpy(), expected, atol=1e-13)
    assert torch.autograd.gradcheck(lambda t: act(t, 1), (z[:1, :2].clone().requires_grad_(),))
    with pytest.raises(ValueError):
        act(torch.zeros(2, 4, dtype=torch.float64), 1)


@pytest.mark.parametrize("basis", ["legendre", "chebyshev"])
def test_per_member_rows_act_like_each_member_alone(basis):
    gen = torch.Generator().manual_seed(2)
    rows = torch.stack([random_pattern(6, 3, generator=gen) for _ in range(3)])  # (E, n, D + 1)
    z = torch.randn(3, 7, 6, dtype=torch.float64, generator=gen)
    joint = PolyActivation((rows,), basis)
    for e in range(3):
        alone = PolyActivation((rows[e],), basis)(z[e], 1)
        np.testing.assert_allclose(joint(z, 1)[e].numpy(), alone.numpy(), atol=1e-14)
    zg = z[:, :2].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: joint(t, 1), (zg,))
    with pytest.raises(ValueError):
        joint(torch.zeros(3, 2, 4, dtype=torch.float64), 1)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 9),
    st.sampled_from(["legendre", "chebyshev"]),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_value_and_slope_match_numpy_derivative(degree, basis, per_member, seed):
    """``phi = S(tanh z)``, ``phi' = S'(tanh z)(1 - tanh^2 z)`` against NumPy's series and its
    derivative (``legder``/``chebder``), every degree down to the constant."""
    gen = torch.Generator().manual_seed(seed)
    n_members, n, n_units = 2, 6, 4
    rows = torch.randn(n_members, n_units, degree + 1, dtype=torch.float64, generator=gen)
    coefs = rows if per_member else rows[0]
    z = 2 * torch.randn(n_members, n, n_units, dtype=torch.float64, generator=gen)
    value, slope = PolyActivation((coefs,), basis).value_and_slope(z, 1)
    x = np.tanh(z.numpy())
    der = {"legendre": legendre.legder, "chebyshev": chebyshev.chebder}[basis]
    for e in range(n_members):
        for i in range(n_units):
            c = rows[e if per_member else 0, i].numpy()
            xi = x[e, :, i]
            np.testing.assert_allclose(value[e, :, i].numpy(), NUMPY[basis](xi, c), atol=1e-12)
            want = NUMPY[basis](xi, der(c)) * (1 - xi**2) if degree else 0 * xi
            np.testing.assert_allclose(slope[e, :, i].numpy(), want, atol=1e-11)
    assert torch.equal(value, PolyActivation((coefs,), basis)(z, 1))


def test_patterns_parities_and_classes():
    deg = degree_pattern(8, [1, 2, 3, 4])
    assert deg.shape == (8, 5) and (deg.sum(1) == 1).all()
    assert parities(deg) == ["odd", "even", "odd", "even"] * 2
    np.testing.assert_array_equal(symmetry_classes(deg), [0, 1, 2, 3, 0, 1, 2, 3])
    rnd = random_pattern(6, 4, generator=torch.Generator().manual_seed(0))
    assert parities(rnd) == ["none"] * 6
    assert torch.allclose(rnd.norm(dim=1), torch.ones(6, dtype=torch.float64))
    assert len(set(symmetry_classes(rnd).tolist())) == 6
    # Rows related by phi_j(z) = -phi_i(-z) (odd part flips with a, even part with b) match.
    row = torch.tensor([[0.0, 0.3, -0.5, 0.2]], dtype=torch.float64)
    twin = row * torch.tensor([1.0, -1.0, 1.0, -1.0]) * -1  # b a^d with a = b = -1
    assert symmetry_classes(torch.cat([row, twin]))[1] == 0


def test_group_order_counts():
    act = PolyActivation((degree_pattern(8, [1, 2, 3, 4]), degree_pattern(6, [1, 3])), "legendre")
    order = log10_group_order(act)
    expected_perm = math.log10(2**4) + 2 * math.log10(math.factorial(3))
    assert order["perm"] == pytest.approx(expected_perm)
    assert order["sign"] == pytest.approx(14 * math.log10(2))
    distinct = PolyActivation((random_pattern(5, 4, generator=torch.Generator()),), "chebyshev")
    assert log10_group_order(distinct) == {"perm": 0.0, "sign": 0.0, "total": 0.0}


def _swap(params, layer, i, j):
    out = {k: v.clone() for k, v in params.items()}
    idx = list(range(len(params[f"b{layer}"])))
    idx[i], idx[j] = j, i
    out[f"W{layer}"] = params[f"W{layer}"][idx]
    out[f"b{layer}"] = params[f"b{layer}"][idx]
    out[f"W{layer + 1}"] = params[f"W{layer + 1}"][:, idx]
    return out


def _flip(params, layer, i, *, outgoing):
    out = {k: v.clone() for k, v in params.items()}
    out[f"W{layer}"][i] *= -1
    out[f"b{layer}"][i] *= -1
    if outgoing:
        out[f"W{layer + 1}"][:, i] *= -1
    return out


def test_which_symmetries_survive_numerically():
    gen = torch.Generator().manual_seed(0)
    params = init_mlp((3, 8, 2), gen)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    deg = PolyActivation((degree_pattern(8, [1, 2, 3, 4]),), "legendre")
    rnd = PolyActivation((random_pattern(8, 4, generator=gen),), "legendre")
    y = _forward(params, x, deg)

    def change(p, act=deg, ref=y):
        return (_forward(p, x, act) - ref).abs().max().item()

    assert change(_swap(params, 1, 0, 4)) < 1e-14  # both degree 1
    assert change(_swap(params, 1, 1, 5)) < 1e-14  # both degree 2
    assert change(_swap(params, 1, 0, 1)) > 1e-3  # degree 1 with degree 2
    assert change(_flip(params, 1, 0, outgoing=True)) < 1e-14  # odd unit: flip in and out
    assert change(_flip(params, 1, 1, outgoing=False)) < 1e-14  # even unit: flip in only
    assert change(_flip(params, 1, 1, outgoing=True)) > 1e-3
    assert change(_flip(params, 1, 0, outgoing=False)) > 1e-3
    y_rnd = _forward(params, x, rnd)
    for edit in (_swap(params, 1, 0, 4), _flip(params, 1, 2, outgoing=True)):
        assert change(edit, rnd, y_rnd) > 1e-3
    assert change(_flip(params, 1, 2, outgoing=False), rnd, y_rnd) > 1e-3


def test_normalize_signs_by_parity():
    """``align.normalize_signs`` with each unit's parity from its coefficient row
    (``poly_spec``): the old normalisations (``alignment_reference``), the function kept."""
    gen = torch.Generator().manual_seed(2)
    params = init_mlp((4, 6, 5, 2), gen)
    fixed = normalize_signs(params, mlp_permutation_spec(2, "tanh"))
    assert all(torch.equal(fixed[k], old.normalize_signs(params)[k]) for k in params)
    coefs = (degree_pattern(6, [1, 2]), degree_pattern(5, [2, 3]))
    act = PolyActivation(coefs, "legendre")
    group = poly_spec(coefs)
    out = normalize_signs(params, group)
    ref = old.normalize_signs_by_parity(params, [parities(c) for c in coefs])
    assert all(torch.equal(out[k], ref[k]) for k in params)
    x = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    assert (_forward(out, x, act) - _forward(params, x, act)).abs().max() < 1e-13
    for layer in (1, 2):
        rows = torch.cat([out[f"W{layer}"], out[f"b{layer}"][:, None]], 1)
        assert (rows.gather(1, rows.abs().argmax(1, keepdim=True)) > 0).all()
    # idempotent, and units of no parity are left alone
    again = normalize_signs(out, group)
    assert all(torch.equal(again[k], out[k]) for k in out)
    untouched = normalize_signs(params, mlp_permutation_spec(2))
    assert all(torch.equal(untouched[k], params[k]) for k in params)


def test_training_with_per_unit_activations():
    data, _ = teacher_student(200, 50, 5, (6, 3), "classification", seed=1)
    act = PolyActivation((degree_pattern(10, [1, 2, 3]),), "chebyshev")
    result = train_ensemble(data, (5, 10, 3), act, range(3), TrainConfig(5, 20, "adam", 0.02))
    assert result.activation is act
    assert (result.history.train_loss[-1] < result.history.train_loss[0]).all()


def test_shared_polynomial_keeps_the_permutation_symmetry():
    gen = torch.Generator().manual_seed(3)
    widths = (5, 7, 6, 3)
    shared = PolyActivation(tuple(shared_pattern(n, 4, generator=gen) for n in (7, 6)))
    distinct = PolyActivation(tuple(random_pattern(n, 4, generator=gen) for n in (7, 6)))
    params = init_mlp(widths, 0)
    spec = mlp_permutation_spec(2)
    perm = {"P1": torch.randperm(7, generator=gen), "P2": torch.randperm(6, generator=gen)}
    moved = apply_transform(params, spec, Transform(perm))
    x = torch.randn(50, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(_forward(moved, x, shared), _forward(params, x, shared))
    gap = (_forward(moved, x, distinct) - _forward(params, x, distinct)).abs().max()
    assert gap > 1e-3  # control: distinct polynomials do not survive the permutation
    order = log10_group_order(shared)
    expected = (math.lgamma(8) + math.lgamma(7)) / math.log(10)
    assert order["perm"] == pytest.approx(expected)
