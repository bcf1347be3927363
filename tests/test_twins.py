import math

import numpy as np
import pytest
import torch

from ghost_optima.core.data import Dataset, teacher_student
from ghost_optima.core.mlp import ensemble_forward
from ghost_optima.core.train import member
from ghost_optima.remedies import protocol, twins
from ghost_optima.remedies.masks import count_automorphisms_bruteforce


@pytest.fixture(scope="module")
def data():
    d, _ = teacher_student(200, 80, 12, (6, 3), "classification", seed=0)
    return d


@pytest.fixture(scope="module")
def image_data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(120, 64, generator=gen)
    y = torch.randint(0, 10, (120,), generator=gen)
    return Dataset(x[:80], y[:80], x[80:], y[80:], "classification", 10, "digits")


@pytest.mark.parametrize(("remedy", "twin"), twins.TWIN_OF.items())
def test_twin_matches_its_remedy_and_keeps_more_symmetry(data, image_data, remedy, twin):
    cfg = protocol.RemedyConfig(width=16)
    for d in (data, image_data):
        a, b = twins.architecture(remedy, d, cfg), twins.architecture(twin, d, cfg)
        base = twins.architecture("baseline", d, cfg)
        assert a.widths == b.widths
        assert abs(twins.param_gap(a, base)) <= 0.10
        if twin == "full-input modules":  # more inputs per module at the remedy's widths
            assert b.n_params > a.n_params
        else:
            assert abs(twins.param_gap(b, base)) <= 0.10
        assert b.log10_perm > a.log10_perm
        assert (a.masks is None) == (b.masks is None)


def test_full_input_modules_read_everything_and_can_be_swapped_whole(data, image_data):
    cfg = protocol.RemedyConfig(width=16, n_modules=4)
    for d in (data, image_data):
        twin = twins.architecture("full-input modules", d, cfg)
        remedy = twins.architecture("modules", d, cfg)
        assert twin.masks["W1"].bool().all()  # no module loses an input
        assert torch.equal(twin.masks["W2"], remedy.masks["W2"])  # the same block-diagonal layer
        units = twin.widths[1] // 4
        expected = math.lgamma(5) + 4 * 2 * math.lgamma(units + 1)  # 4! (u! u!)^4
        assert twin.log10_perm == pytest.approx(expected / math.log(10))
        extra = (d.n_in * twin.widths[1]) - int(remedy.masks["W1"].sum())
        assert twin.n_params - remedy.n_params == extra


def test_twins_train_and_the_cumsum_twin_leaves_biases_free(data):
    cfg = protocol.RemedyConfig(width=8)
    arch = twins.architecture("cumsum biases", data, cfg)
    result = protocol.train(arch, data, [0, 1], epochs=3, batch_size=32, lr=0.05)
    m = protocol.measure(arch, result, data, "ts")
    assert np.isfinite(m.test_acc).all()
    x = data.x_test
    out = ensemble_forward(result.params, x, "tanh")
    assert out.shape == (2, len(x), data.n_out)
    preds = out.argmax(-1)
    wrong = preds != data.y_test
    # matched accuracy: two classifiers differ only where one errs, so d01 <= e0 + e1
    d01 = (preds[0] != preds[1]).double().mean().item()
    e = wrong.double().mean(1).numpy()
    assert protocol.per_error(m)[0, 1] == pytest.approx(d01 / (e[0] + e[1]))
    assert protocol.per_error(m)[0, 1] <= 1.0
    assert member(result.params, 0)["b1"].shape == (8,)


def test_twin_masks_group_by_brute_force_at_toy_size():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=gen)
    d = Dataset(
        x[:40],
        torch.randint(0, 2, (40,)),
        x[40:],
        torch.randint(0, 2, (20,)),
        "classification",
        2,
        "toy",
    )
    cfg = protocol.RemedyConfig(width=4, density=0.5, twin_block=2)
    twin = twins.architecture("random twin masks", d, cfg)
    if math.prod(math.factorial(n) for n in twin.widths[1:-1]) <= 10**6:
        truth = count_automorphisms_bruteforce(twin.widths, twin.masks)
        assert truth == round(10**twin.log10_perm)


def test_masked_arms_start_at_the_mask_aware_init(data):
    """protocol.train starts masked layers at mlp.init_mlp(..., masks=...) exactly once (a
    trainer that also rescaled would fail here)."""
    from ghost_optima.core.mlp import init_mlp
    from ghost_optima.core.train import member_generators

    cfg = protocol.RemedyConfig(width=8)
    arch = twins.architecture("random twin masks", data, cfg)
    start = protocol.train(arch, data, [3], epochs=0, batch_size=32, lr=0.01).params
    g_init, _ = member_generators(3)
    ref = init_mlp(arch.widths, g_init, dtype=torch.float32, masks=arch.masks)
    for k in ("W1", "b1", "W2", "b2"):
        torch.testing.assert_close(start[k][0], ref[k])
