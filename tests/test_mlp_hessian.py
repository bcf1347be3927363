"""The hand-written Hessian-vector product of a tanh MLP classifier against torch.func's."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.core import mlp
from ghost_optima.landscape.hessian import hessian_matrix, hvp
from ghost_optima.landscape.mlp_hessian import MLPHessian
from ghost_optima.sgd import network_chains


def tanh_classifier(widths, n, weight_decay, seed):
    gen = torch.Generator().manual_seed(seed)
    params = mlp.init_mlp(widths, gen)
    X = torch.randn(n, widths[0], generator=gen, dtype=torch.float64)
    y = torch.randint(widths[-1], (n,), generator=gen)
    objective, theta = network_chains.mlp_objective(params, X, y, weight_decay=weight_decay)
    return objective, theta, gen


@settings(max_examples=25, deadline=None)
@given(
    widths=st.lists(st.integers(1, 6), min_size=2, max_size=5).map(lambda w: [*w, max(2, w[-1])]),
    n=st.integers(1, 20),
    weight_decay=st.sampled_from([0.0, 0.01, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_the_product_is_torch_funcs_for_any_depth_width_and_weight_decay(
    widths, n, weight_decay, seed
):
    objective, theta, gen = tanh_classifier(widths, n, weight_decay, seed)
    product = MLPHessian(objective.unflatten(theta), objective.X, objective.y, weight_decay)
    products = []  # the object reuses buffers from product to product: none may leak out
    for _ in range(3):
        v = torch.randn(theta.numel(), generator=gen, dtype=torch.float64)
        reference = hvp(objective.loss, theta, v, mode="rev")
        scale = float(reference.abs().max()) + float(v.abs().max()) * 1e-12
        got = product(v)
        assert float((got - reference).abs().max()) <= 1e-12 * scale
        products.append((v, got, got.clone()))
    for v, got, copy in products:
        assert torch.equal(got, copy) and torch.equal(product(v), copy)


def test_the_operator_of_the_objective_is_the_dense_hessian():
    """``MLPObjective.hessian`` applied to every basis vector is autograd's whole Hessian, and
    its products are counted."""
    objective, theta, _ = tanh_classifier([3, 4, 2, 3], 11, 0.02, 0)
    operator = objective.hessian(theta)
    columns = operator @ np.eye(theta.numel())
    dense = hessian_matrix(objective.loss, theta).numpy()
    np.testing.assert_allclose(columns, dense, rtol=0, atol=1e-13 * np.abs(dense).max())
    assert operator.n_matvec == theta.numel()
