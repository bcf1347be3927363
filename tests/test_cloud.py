"""Tests of ghost_optima.sgd.network_chains against independent references (autograd,
torch.nn.functional)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.core import mlp
from ghost_optima.core.train import TrainConfig
from ghost_optima.landscape.gradient_noise import per_sample_grads
from ghost_optima.sgd import network_chains
from ghost_optima.sgd.chains import Schedule, Watch

DT = torch.float64


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(60, 5, generator=gen, dtype=DT)
    y = torch.randint(0, 3, (60,), generator=gen)
    params = mlp.init_mlp([5, 4, 3], gen)
    obj, theta = network_chains.mlp_objective(params, X, y, weight_decay=0.05)
    return X, y, params, obj, theta


def _reference_step(obj, theta, X, y, idx, eta):
    """One SGD step by autograd on the batch ``idx`` (the independent reference)."""
    th = theta.clone().requires_grad_(True)
    out = mlp.mlp_forward(obj.unflatten(th), X[idx], "tanh")
    loss = F.cross_entropy(out, y[idx]) + 0.5 * obj.weight_decay * (th * th).sum()
    (g,) = torch.autograd.grad(loss, th)
    return (theta - eta * g).detach()


def test_objective_matches_torch_cross_entropy(problem):
    X, y, params, obj, theta = problem
    out = mlp.mlp_forward(params, X, "tanh")
    expected = F.cross_entropy(out, y) + 0.025 * (theta * theta).sum()
    assert float(obj.loss(theta)) == pytest.approx(float(expected), rel=1e-14)
    G = per_sample_grads(obj.per_sample_loss, theta, X, y)
    full = torch.func.grad(obj.loss)(theta)
    np.testing.assert_allclose(G.mean(0) + 0.05 * theta, full, atol=1e-14)


@pytest.mark.parametrize("replacement", [True, False])
def test_sgd_chains_follow_autograd_step_by_step(problem, replacement):
    X, y, _, obj, theta = problem
    eta, B, steps, chains = 0.3, 7, 4, 3
    out = network_chains.mlp_sgd_chains(
        obj,
        Schedule(eta, B, steps, replacement=replacement),
        chains,
        torch.Generator().manual_seed(5),
        Watch(theta, torch.eye(theta.numel(), dtype=DT)[:, :4], record_every=1),
    )
    gen = torch.Generator().manual_seed(5)  # replay the same batches
    states = theta.expand(chains, -1).clone()
    sums, squares, msd, traces = 0, 0, 0, [torch.zeros(chains, dtype=DT)]
    for _ in range(steps):
        if replacement:
            idx = torch.randint(0, len(X), (chains * B,), generator=gen).view(chains, B)
        else:
            # the same subsets (in sorted order: the order within a batch does not matter)
            idx = torch.rand(chains, len(X), generator=gen).topk(B, dim=1, largest=False).indices
            assert all(len(set(row.tolist())) == B for row in idx)
        states = torch.stack(
            [_reference_step(obj, states[c], X, y, idx[c], eta) for c in range(chains)]
        )
        diff = states - theta
        sums, squares = sums + diff[:, :4], squares + diff[:, :4] ** 2
        msd = msd + (diff**2).sum(1)
        traces.append((diff**2).sum(1))
    np.testing.assert_allclose(out.final, states, atol=1e-13)
    np.testing.assert_allclose(out.proj_mean, sums / steps, atol=1e-13)
    np.testing.assert_allclose(out.proj_sq, squares / steps, atol=1e-13)
    np.testing.assert_allclose(out.msd, msd / steps, atol=1e-13)
    np.testing.assert_allclose(out.trace, torch.stack(traces, 1), atol=1e-13)
    assert out.steps.tolist() == list(range(steps + 1))


def test_full_batch_is_gradient_descent(problem):
    X, y, _, obj, theta = problem
    start = theta + 0.01
    out = network_chains.mlp_sgd_chains(
        obj, Schedule(0.5, len(X), 5), 2, torch.Generator().manual_seed(0), Watch(theta), start
    )
    ref = start.clone()
    g = torch.func.grad(obj.loss)
    for _ in range(5):
        ref = ref - 0.5 * g(ref)
    np.testing.assert_allclose(out.final, torch.stack([ref, ref]), atol=1e-13)


def test_chain_gradient_of_a_deeper_relu_net_matches_autograd():
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(30, 4, generator=gen, dtype=DT)
    y = torch.randint(0, 3, (30,), generator=gen)
    obj, theta = network_chains.mlp_objective(
        mlp.init_mlp([4, 5, 3, 3], gen), X, y, activation="relu", weight_decay=0.1
    )
    thetas = torch.stack([theta, theta + 0.05, theta - 0.02])
    batch = torch.tensor([[0, 1, 1, 7], [3, 4, 5, 6], [29, 0, 2, 2]])
    got = network_chains.mlp_gradient(obj)(thetas, batch)
    for c in range(3):
        th = thetas[c].clone().requires_grad_(True)
        out = mlp.mlp_forward(obj.unflatten(th), X[batch[c]], "relu")
        loss = F.cross_entropy(out, y[batch[c]]) + 0.05 * (th * th).sum()
        (ref,) = torch.autograd.grad(loss, th)
        np.testing.assert_allclose(got[c], ref, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(1, 6), min_size=3, max_size=4),
    st.sampled_from(["tanh", "relu"]),
    st.sampled_from([0.0, 0.1]),
    st.integers(0, 2**31),
)
def test_value_and_grad_matches_autograd(widths, activation, weight_decay, seed):
    """The polish's hand-written loss and gradient against autograd through ``loss``."""
    gen = torch.Generator().manual_seed(seed)
    widths[-1] = max(widths[-1], 2)
    X = torch.randn(9, widths[0], generator=gen, dtype=DT)
    y = torch.randint(0, widths[-1], (9,), generator=gen)
    obj, theta = network_chains.mlp_objective(
        mlp.init_mlp(widths, gen), X, y, activation=activation, weight_decay=weight_decay
    )
    theta = theta.double() + 0.1 * torch.randn(theta.shape, generator=gen, dtype=DT)
    value, grad = obj.value_and_grad(theta)
    assert value.shape == () and grad.shape == theta.shape
    torch.testing.assert_close(value, obj.loss(theta), rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(grad, torch.func.grad(obj.loss)(theta), rtol=1e-10, atol=1e-14)


def test_minimize_reaches_a_small_gradient(problem):
    X, y, _, obj, theta = problem
    ts, gn, it = network_chains.minimize(obj.loss, theta, grad_tol=1e-10)
    assert gn < 1e-8 and it > 0
    assert float(obj.loss(ts)) < float(obj.loss(theta))
    by_hand, gn_by_hand, _ = network_chains.minimize(
        obj.loss, theta, grad_tol=1e-10, value_and_grad=obj.value_and_grad
    )
    assert gn_by_hand == pytest.approx(float(torch.func.grad(obj.loss)(by_hand).norm()), rel=1e-6)
    assert gn_by_hand < 1e-8  # the same minimum (this loss has one near theta), by either gradient
    torch.testing.assert_close(by_hand, ts, rtol=0, atol=1e-7)


def test_trained_minimum_reaches_a_small_gradient():
    from ghost_optima.core import data

    ds, _ = data.teacher_student(80, 10, 4, [3, 3], "classification", seed=2)
    train = TrainConfig(epochs=3, batch_size=64, lr=0.1, momentum=0.9, weight_decay=0.01)
    obj, trained, star, gn = network_chains.trained_minimum(ds, 4, train, seed=0, grad_tol=1e-9)
    g = torch.func.grad(obj.loss)(star)
    assert float(g.norm()) == pytest.approx(gn) and gn < 1e-7
    assert float(obj.loss(star)) <= float(obj.loss(trained))
    assert obj.widths == (4, 4, 3) and obj.weight_decay == 0.01


def test_newton_finish_lands_where_numpy_solves_a_quadratic():
    """On ``L = x'Ax/2 - b'x`` (A SPD, condition 1e6, where L-BFGS needs many steps) the finish
    reaches numpy's solve of ``A x = b`` and says how small its gradient is."""
    gen = np.random.default_rng(3)
    q, _ = np.linalg.qr(gen.standard_normal((40, 40)))
    A = torch.from_numpy(q @ np.diag(np.logspace(0, 6, 40)) @ q.T)
    b = torch.from_numpy(gen.standard_normal(40))

    def loss(x):
        return 0.5 * x @ A @ x - b @ x

    x, grad_max, iterations = network_chains.newton_finish(
        loss, torch.zeros(40, dtype=torch.float64), grad_tol=1e-10
    )
    reference = np.linalg.solve(A.numpy(), b.numpy())
    np.testing.assert_allclose(x.numpy(), reference, rtol=1e-8, atol=1e-12)
    assert grad_max == float(torch.func.grad(loss)(x).abs().max()) and grad_max < 1e-10
    assert 1 <= iterations <= 50
    with pytest.raises(ValueError, match="float64"):
        network_chains.newton_finish(loss, torch.zeros(40), grad_tol=1e-10)


def test_newton_finish_converges_a_polished_network_further(problem):
    """From a loose L-BFGS polish of a small MLP, the finish reaches a far smaller gradient and
    a lower loss."""
    X, y, _, obj, theta = problem
    rough, _, _ = network_chains.minimize(obj.loss, theta, grad_tol=1e-4)
    rough_max = float(torch.func.grad(obj.loss)(rough).abs().max())
    finished, grad_max, _ = network_chains.newton_finish(obj.loss, rough, grad_tol=1e-11)
    assert grad_max < 1e-9 < rough_max
    assert float(obj.loss(finished)) <= float(obj.loss(rough))
    by_hand, grad_max_by_hand, _ = network_chains.newton_finish(
        obj.loss, rough, grad_tol=1e-11, hessian=obj.hessian
    )
    assert grad_max_by_hand < 1e-9
    torch.testing.assert_close(by_hand, finished, rtol=0, atol=1e-8)
    all_by_hand, grad_max_all, _ = network_chains.newton_finish(
        obj.loss, rough, grad_tol=1e-11, hessian=obj.hessian, value_and_grad=obj.value_and_grad
    )
    assert grad_max_all == float(obj.value_and_grad(all_by_hand)[1].abs().max())
    assert grad_max_all < 1e-9
    torch.testing.assert_close(all_by_hand, finished, rtol=0, atol=1e-8)
