import math

import numpy as np
import pytest
import scipy.stats as sps
import torch
import torch.nn.functional as F

from ghost_optima.core.data import Dataset, teacher_student, with_label_noise
from ghost_optima.core.mlp import ensemble_forward, mlp_forward
from ghost_optima.core.train import member, stack_params
from ghost_optima.remedies import fair, protocol
from ghost_optima.symmetry.align import align
from ghost_optima.symmetry.group import (
    Transform,
    apply_transform,
    mlp_permutation_spec,
    random_transform,
)
from ghost_optima.symmetry.pairwise import barrier


def _aligned(arch, a, b):
    """``b`` moved onto ``a`` within the variant's own group (what ``measure`` does)."""
    return apply_transform(b, arch.group, align(a, b, arch.group))


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


@pytest.mark.parametrize("variant", protocol.VARIANTS)
def test_every_variant_matches_the_parameter_count(data, image_data, variant):
    cfg = protocol.RemedyConfig(width=16)
    for d in (data, image_data):
        arch = protocol.architecture(variant, d, cfg)
        base = protocol.architecture("baseline", d, cfg)
        assert arch.widths[0] == d.n_in and arch.widths[-1] == d.n_out
        assert abs(arch.n_params / base.n_params - 1) <= 0.10
        assert arch.group.names == ["P1", "P2"]
        for p, n in zip(arch.group.names, arch.widths[1:3], strict=True):
            assert len(arch.group.unit_parities(p, n)) == n  # one parity per unit
            arch.group.unit_classes(p, n)  # classes fit the layer and keep parities apart


def test_symmetry_counts_of_the_variants(data):
    cfg = protocol.RemedyConfig(width=16)
    base = protocol.architecture("baseline", data, cfg)
    assert base.log10_perm == pytest.approx(2 * math.log10(math.factorial(16)))
    assert base.log10_sign == pytest.approx(32 * math.log10(2))
    for variant in ("sorted biases", "random masks", "banded masks", "poly distinct"):
        assert protocol.architecture(variant, data, cfg).log10_perm == 0.0
    assert protocol.architecture("poly distinct", data, cfg).log10_sign == 0.0
    degrees = protocol.architecture("poly degrees", data, cfg)  # 16 units, 4 degrees: classes of 4
    assert degrees.log10_perm == pytest.approx(2 * 4 * math.log10(24))
    modules = protocol.architecture("modules", data, cfg)
    u = modules.widths[1] // cfg.n_modules
    assert modules.log10_perm == pytest.approx(2 * cfg.n_modules * math.log10(math.factorial(u)))
    with pytest.raises(ValueError):
        protocol.architecture("dropout", data, cfg)


@pytest.mark.parametrize("variant", ["baseline", "modules", "poly degrees", "sorted biases"])
def test_alignment_within_the_group_recovers_a_hidden_copy(data, variant):
    """Move a net by an element of the variant's own group: aligning finds the copy again."""
    arch = protocol.architecture(variant, data, protocol.RemedyConfig(width=8))
    result = protocol.train(arch, data, [0], epochs=2, batch_size=32, lr=0.01, dtype=torch.float64)
    net = member(result.params, 0)
    spec = mlp_permutation_spec(2)
    g = random_transform(spec, arch.widths, "tanh", 3)
    if arch.group.classes:  # stay inside the group: permute within classes only
        perms = {}
        for name, labels in arch.group.classes.items():
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
    a, b = net, _aligned(arch, net, copy)
    assert all(torch.allclose(a[k], b[k], atol=1e-10) for k in a)
    assert barrier(a, b, x, data.y_test, arch.activation, data.task)["loss_barrier"] < 1e-9


