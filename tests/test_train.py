import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ghost_optima.data import flip_labels, teacher_student
from ghost_optima.mlp import ensemble_forward, init_mlp, mlp_forward
from ghost_optima.train import (
    TrainConfig,
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


def _reference_run(data, widths, seed, *, optimizer, lr, epochs, batch_size, momentum, wd):
    """A plain single-model torch loop: nn.Linear layers, torch.optim, the member's batches."""
    g_init, g_order = member_generators(seed)
    init = init_mlp(widths, g_init, dtype=torch.float64)
    layers: list[nn.Module] = []
    for layer in range(1, len(widths)):
        linear = nn.Linear(widths[layer - 1], widths[layer]).double()
        with torch.no_grad():
            linear.weight.copy_(init[f"W{layer}"])
            linear.bias.copy_(init[f"b{layer}"])
        layers += [linear, nn.Tanh()]
    model = nn.Sequential(*layers[:-1])
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    x, y = data.x_train.double(), data.y_train
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g_order)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    params = {}
    for layer, linear in enumerate(linears, start=1):
        params[f"W{layer}"], params[f"b{layer}"] = linear.weight.detach(), linear.bias.detach()
    with torch.no_grad():
        loss = F.cross_entropy(model(x), y).item()
    return params, loss


@pytest.mark.parametrize(
    "optimizer, lr, momentum, wd",
    [("sgd", 0.3, 0.0, 0.0), ("sgd", 0.1, 0.9, 1e-3), ("adam", 0.01, 0.0, 1e-3)],
)
def test_member_equals_a_plain_torch_training_loop(cls_data, optimizer, lr, momentum, wd):
    widths, seeds = (6, 8, 3), [11, 4, 7]
    result = train_ensemble(
        cls_data,
        widths,
        "tanh",
        seeds,
        TrainConfig(3, 16, optimizer, lr, momentum, wd, torch.float64),
    )
    for i, seed in enumerate(seeds):
        ref, ref_loss = _reference_run(
            cls_data,
            widths,
            seed,
            optimizer=optimizer,
            lr=lr,
            epochs=3,
            batch_size=16,
            momentum=momentum,
            wd=wd,
        )
        got = member(result.params, i)
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-10, atol=1e-12)
        assert result.history.train_loss[-1, i] == pytest.approx(ref_loss, rel=1e-10)


def test_per_member_learning_rates(cls_data):
    widths = (6, 8, 3)
    result = train_ensemble(
        cls_data,
        widths,
        "tanh",
        [5, 5],
        TrainConfig(2, 32, lr=[0.05, 0.5], dtype=torch.float64),
    )
    np.testing.assert_array_equal(result.lrs, [0.05, 0.5])
    for i, lr in enumerate([0.05, 0.5]):
        ref, _ = _reference_run(
            cls_data,
            widths,
            5,
            optimizer="sgd",
            lr=lr,
            epochs=2,
            batch_size=32,
            momentum=0.0,
            wd=0.0,
        )
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
    from dataclasses import replace

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
