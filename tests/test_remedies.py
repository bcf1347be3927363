import math

import numpy as np
import pytest
import torch

from ghost_optima import remedies
from ghost_optima.align import barrier
from ghost_optima.data import Dataset, teacher_student
from ghost_optima.mlp import ensemble_forward
from ghost_optima.symmetry import apply_transform, mlp_permutation_spec, random_transform
from ghost_optima.train import member, stack_params


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


@pytest.mark.parametrize("variant", remedies.VARIANTS)
def test_every_variant_matches_the_parameter_count(data, image_data, variant):
    cfg = remedies.RemedyConfig(width=16)
    for d in (data, image_data):
        arch = remedies.build(variant, d, cfg)
        base = remedies.build("baseline", d, cfg)
        assert arch.widths[0] == d.n_in and arch.widths[-1] == d.n_out
        assert abs(arch.n_params / base.n_params - 1) <= 0.10
        assert [len(p) for p in arch.parities] == list(arch.widths[1:3])


def test_symmetry_counts_of_the_variants(data):
    cfg = remedies.RemedyConfig(width=16)
    base = remedies.build("baseline", data, cfg)
    assert base.log10_perm == pytest.approx(2 * math.log10(math.factorial(16)))
    assert base.log10_sign == pytest.approx(32 * math.log10(2))
    for variant in ("sorted biases", "random masks", "banded masks", "poly distinct"):
        assert remedies.build(variant, data, cfg).log10_perm == 0.0
    assert remedies.build("poly distinct", data, cfg).log10_sign == 0.0
    degrees = remedies.build("poly degrees", data, cfg)  # 16 units, 4 degrees: classes of 4
    assert degrees.log10_perm == pytest.approx(2 * 4 * math.log10(24))
    modules = remedies.build("modules", data, cfg)
    u = modules.widths[1] // cfg.n_modules
    assert modules.log10_perm == pytest.approx(2 * cfg.n_modules * math.log10(math.factorial(u)))
    with pytest.raises(ValueError):
        remedies.build("dropout", data, cfg)


@pytest.mark.parametrize("variant", ["baseline", "modules", "poly degrees", "sorted biases"])
def test_alignment_within_the_group_recovers_a_hidden_copy(data, variant):
    """Move a net by an element of the variant's own group: aligning finds the copy again."""
    arch = remedies.build(variant, data, remedies.RemedyConfig(width=8))
    result = remedies.train(arch, data, [0], epochs=2, batch_size=32, lr=0.01, dtype=torch.float64)
    net = member(result.params, 0)
    spec = mlp_permutation_spec(2)
    g = random_transform(spec, arch.widths, "tanh", 3)
    if arch.classes is not None:  # stay inside the group: permute within classes only
        perms = {}
        for name, labels in arch.classes.items():
            perm = torch.arange(len(labels))
            for label in np.unique(labels):
                idx = torch.as_tensor(np.flatnonzero(labels == label))
                perm[idx] = idx[
                    torch.randperm(len(idx), generator=torch.Generator().manual_seed(1))
                ]
            perms[name] = perm
        g = type(g)(perms, signs=None if variant == "poly degrees" else g.signs)
    copy = apply_transform(net, spec, g)
    x = data.x_test.double()
    same = ensemble_forward(stack_params([copy]), x, arch.activation)
    assert torch.allclose(same, ensemble_forward(stack_params([net]), x, arch.activation))
    a, b = remedies.align_within(arch, net, copy)
    assert all(torch.allclose(a[k], b[k], atol=1e-10) for k in a)
    assert barrier(a, b, x, data.y_test, arch.activation, data.task)["loss_barrier"] < 1e-9


def test_measure_and_summary(data):
    arch = remedies.build("baseline", data, remedies.RemedyConfig(width=8))
    result = remedies.train(arch, data, range(4), epochs=2, batch_size=32, lr=0.01)
    m = remedies.measure(arch, result, data, "ts")
    assert m.disagreement.shape == (4, 4) and np.allclose(np.diag(m.disagreement), 0)
    assert np.allclose(m.disagreement, m.disagreement.T)
    assert m.barrier_raw.shape == (2,) and (m.barrier_raw >= 0).all()
    assert m.ms_per_step > 0
    row = remedies.summary(m, n_boot=200)
    assert row["test_acc"].lo <= row["test_acc"].value <= row["test_acc"].hi
    table = remedies.table([row])
    assert list(table["variant"]) == ["baseline"]
    same = remedies.change([(m, m)], "disagreement", relative=True, n_boot=100)
    assert same.value == same.lo == same.hi == 0.0


def test_mean_pairwise_and_seed_bootstrap():
    matrix = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0]], dtype=float)
    assert remedies.mean_pairwise(matrix, np.arange(3)) == pytest.approx(2.0)
    assert remedies.mean_pairwise(matrix, np.array([0, 0, 1])) == pytest.approx(1.0)
    est = remedies.seed_bootstrap(
        lambda draw: remedies.mean_pairwise(matrix, draw[0]), [3], n_boot=300, min_distinct=2
    )
    assert est.lo <= est.value <= est.hi and 1.0 <= est.lo and est.hi <= 3.0
    values = np.arange(10.0)
    mean = remedies.seed_bootstrap(lambda draw: values[draw[0]].mean(), [10], n_boot=500)
    assert mean.value == 4.5 and mean.lo < 4.5 < mean.hi


def test_label_noise_halving_undoes_a_subset_of_flips(data):
    noisy, flips = remedies.with_label_noise(data, 0.3, seed=5)
    half, flips_half = remedies.with_label_noise(data, 0.15, seed=5)
    assert bool((flips_half <= flips).all()) and flips_half.sum() < flips.sum()
    assert torch.equal(half.y_train[flips_half], noisy.y_train[flips_half])
    assert torch.equal(noisy.y_test, data.y_test)