def test_measure_against_per_member_references(data):
    """Every field of ``measure`` against an independent computation from the members."""
    arch = protocol.architecture("baseline", data, protocol.RemedyConfig(width=8))
    result = protocol.train(arch, data, range(4), epochs=2, batch_size=32, lr=0.01)
    m = protocol.measure(arch, result, data, "ts")
    x, y = data.x_test, data.y_test
    nets = [member(result.params, e) for e in range(4)]
    preds = [mlp_forward(net, x, "tanh").argmax(-1).numpy() for net in nets]
    assert np.isnan(np.diag(m.disagreement)).all()
    for i in range(4):
        for j in set(range(4)) - {i}:
            assert m.disagreement[i, j] == pytest.approx(np.mean(preds[i] != preds[j]), abs=1e-12)
        ref = F.cross_entropy(mlp_forward(nets[i], x, "tanh"), y).item()
        assert m.test_loss[i] == pytest.approx(ref, rel=1e-5)
        assert m.test_acc[i] == pytest.approx(np.mean(preds[i] == y.numpy()))
    for p in range(2):
        a, b = nets[2 * p], nets[2 * p + 1]
        t = np.linspace(0, 1, 17)
        loss = [F.cross_entropy(mlp_forward(_lerp(a, b, s), x, "tanh"), y).item() for s in t]
        chord = (1 - t) * loss[0] + t * loss[-1]
        assert m.barrier_raw[p] == pytest.approx(np.max(np.array(loss) - chord), abs=1e-5)
    assert m.ms_per_step == pytest.approx(1000 * result.step_cpu_seconds / result.n_steps)


def _lerp(a, b, t):
    return {k: (1 - t) * a[k] + t * b[k] for k in a}


def _measured(variant, acc, disagreement, dataset="ts"):
    arch = protocol.architecture("baseline", _tiny_data(), protocol.RemedyConfig(width=4))
    zeros = np.zeros(len(acc) // 2)
    return protocol.Measured(
        variant,
        dataset,
        arch,
        np.asarray(acc),
        np.zeros(len(acc)),
        disagreement,
        zeros,
        zeros,
        1.0,
        None,
    )


def _tiny_data():
    d, _ = teacher_student(20, 10, 3, (2, 2), "classification", seed=0)
    return d


def _disagreements(n, seed):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.uniform(0.05, 0.5, (n, n)), 1)
    return upper + upper.T


def test_estimates_and_changes_against_scipy_and_closed_forms():
    acc = np.array([0.8, 0.9, 0.85, 0.7, 0.95, 0.75])
    base = _measured("baseline", acc, _disagreements(6, 0))
    other = _measured("other", acc - 0.1, _disagreements(6, 1))
    row = protocol.estimate_row(base, n_boot=4000)
    ref = sps.bootstrap((acc,), np.mean, n_resamples=4000, method="percentile", random_state=0)
    assert row["test_acc"].value == pytest.approx(acc.mean())
    assert row["test_acc"].lo == pytest.approx(ref.confidence_interval.low, abs=0.01)
    assert row["test_acc"].hi == pytest.approx(ref.confidence_interval.high, abs=0.01)
    off = ~np.eye(6, dtype=bool)
    assert row["disagreement"].value == pytest.approx(base.disagreement[off].mean())
    assert row["disagreement"].n == 6
    # closed forms of the point values: a shift of 0.1 in every accuracy, a ratio of means
    shift = fair.change([(base, other)], "test_acc", relative=False, n_boot=500)
    assert shift.value == pytest.approx(-0.1) and shift.lo == pytest.approx(-0.1)
    assert shift.hi == pytest.approx(-0.1)
    rel = fair.change([(base, other)], "disagreement", relative=True, n_boot=500)
    ratio = other.disagreement[off].mean() / base.disagreement[off].mean() - 1
    assert rel.value == pytest.approx(ratio) and rel.lo <= rel.value <= rel.hi


def test_label_noise_halving_undoes_a_subset_of_flips(data):
    noisy, flips = with_label_noise(data, 0.3, seed=5)
    half, flips_half = with_label_noise(data, 0.15, seed=5)
    assert bool((flips_half <= flips).all()) and flips_half.sum() < flips.sum()
    assert torch.equal(half.y_train[flips_half], noisy.y_train[flips_half])
    assert torch.equal(noisy.y_test, data.y_test)


def _poly_arch(widths, rows):
    """A hand-built variant with per-unit Legendre activations ``rows`` (one per hidden layer)."""
    from ghost_optima.remedies import orthopoly

    act = orthopoly.PolyActivation(tuple(rows), "legendre")
    return protocol.Architecture("t", widths, act, 0, 0.0, 0.0, orthopoly.poly_spec(rows))


def _units(degrees):
    """Coefficient rows: unit ``i`` is the Legendre sum of ``degrees[i]`` (a tuple)."""
    rows = torch.zeros(len(degrees), 4, dtype=torch.float64)
    for i, ds in enumerate(degrees):
        rows[i, list(ds)] = 1.0
    return rows


