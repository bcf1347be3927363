"""The MLP's one home: forward passes against torch.nn, losses against torch.nn.functional."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.core.mlp import (
    ACTIVATIONS,
    _tanh_,
    ensemble_forward,
    ensemble_loss_grad,
    ensemble_outputs,
    ensemble_value_and_grad,
    hidden_and_output,
    init_mlp,
    loss_per_example,
    mlp_forward,
    mlp_widths,
)
from ghost_optima.core.train import stack_params
from ghost_optima.remedies.orthopoly import PolyActivation

TORCH_MODULES = {
    "tanh": torch.nn.Tanh(),
    "relu": torch.nn.ReLU(),
    "gelu": torch.nn.GELU(),
    "sigmoid": torch.nn.Sigmoid(),
}


def as_torch_module(params, activation):
    n_layers = len(params) // 2
    layers = []
    for layer in range(1, n_layers + 1):
        w = params[f"W{layer}"]
        linear = torch.nn.Linear(w.shape[1], w.shape[0], dtype=w.dtype)
        with torch.no_grad():
            linear.weight.copy_(w)
            linear.bias.copy_(params[f"b{layer}"])
        layers.append(linear)
        if layer < n_layers:
            layers.append(activation)
    return torch.nn.Sequential(*layers)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(1, 7), min_size=2, max_size=5),
    st.sampled_from(["tanh", "relu", "gelu", "sigmoid"]),
    st.integers(0, 2**31),
)
def test_forward_matches_torch_nn(widths, name, seed):
    params = init_mlp(widths, seed)
    x = torch.randn(5, widths[0], dtype=torch.float64)
    module = as_torch_module(params, TORCH_MODULES[name])
    assert torch.allclose(mlp_forward(params, x, name), module(x), atol=1e-12)
    assert mlp_widths(params) == tuple(widths)


def test_ensemble_forward_is_each_member_on_its_own():
    members = [init_mlp([4, 6, 5, 3], s) for s in range(3)]
    stacked = {k: torch.stack([m[k] for m in members]) for k in members[0]}
    x = torch.randn(7, 4, dtype=torch.float64)
    out = ensemble_forward(stacked, x, "tanh")
    per_member_x = torch.randn(3, 7, 4, dtype=torch.float64)
    out_own = ensemble_forward(stacked, per_member_x, "tanh")
    for i, m in enumerate(members):
        assert torch.allclose(out[i], mlp_forward(m, x, "tanh"), atol=1e-12)
        assert torch.allclose(out_own[i], mlp_forward(m, per_member_x[i], "tanh"), atol=1e-12)
    hidden, _ = hidden_and_output(members[0], x, "tanh")
    assert [h.shape for h in hidden] == [(7, 6), (7, 5)]
    assert torch.allclose(hidden[0], torch.tanh(x @ members[0]["W1"].T + members[0]["b1"]))


def test_init_follows_the_nn_linear_bound():
    params = init_mlp([50, 30, 2], 0)
    assert params["W1"].abs().max() <= 50**-0.5 and params["W1"].abs().max() > 0.9 * 50**-0.5
    assert params["b2"].abs().max() <= 30**-0.5
    assert torch.equal(init_mlp([3, 4, 2], 5)["W1"], init_mlp([3, 4, 2], 5)["W1"])


def test_masked_init_keeps_the_dense_pre_activation_variance():
    n_in, n_out, density = 400, 300, 0.25
    gen = torch.Generator().manual_seed(0)
    mask = (torch.rand(n_out, n_in, generator=gen) < density).double()
    x = torch.randn(2000, n_in, generator=gen, dtype=torch.float64)
    dense = init_mlp([n_in, n_out, 2], 1)
    masked = init_mlp([n_in, n_out, 2], 1, masks={"W1": mask})
    assert torch.all(masked["W1"][mask == 0] == 0)
    var_dense = (x @ dense["W1"].T).var()
    var_masked = (x @ masked["W1"].T).var()
    assert var_masked == pytest.approx(var_dense.item(), rel=0.05)
    naive = (x @ (dense["W1"] * mask).T).var()  # dense fan-in: a quarter of the variance
    assert naive == pytest.approx(density * var_dense.item(), rel=0.1)
    with pytest.raises(ValueError, match="mask of W1"):
        init_mlp([3, 4, 2], 0, masks={"W1": torch.ones(3, 3)})
    with pytest.raises(ValueError, match="name no layer"):
        init_mlp([3, 4, 2], 0, masks={"W5": torch.ones(3, 3)})


def test_losses_match_torch_functional():
    out = torch.randn(3, 10, 4, dtype=torch.float64)
    y = torch.randint(0, 4, (10,))
    ce = loss_per_example(out, y, "classification")
    for e in range(3):
        ref = F.cross_entropy(out[e], y, reduction="none")
        assert torch.allclose(ce[e], ref, atol=1e-12)
        assert torch.allclose(loss_per_example(out[e], y, "classification"), ref, atol=1e-12)
    target = torch.randn(10, 4, dtype=torch.float64)
    mse = loss_per_example(out, target, "regression")
    assert torch.allclose(mse[1], F.mse_loss(out[1], target, reduction="none").mean(-1))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="unknown activation"):
        mlp_forward(init_mlp([2, 3, 1], 0), torch.zeros(1, 2), "swish")
    with pytest.raises(ValueError, match="shape"):
        mlp_forward(init_mlp([2, 3, 1], 0, dtype=torch.float32), torch.zeros(1, 3), "tanh")
    with pytest.raises(ValueError, match="positive ints"):
        init_mlp([2, 0, 1], 0)


def _autograd_loss_grad(params, x, y, activation, task):
    """The reference: autograd through ``ensemble_forward`` of the summed member losses."""
    leaves = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    loss = loss_per_example(ensemble_forward(leaves, x, activation), y, task).mean(-1).sum()
    return dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())), strict=True))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 6), min_size=2, max_size=4),
    st.sampled_from([*ACTIVATIONS, "per_unit", "poly"]),
    st.sampled_from(["classification", "regression"]),
    st.booleans(),
    st.integers(0, 2**31),
)
def test_hand_written_gradient_matches_autograd(widths, name, task, shared_x, seed):
    gen = torch.Generator().manual_seed(seed)
    n_members, n = 3, 5
    widths[-1] = max(widths[-1], 2)
    params = stack_params([init_mlp(widths, seed + e) for e in range(n_members)])
    scale = {}  # a callable per-unit activation: each unit its own slope, through autograd

    def per_unit(z, layer):
        slope = scale.setdefault(layer, 0.5 + torch.rand(z.shape[-1], dtype=z.dtype, generator=gen))
        return torch.tanh(slope * z) + 0.1 * z

    activation = per_unit if name == "per_unit" else name
    if name == "poly":  # by hand through value_and_slope, per-member rows in layer 1
        activation = PolyActivation(
            tuple(
                torch.randn(*((n_members,) if layer == 1 else ()), w, 4, generator=gen).double()
                for layer, w in enumerate(widths[1:-1], 1)
            )
        )
    lead = () if shared_x else (n_members,)
    x = torch.randn(*lead, n, widths[0], dtype=torch.float64, generator=gen)
    if task == "classification":
        y = torch.randint(0, widths[-1], (*lead, n), generator=gen)
    else:
        y = torch.randn(*lead, n, widths[-1], dtype=torch.float64, generator=gen)
    ref = _autograd_loss_grad(params, x, y, activation, task)
    got = ensemble_loss_grad(params, x, y, activation, task)
    out = {k: torch.full_like(v, float("nan")) for k, v in params.items()}
    into = ensemble_loss_grad(params, x, y, activation, task, out)
    work: dict = {}  # reused buffers: a second call (other inputs) must not see the first
    ensemble_loss_grad(
        params,
        x.flip(-2),
        y.flip(-1 if task == "classification" else -2),
        activation,
        task,
        None,
        work,
    )
    again = ensemble_loss_grad(params, x, y, activation, task, None, work)
    value, with_value = ensemble_value_and_grad(params, x, y, activation, task)
    torch.testing.assert_close(
        value, loss_per_example(ensemble_forward(params, x, activation), y, task).mean(-1)
    )
    assert value.shape == (n_members,)
    assert all(torch.equal(with_value[k], got[k]) for k in params)
    assert list(got) == list(params) and work
    for k in params:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-10, atol=1e-12)
        assert into[k] is out[k] and torch.equal(out[k], got[k]) and torch.equal(again[k], got[k])
    torch.testing.assert_close(
        ensemble_outputs(params, x, activation), ensemble_forward(params, x, activation)
    )


def test_fast_tanh_is_tanh_to_the_last_bit_or_so():
    gen = torch.Generator().manual_seed(0)
    for dtype, ulp in ((torch.float32, 2**-23), (torch.float64, 2**-52)):
        z = 8 * torch.randn(64, 300, dtype=dtype, generator=gen)
        exact = torch.tanh(z.double())
        fast = _tanh_(z.clone())
        assert ((fast.double() - exact).abs() <= 2 * ulp * exact.abs().clamp(min=2**-10)).all()
    z = torch.linspace(-3, 3, 7, requires_grad=True)
    out = _tanh_(z.clone())  # autograd tensors keep torch's own kernel, and their graph
    assert out.grad_fn is not None and torch.equal(out, torch.tanh(z))
