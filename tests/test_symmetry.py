"""Tests for ghost_optima.symmetry.group: claims T1 (invariance) and T2 (orbit size).

References are independent of the module: brute-force enumeration, Python-int factorials,
explicit permutation and diagonal matrices, and published anchors.
"""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.core.mlp import ACTIVATIONS, init_mlp, mlp_forward, mlp_widths
from ghost_optima.symmetry.group import (
    Transform,
    apply_transform,
    architecture_table,
    compose_transforms,
    enumerate_orbit,
    log10_orbit_size,
    mlp_permutation_spec,
    orbit_distinctness,
    random_transform,
    transformer_mlp_log10_orbit,
)
from ghost_optima.symmetry.spec import GroupSpec

SYMMETRIC_ACTIVATIONS = sorted(a.name for a in ACTIVATIONS.values() if a.symmetry != "none")


def _net(widths: tuple[int, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    return init_mlp(widths, torch.Generator().manual_seed(seed))


def _inputs(n_in: int, seed: int = 1, batch: int = 64) -> torch.Tensor:
    return torch.randn(
        batch, n_in, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def _exact_group_order(hidden_widths: tuple[int, ...], odd: bool) -> int:
    return math.prod(math.factorial(n) * (2**n if odd else 1) for n in hidden_widths)


def _log10_factorial(n: int) -> float:
    return math.log10(math.factorial(n))


def _assert_params_equal(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=atol)


# --- T2: brute-force orbit enumeration on tiny nets -----------------------------------------


@pytest.mark.parametrize("widths", [(2, 3, 2, 1), (2, 2, 3, 1)])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_enumerated_orbit_matches_formula_is_distinct_and_preserves_function(
    widths: tuple[int, ...], activation: str
) -> None:
    params = _net(widths)
    spec = mlp_permutation_spec(len(widths) - 2)
    copies = list(enumerate_orbit(params, spec, activation))
    hidden = widths[1:-1]
    odd = ACTIVATIONS[activation].symmetry == "odd"

    assert len(copies) == round(10 ** log10_orbit_size(hidden, activation))
    assert len(copies) == _exact_group_order(hidden, odd)
    _assert_params_equal(copies[0], params)
    assert orbit_distinctness(copies) > 1e-6

    x = _inputs(widths[0])
    reference = mlp_forward(params, x, activation)
    outputs = torch.stack([mlp_forward(copy, x, activation) for copy in copies])
    relative = (outputs - reference).abs().max() / reference.abs().max()
    assert relative < 1e-12


def test_orbit_distinctness_matches_double_loop_and_detects_duplicates() -> None:
    copies = list(enumerate_orbit(_net((2, 3, 1)), mlp_permutation_spec(1), "tanh"))
    flat = [torch.cat([c[k].reshape(-1) for k in sorted(c)]) for c in copies]
    brute = min((a - b).norm().item() for a, b in itertools.combinations(flat, 2))
    assert orbit_distinctness(copies) == pytest.approx(brute, rel=1e-12)
    assert orbit_distinctness([copies[0], copies[1], copies[0]]) == 0.0


def test_orbit_of_symmetric_weights_is_not_distinct() -> None:
    params = _net((2, 2, 1))
    params["W1"][1], params["b1"][1], params["W2"][:, 1] = (
        params["W1"][0],
        params["b1"][0],
        params["W2"][:, 0],
    )
    copies = list(enumerate_orbit(params, mlp_permutation_spec(1), "relu"))
    assert orbit_distinctness(copies) == 0.0


def test_enumerate_orbit_refuses_huge_groups() -> None:
    params = _net((2, 10, 1))
    with pytest.raises(ValueError, match="max_size"):
        enumerate_orbit(params, mlp_permutation_spec(1), "tanh")


# --- T2: orbit size formula ------------------------------------------------------------------


@pytest.mark.parametrize("hidden", [(), (1,), (3,), (2, 3), (5, 4, 7), (12, 1, 9, 6)])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_log10_orbit_size_matches_python_int_factorials(
    hidden: tuple[int, ...], activation: str
) -> None:
    order = _exact_group_order(hidden, ACTIVATIONS[activation].symmetry == "odd")
    assert log10_orbit_size(hidden, activation) == pytest.approx(math.log10(order), abs=1e-9)


def test_log10_orbit_size_published_anchors() -> None:
    git_rebasin_mnist = log10_orbit_size((512, 512, 512), "relu")
    assert round(git_rebasin_mnist, 1) == 3499.6
    assert git_rebasin_mnist == pytest.approx(3 * math.log10(math.factorial(512)), abs=1e-9)
    six_by_sixteen = log10_orbit_size((16,) * 6, "relu")
    assert six_by_sixteen == pytest.approx(79.92, abs=0.01)
    assert 10**six_by_sixteen == pytest.approx(8.39e79, rel=1e-3)


def test_transformer_orbit_parts() -> None:
    parts = transformer_mlp_log10_orbit(d_model=768, d_ff=3072, n_layers=12, n_heads=12)
    assert parts["mlp_hidden"] == pytest.approx(12 * _log10_factorial(3072))
    assert parts["heads"] == pytest.approx(12 * _log10_factorial(12))
    assert parts["head_qk_dims"] == pytest.approx(12 * 12 * _log10_factorial(64))
    assert parts["head_v_dims"] == parts["head_qk_dims"]
    assert parts["total"] == pytest.approx(
        parts["mlp_hidden"] + parts["heads"] + 2 * parts["head_qk_dims"]
    )
    assert parts["residual_stream"] == pytest.approx(_log10_factorial(768))
    assert parts["total_with_residual"] == pytest.approx(parts["total"] + _log10_factorial(768))


def test_architecture_table() -> None:
    rows = {row["name"]: row for row in architecture_table()}
    for row in rows.values():  # exact integer arithmetic against lgamma
        if row["name"].startswith("GPT-2"):
            continue
        order = math.prod(math.factorial(n) for n in row["hidden_widths"])
        assert row["log10_orbit_perm"] == pytest.approx(math.log10(order), rel=1e-12)
        with_signs = order * 2 ** sum(row["hidden_widths"])
        assert row["log10_orbit_with_signs"] == pytest.approx(math.log10(with_signs), rel=1e-12)
    rebasin = rows["784-512-512-512-10 (Git Re-Basin MNIST)"]
    assert rebasin["n_params"] == 785 * 512 + 2 * 513 * 512 + 513 * 10
    assert round(rebasin["log10_orbit_perm"], 1) == 3499.6
    assert rebasin["log10_orbit_with_signs"] == pytest.approx(
        rebasin["log10_orbit_perm"] + 1536 * math.log10(2)
    )
    six = next(row for name, row in rows.items() if name.startswith("6x16"))
    assert six["hidden_widths"] == (16,) * 6
    assert six["log10_orbit_perm"] == pytest.approx(79.92, abs=0.01)
    gpt2 = next(row for name, row in rows.items() if name.startswith("GPT-2"))
    assert 84e6 < gpt2["n_params"] < 86e6  # GPT-2 small has ~85M non-embedding parameters
    assert gpt2["log10_orbit_perm"] == pytest.approx(
        transformer_mlp_log10_orbit(768, 3072, 12, 12)["total"]
    )
    for row in rows.values():
        assert row["log10_orbit_with_signs"] >= row["log10_orbit_perm"] >= 0


# --- T1: invariance under random group elements (property-based) ----------------------------

hidden_widths = st.lists(st.integers(1, 12), min_size=1, max_size=4).map(tuple)


@settings(max_examples=60, deadline=None)
@given(
    hidden=hidden_widths,
    activation=st.sampled_from(SYMMETRIC_ACTIVATIONS),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_symmetry_preserves_function(
    hidden: tuple[int, ...], activation: str, seed: int
) -> None:
    widths = (3, *hidden, 2)
    generator = torch.Generator().manual_seed(seed)
    params = init_mlp(widths, generator)
    spec = mlp_permutation_spec(len(hidden))
    transform = random_transform(spec, widths, activation, generator)
    moved = apply_transform(params, spec, transform)
    x = torch.randn(32, 3, generator=generator, dtype=torch.float64)
    diff = (mlp_forward(moved, x, activation) - mlp_forward(params, x, activation)).abs().max()
    assert diff < 1e-10


@pytest.mark.parametrize(
    ("activation", "kind"),
    [("gelu", "signs"), ("sigmoid", "signs"), ("relu", "signs"), ("tanh", "scales")],
)
def test_transform_outside_the_activations_group_changes_function(
    activation: str, kind: str
) -> None:
    """The invariance check can fail: a unit factor the activation does not commute with."""
    widths = (3, 4, 4, 2)
    params = _net(widths)
    spec = mlp_permutation_spec(2)
    identity = {p: torch.arange(n) for p, n in (("P1", 4), ("P2", 4))}
    factor = {p: torch.tensor([-1.0, 1.0, 1.0, 1.0]) for p in identity}
    if kind == "scales":
        factor = {p: torch.tensor([3.0, 1.0, 1.0, 1.0]) for p in identity}
    moved = apply_transform(params, spec, Transform(identity, **{kind: factor}))
    x = _inputs(3)
    diff = (mlp_forward(moved, x, activation) - mlp_forward(params, x, activation)).abs().max()
    assert diff > 1e-3


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_random_transform_draws_only_valid_factors(activation: str) -> None:
    widths = (2, 5, 3, 1)
    transform = random_transform(mlp_permutation_spec(2), widths, activation, 7)
    again = random_transform(
        mlp_permutation_spec(2), widths, activation, torch.Generator().manual_seed(7)
    )
    for p in ("P1", "P2"):
        assert torch.equal(transform.perms[p], again.perms[p])
    symmetry = ACTIVATIONS[activation].symmetry
    assert (transform.signs is not None) == (symmetry == "odd")
    assert (transform.scales is not None) == (symmetry == "positive_homogeneous")
    if transform.signs is not None:
        assert all(set(s.tolist()) <= {-1.0, 1.0} for s in transform.signs.values())
    if transform.scales is not None:
        assert all(((s >= 0.25) & (s <= 4.0)).all() for s in transform.scales.values())


# --- apply_transform against explicit matrices, composition and inverse ----------------------


def test_apply_transform_matches_matrix_formula() -> None:
    """W_l' = D_l P_l W_l P_{l-1}^T D_{l-1}^{-1}, b_l' = D_l P_l b_l with (P W)[i] = W[pi(i)]."""
    widths = (3, 4, 5, 2)
    params = _net(widths)
    spec = mlp_permutation_spec(2)
    transform = compose_transforms(
        random_transform(spec, widths, "tanh", 3), random_transform(spec, widths, "relu", 4)
    )
    moved = apply_transform(params, spec, transform)

    def matrices(layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = widths[layer]
        if layer in (0, len(widths) - 1):
            return torch.eye(n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)
        p = f"P{layer}"
        perm_matrix = torch.eye(n, dtype=torch.float64)[transform.perms[p]]
        return perm_matrix, torch.diag(transform.signs[p] * transform.scales[p])

    for layer in range(1, len(widths)):
        perm_out, diag_out = matrices(layer)
        perm_in, diag_in = matrices(layer - 1)
        expected_w = diag_out @ perm_out @ params[f"W{layer}"] @ perm_in.T @ diag_in.inverse()
        torch.testing.assert_close(moved[f"W{layer}"], expected_w, rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(
            moved[f"b{layer}"], diag_out @ perm_out @ params[f"b{layer}"], rtol=1e-13, atol=1e-14
        )


@settings(max_examples=25, deadline=None)
@given(hidden=hidden_widths, seed=st.integers(0, 2**32 - 1))
def test_apply_transform_composes_and_inverts(hidden: tuple[int, ...], seed: int) -> None:
    widths = (2, *hidden, 3)
    spec = mlp_permutation_spec(len(hidden))
    params = init_mlp(widths, seed)
    t1, t2 = (random_transform(spec, widths, "tanh", seed + k) for k in (1, 2))
    permutation = Transform(t1.perms)

    # Permutations and signs are exact in floating point; scales are not.
    two_steps = apply_transform(apply_transform(params, spec, t1), spec, t2)
    _assert_params_equal(two_steps, apply_transform(params, spec, compose_transforms(t1, t2)))
    inverse = Transform({p: torch.argsort(perm) for p, perm in permutation.perms.items()})
    roundtrip = apply_transform(apply_transform(params, spec, permutation), spec, inverse)
    for name in params:
        assert torch.equal(roundtrip[name], params[name])

    s1, s2 = (random_transform(spec, widths, "relu", seed + k) for k in (3, 4))
    scaled = apply_transform(apply_transform(params, spec, s1), spec, s2)
    _assert_params_equal(scaled, apply_transform(params, spec, compose_transforms(s1, s2)), 1e-12)


def test_apply_transform_works_for_a_hand_written_spec() -> None:
    """The one apply function only reads the spec: here a single hidden layer named "H"."""
    params = _net((2, 3, 1))
    spec = GroupSpec({"W1": ("H", None), "b1": ("H",), "W2": (None, "H"), "b2": (None,)})
    moved = apply_transform(params, spec, Transform({"H": torch.tensor([2, 0, 1])}))
    assert torch.equal(moved["W1"], params["W1"][[2, 0, 1]])
    assert torch.equal(moved["W2"], params["W2"][:, [2, 0, 1]])
    assert torch.equal(moved["b2"], params["b2"])


# --- bad input ----------------------------------------------------------------------------------


def test_bad_inputs_raise_helpful_value_errors() -> None:
    params = _net((2, 3, 1))
    spec = mlp_permutation_spec(1)
    x = _inputs(2)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        mlp_forward(params, x, "swish")
    with pytest.raises(ValueError, match="unknown activation"):
        log10_orbit_size((3,), "swish")
    with pytest.raises(ValueError, match="unknown activation"):
        random_transform(spec, (2, 3, 1), "swish", 0)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\)"):
        mlp_forward(params, _inputs(3), "tanh")
    with pytest.raises(ValueError, match="do not chain"):
        mlp_forward({**params, "W2": torch.zeros(1, 4, dtype=torch.float64)}, x, "tanh")
    with pytest.raises(ValueError, match="MLP params must be"):
        mlp_widths({"W1": params["W1"]})
    with pytest.raises(ValueError, match="positive ints"):
        init_mlp((2, 0, 1), 0)
    with pytest.raises(ValueError, match="positive ints"):
        init_mlp((2,), 0)
    with pytest.raises(ValueError, match="do not match spec"):
        random_transform(mlp_permutation_spec(2), (2, 3, 1), "tanh", 0)
    with pytest.raises(ValueError, match="do not match spec"):
        apply_transform(params, mlp_permutation_spec(2), Transform({}))
    with pytest.raises(ValueError, match="acts on axes of sizes"):
        apply_transform({**params, "b1": torch.zeros(4, dtype=torch.float64)}, spec, Transform({}))
    with pytest.raises(ValueError, match="spec needs"):
        apply_transform(params, spec, Transform({}))
    with pytest.raises(ValueError, match="permutation of range"):
        apply_transform(params, spec, Transform({"P1": torch.tensor([0, 0, 1])}))
    with pytest.raises(ValueError, match="permutation of range"):
        apply_transform(params, spec, Transform({"P1": torch.tensor([0, 1])}))
    with pytest.raises(ValueError, match=r"signs\['P1'\] must be a tensor of shape \(3,\)"):
        apply_transform(
            params, spec, Transform({"P1": torch.arange(3)}, signs={"P1": torch.ones(2)})
        )
    with pytest.raises(ValueError, match="n_heads dividing d_model"):
        transformer_mlp_log10_orbit(d_model=100, d_ff=400, n_layers=2, n_heads=3)
    with pytest.raises(ValueError, match="at least two copies"):
        orbit_distinctness([params])