def _inner(a, b):
    return sum(float((a[k].double() * b[k].double()).sum()) for k in a)


def test_alignment_equals_brute_force_over_the_group_with_parities():
    """One hidden layer: two odd units (B_1), two even (B_2), one of no parity (B_1 + B_2), two
    more odd of another class (B_3). Brute force over every permutation within classes, every
    flip of odd units (in and out) and every incoming flip of even units; the alignment within
    the variant's group (``orthopoly.poly_spec``) reaches the best inner product and keeps the
    function."""
    import itertools

    from ghost_optima.core.mlp import init_mlp

    rows = _units([(1,), (1,), (2,), (2,), (1, 2), (3,), (3,)])
    arch = _poly_arch((3, 7, 2), [rows])
    labels, kinds = arch.group.classes["P1"], arch.group.unit_parities("P1", 7)
    blocks = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for seed in range(4):
        a, b = init_mlp((3, 7, 2), 2 * seed), init_mlp((3, 7, 2), 2 * seed + 1)
        best = -np.inf
        for choice in itertools.product(*(itertools.permutations(i) for i in blocks)):
            perm = np.empty(7, dtype=np.int64)
            for idx, chosen in zip(blocks, choice, strict=True):
                perm[idx] = chosen
            for s in itertools.product((1.0, -1.0), repeat=7):
                s_in = torch.tensor(
                    [v if k != "none" else 1.0 for v, k in zip(s, kinds, strict=True)]
                )
                if any(v < 0 and k == "none" for v, k in zip(s, kinds, strict=True)):
                    continue
                s_out = torch.tensor(
                    [v if k == "odd" else 1.0 for v, k in zip(s, kinds, strict=True)]
                )
                moved = {
                    "W1": b["W1"][perm] * s_in[:, None],
                    "b1": b["b1"][perm] * s_in,
                    "W2": b["W2"][:, perm] * s_out,
                    "b2": b["b2"],
                }
                best = max(best, _inner(a, moved))
        b2 = _aligned(arch, a, b)
        assert _inner(a, b2) == pytest.approx(best, rel=1e-12)
        same = ensemble_forward(stack_params([b2]), x, arch.activation)
        torch.testing.assert_close(same, ensemble_forward(stack_params([b]), x, arch.activation))


def test_alignment_never_worse_than_normalising_signs_then_matching():
    """Two hidden layers with mixed parities and classes, 20 random pairs: the signed alignment
    is never further from ``a`` than each net sign-normalised on its own, then matched within
    the classes (``align.normalize_signs``, then weight matching over the permutations),
    and keeps the function."""
    from dataclasses import replace

    from ghost_optima.core.mlp import init_mlp
    from ghost_optima.symmetry.align import normalize_signs, permute
    from ghost_optima.symmetry.pairwise import distance

    rows = _units([(1,), (2,), (1, 2), (3,)] * 2)
    widths = (4, 8, 8, 3)
    arch = _poly_arch(widths, [rows, rows])
    perms_only = replace(arch.group, parities={})
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    better = 0
    for seed in range(20):
        a, b = init_mlp(widths, 2 * seed), init_mlp(widths, 2 * seed + 1)
        na, nb = (normalize_signs(p, arch.group) for p in (a, b))
        old = distance(na, permute(nb, align(na, nb, perms_only).perms))
        moved = _aligned(arch, a, b)
        new = distance(a, moved)
        assert new <= old + 1e-12
        better += new < old - 1e-9
        same = ensemble_forward(stack_params([moved]), x, arch.activation)
        torch.testing.assert_close(same, ensemble_forward(stack_params([b]), x, arch.activation))
    assert better > 0


