from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ghost_optima.core.data import flip_labels, teacher_student
from ghost_optima.core.mlp import ensemble_forward, init_mlp, mlp_forward
from ghost_optima.core.train import (
    TrainConfig,
    TrainHooks,
    evaluate,
    member,
    member_generators,
    per_example_loss,
    stack_params,
    train_ensemble,
)


@pytest.fixture(scope="module")
def cls_data():
    data, _ = teacher_student(90, 40, 6, (5, 3), "classification", seed=0)
    return data


def _reference_run(data, widths, seed, config, act=nn.Tanh, masks=None):
    """The textbook recipe for one member: nn.Linear layers, torch.optim, loss.backward(), the
    member's own batches; masked weights start at zero and their gradients are masked."""
    g_init, g_order = member_generators(seed)
    init = init_mlp(widths, g_init, dtype=config.dtype)
    masks = masks or {}
    layers: list[nn.Module] = []
    for layer in range(1, len(widths)):
        linear = nn.Linear(widths[layer - 1], widths[layer], dtype=config.dtype)
        with torch.no_grad():
            linear.weight.copy_(init[f"W{layer}"] * masks.get(f"W{layer}", 1.0))
            linear.bias.copy_(init[f"b{layer}"])
        layers += [linear, act()]
    model = nn.Sequential(*layers[:-1])
    linears = [m for m in model if isinstance(m, nn.Linear)]
    lr, momentum, wd = config.lr, config.momentum, config.weight_decay
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    loss_fn = F.cross_entropy if data.task == "classification" else F.mse_loss
    x, y = data.x_train.to(config.dtype), data.y_train
    y = y.to(config.dtype) if data.task == "regression" else y
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=g_order)
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            for layer, linear in enumerate(linears, start=1):
                if f"W{layer}" in masks:
                    linear.weight.grad.mul_(masks[f"W{layer}"])
            opt.step()
    params = {}
    for layer, linear in enumerate(linears, start=1):
        params[f"W{layer}"], params[f"b{layer}"] = linear.weight.detach(), linear.bias.detach()
    with torch.no_grad():
        loss = loss_fn(model(x), y).item()
    return params, loss


F64 = dict(epochs=3, batch_size=16, dtype=torch.float64)


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(**F64, optimizer="sgd", lr=0.3),
        TrainConfig(**F64, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-3),
        TrainConfig(**F64, optimizer="adam", lr=0.01, weight_decay=1e-3),
    ],
)
def test_member_equals_a_plain_torch_training_loop(cls_data, config):
    widths, seeds = (6, 8, 3), [11, 4, 7]
    result = train_ensemble(cls_data, widths, "tanh", seeds, config)
    for i, seed in enumerate(seeds):
        ref, ref_loss = _reference_run(cls_data, widths, seed, config)
        got = member(result.params, i)
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-10, atol=1e-12)
        assert result.history.train_loss[-1, i] == pytest.approx(ref_loss, rel=1e-10)


@pytest.mark.parametrize("optimizer, momentum", [("sgd", 0.9), ("adam", 0.0)])
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
def test_masked_two_layer_members_equal_the_plain_loop(cls_data, optimizer, momentum, dtype, tol):
    """Per-member learning rates and masks (one shared, one per member), relu, both dtypes."""
    widths, seeds, lrs = (6, 12, 7, 3), [3, 8], [0.05, 0.02] if optimizer == "sgd" else [3e-3, 1e-2]
    gen = torch.Generator().manual_seed(1)
    masks = {"W1": (torch.rand(12, 6, generator=gen) < 0.5).to(dtype)}
    masks["W2"] = (torch.rand(2, 7, 12, generator=gen) < 0.7).to(dtype)
    config = TrainConfig(3, 16, optimizer, lrs, momentum, 1e-3, dtype)
    result = train_ensemble(cls_data, widths, "relu", seeds, config, TrainHooks(masks=masks))
    for i, seed in enumerate(seeds):
        own = {"W1": masks["W1"], "W2": masks["W2"][i]}
        ref, _ = _reference_run(cls_data, widths, seed, replace(config, lr=lrs[i]), nn.ReLU, own)
        got = member(result.params, i)
        assert torch.all(got["W1"][own["W1"] == 0] == 0) and torch.all(
            got["W2"][own["W2"] == 0] == 0
        )
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=tol, atol=tol)


def test_regression_and_a_callable_activation_equal_the_plain_loop():
    data, _ = teacher_student(80, 20, 4, (5, 2), "regression", seed=2)
    config = TrainConfig(2, 10, "sgd", 0.05, 0.5, dtype=torch.float64)
    for activation in ("tanh", lambda z, layer: torch.tanh(z)):  # by hand, and through autograd
        result = train_ensemble(data, (4, 9, 2), activation, [0, 1], config)
        for i in range(2):
            ref, ref_loss = _reference_run(data, (4, 9, 2), i, config)
            torch.testing.assert_close(member(result.params, i)["W1"], ref["W1"])
            assert result.history.train_loss[-1, i] == pytest.approx(ref_loss, rel=1e-10)