def test_sorted_biases_alignment_stays_sorted_and_reaches_brute_force(data):
    """Sorted biases, two hidden layers of width 3 trained on 8 seeds: the aligned net keeps its
    function and increasing biases, and on these 4 pairs reaches the best of all 2^6 flips
    (each followed by re-sorting); the method is exact per layer, so a miss would need a
    coordinatewise optimum that is not global."""
    import itertools

    from ghost_optima.symmetry.align import permute
    from ghost_optima.symmetry.group import Transform

    arch = protocol.architecture("sorted biases", data, protocol.RemedyConfig(width=3))
    result = protocol.train(
        arch, data, range(8), epochs=2, batch_size=32, lr=0.05, dtype=torch.float64
    )
    spec = mlp_permutation_spec(2)
    x = data.x_test.double()

    def flipped(net, t):
        ident = {p: torch.arange(3) for p in t}
        out = apply_transform(net, spec, Transform(ident, signs=t))
        return permute(out, {f"P{k}": torch.argsort(out[f"b{k}"]) for k in (1, 2)})

    for p in range(4):
        a, b = member(result.params, 2 * p), member(result.params, 2 * p + 1)
        b2 = _aligned(arch, a, b)
        assert all(bool((torch.diff(b2[f"b{k}"]) > 0).all()) for k in (1, 2))
        torch.testing.assert_close(mlp_forward(b2, x, "tanh"), mlp_forward(b, x, "tanh"))
        best = max(
            _inner(a, flipped(b, {"P1": torch.tensor(s[:3]), "P2": torch.tensor(s[3:])}))
            for s in itertools.product((1.0, -1.0), repeat=6)
        )
        assert _inner(a, b2) == pytest.approx(best, rel=1e-12)


def test_sorted_alignment_is_exact_for_one_hidden_layer():
    """One hidden layer of width 6 with sorted biases: the dynamic programme's flips equal the
    best of all 2^6 (each followed by re-sorting), by brute force."""
    import itertools

    from ghost_optima.core.mlp import init_mlp
    from ghost_optima.remedies.reorder import SortedBiases
    from ghost_optima.symmetry.align import permute
    from ghost_optima.symmetry.group import Transform

    spec = mlp_permutation_spec(1)
    group = SortedBiases((1,)).sorted_spec(mlp_permutation_spec(1, "tanh"))
    for seed in range(5):
        a, b = (init_mlp((4, 6, 3), 2 * seed + k) for k in (0, 1))
        a, b = (permute(p, {"P1": torch.argsort(p["b1"])}) for p in (a, b))
        best = -np.inf
        for s in itertools.product((1.0, -1.0), repeat=6):
            out = apply_transform(
                b, spec, Transform({"P1": torch.arange(6)}, signs={"P1": torch.tensor(s)})
            )
            best = max(best, _inner(a, permute(out, {"P1": torch.argsort(out["b1"])})))
        moved = apply_transform(b, group, align(a, b, group))
        assert _inner(a, moved) == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("variant", ["baseline", "modules", "random twin masks", "sorted biases"])
def test_relu_arms_keep_their_permutations_and_no_sign_flips(data, variant):
    """ReLU arms (``RemedyConfig(activation="relu")``): no sign group is counted, every unit has
    no parity, a permutation inside the arm's classes leaves the function unchanged, and the
    alignment within the group finds the permuted copy again."""
    from ghost_optima.remedies import twins

    arch = twins.architecture(variant, data, protocol.RemedyConfig(width=8, activation="relu"))
    assert arch.activation == "relu" and arch.log10_sign == 0.0
    assert not arch.group.has_signs()
    result = protocol.train(arch, data, [0], epochs=2, batch_size=32, lr=0.01, dtype=torch.float64)
    net = member(result.params, 0)
    gen = torch.Generator().manual_seed(1)
    perms = {}
    for k, labels in enumerate(twins.unit_classes(arch) or [None, None], 1):
        perm = torch.arange(net[f"b{k}"].shape[0])
        if not arch.group.sorted_by:  # sorted biases: no permutation stays in the domain
            labels = np.zeros(len(perm), int) if labels is None else np.asarray(labels)
            for label in np.unique(labels):
                idx = torch.as_tensor(np.flatnonzero(labels == label))
                perm[idx] = idx[torch.randperm(len(idx), generator=gen)]
        perms[f"P{k}"] = perm
    copy = apply_transform(net, mlp_permutation_spec(2), Transform(perms))
    x = data.x_test.double()
    out = ensemble_forward(stack_params([net]), x, "relu")
    assert torch.allclose(ensemble_forward(stack_params([copy]), x, "relu"), out)
    a, b = net, _aligned(arch, net, copy)
    assert _inner(a, b) >= _inner(a, copy) - 1e-9  # never worse than leaving the copy alone
    if variant != "random twin masks":  # weight matching on two layers may stop short there
        assert all(torch.allclose(a[k], b[k], atol=1e-10) for k in a)


def test_unknown_activation_is_refused_before_any_architecture():
    with pytest.raises(ValueError, match="activation"):
        protocol.RemedyConfig(activation="swish")