def test_step_hook_edits_of_parameters_and_state_take_effect(cls_data):
    """A hook that zeroes the momentum buffers after every step turns momentum SGD into plain
    SGD; one that rescales the parameters in place is seen by the next step."""

    def forget(step, params, state):
        for buf in state.values():
            buf.zero_()

    plain = train_ensemble(cls_data, (6, 8, 3), "tanh", [0, 1], TrainConfig(2, 16, lr=0.1))
    config = TrainConfig(2, 16, lr=0.1, momentum=0.9)
    forgot = train_ensemble(
        cls_data, (6, 8, 3), "tanh", [0, 1], config, TrainHooks(step_hook=forget)
    )
    for k in plain.params:
        torch.testing.assert_close(forgot.params[k], plain.params[k])
    seen = []

    def shrink_then_look(step, params, state):
        seen.append(params["W1"].abs().sum().item())
        params["W1"].mul_(0.0)

    train_ensemble(cls_data, (6, 8, 3), "tanh", [0], config, TrainHooks(step_hook=shrink_then_look))
    # after zeroing, W1 moves only by what one step from zero (plus momentum) brings
    assert seen[0] > 10 * max(seen[1:3])


def test_per_member_learning_rates(cls_data):
    widths = (6, 8, 3)
    config = TrainConfig(2, 32, lr=[0.05, 0.5], dtype=torch.float64)
    result = train_ensemble(cls_data, widths, "tanh", [5, 5], config)
    np.testing.assert_array_equal(result.lrs, [0.05, 0.5])
    for i, lr in enumerate([0.05, 0.5]):
        ref, _ = _reference_run(cls_data, widths, 5, replace(config, lr=lr))
        torch.testing.assert_close(member(result.params, i)["W1"], ref["W1"])


def test_bitwise_deterministic(cls_data):
    config = TrainConfig(2, 10, "adam", 0.01)
    a = train_ensemble(cls_data, (6, 16, 3), "relu", range(5), config)
    b = train_ensemble(cls_data, (6, 16, 3), "relu", range(5), config)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)
    assert a.params["W1"].dtype == torch.float32
    np.testing.assert_array_equal(a.history.train_loss, b.history.train_loss)
    np.testing.assert_array_equal(a.history.test_acc, b.history.test_acc)
    # Different seeds give different members.
    assert not torch.equal(a.params["W1"][0], a.params["W1"][1])


def test_loss_decreases_on_teacher_student_regression():
    data, _ = teacher_student(256, 128, 4, (6, 1), "regression", seed=3)
    result = train_ensemble(
        data, (4, 16, 1), "tanh", range(4), TrainConfig(15, 32, lr=0.05, momentum=0.9)
    )
    h = result.history
    assert h.train_loss.shape == (16, 4) and np.isnan(h.test_acc).all()
    assert (h.train_loss[-1] < 0.5 * h.train_loss[0]).all()
    assert (h.test_loss[-1] < 0.5 * h.test_loss[0]).all()


def test_label_noise_history_splits_the_training_loss(cls_data):
    y_noisy, mask = flip_labels(cls_data.y_train, 0.2, 3, seed=0)
    noisy = replace(cls_data, y_train=y_noisy)
    result = train_ensemble(
        noisy,
        (6, 8, 3),
        "tanh",
        range(3),
        TrainConfig(2, 16, lr=0.2),
        label_noise_mask=mask,
    )
    h = result.history
    frac = mask.double().mean().item()
    np.testing.assert_allclose(
        frac * h.noisy_train_loss + (1 - frac) * h.clean_train_loss, h.train_loss, rtol=1e-5
    )


def test_forward_loss_and_accuracy_against_single_models(cls_data):
    nets = [init_mlp((6, 9, 7, 3), seed) for seed in range(3)]
    stacked = stack_params(nets)
    x, y = cls_data.x_test.double(), cls_data.y_test
    out = ensemble_forward(stacked, x, "relu")
    losses = per_example_loss(stacked, x, y, "relu", "classification")
    loss, acc = evaluate(stacked, x, y, "relu", "classification")
    for i, net in enumerate(nets):
        ref = mlp_forward(net, x, "relu")
        torch.testing.assert_close(out[i], ref)
        torch.testing.assert_close(losses[i], F.cross_entropy(ref, y, reduction="none"))
        assert loss[i] == pytest.approx(F.cross_entropy(ref, y).item())
        assert acc[i] == pytest.approx((ref.argmax(1) == y).double().mean().item())
        assert all(torch.equal(member(stacked, i)[k], net[k]) for k in net)


def test_progress_callback_and_width_check(cls_data):
    seen = []
    train_ensemble(
        cls_data,
        (6, 4, 3),
        "tanh",
        [0],
        TrainConfig(2, 30),
        progress=lambda epoch, history: seen.append((epoch, history.train_loss.shape)),
    )
    assert seen == [(1, (2, 1)), (2, (3, 1))]
    with pytest.raises(ValueError):
        train_ensemble(cls_data, (5, 4, 3), "tanh", [0], TrainConfig(1, 30))


def test_evaluation_in_chunks_covers_every_example():
    gen = torch.Generator().manual_seed(0)
    nets = [init_mlp((3, 4, 2), seed) for seed in range(2)]
    x = torch.randn(9000, 3, dtype=torch.float64, generator=gen)  # more than one chunk
    y = torch.randint(0, 2, (9000,), generator=gen)
    losses = per_example_loss(stack_params(nets), x, y, "tanh", "classification")
    assert losses.shape == (2, 9000)
    for i, net in enumerate(nets):
        ref = F.cross_entropy(mlp_forward(net, x, "tanh"), y, reduction="none")
        torch.testing.assert_close(losses[i], ref)
