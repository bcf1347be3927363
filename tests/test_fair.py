from dataclasses import replace

import numpy as np
import pytest
import torch

from ghost_optima.core import stats
from ghost_optima.core.data import teacher_student
from ghost_optima.core.mlp import ensemble_forward
from ghost_optima.remedies import fair, protocol
from ghost_optima.selection.validation import validation_split


@pytest.fixture(scope="module")
def data():
    d, _ = teacher_student(200, 80, 8, (6, 3), "classification", seed=0)
    return d


GRID = [0.001, 0.01, 0.1]


def test_lr_selection_never_sees_the_test_set(data):
    arch = protocol.architecture("baseline", data, protocol.RemedyConfig(width=8))
    kw = dict(epochs=2, batch_size=32, split_seed=1)
    clean = fair.select_lr(arch, data, GRID, [5, 6], **kw)
    poisoned = replace(
        data, x_test=torch.full_like(data.x_test, float("nan")), y_test=data.y_test * 0
    )
    dirty = fair.select_lr(arch, poisoned, GRID, [5, 6], **kw)
    np.testing.assert_array_equal(clean.search.pooled.scores, dirty.search.pooled.scores)
    assert np.isfinite(clean.search.pooled.scores).all() and clean.lr == dirty.lr


def test_scores_are_the_mean_validation_loss_of_separate_runs(data):
    arch = protocol.architecture("random masks", data, protocol.RemedyConfig(width=8))
    choice = fair.select_lr(arch, data, GRID, [5, 6], epochs=2, batch_size=32, split_seed=1)
    split = validation_split(data, 0.2, seed=1)
    reference = []
    for lr in GRID:  # one small run per learning rate, scored on the validation slot
        run = protocol.train(arch, split, [5, 6], epochs=2, batch_size=32, lr=lr)
        reference.append(run.history.test_loss[-1].mean())
    np.testing.assert_allclose(choice.search.pooled.scores, reference, rtol=1e-5)
    assert choice.lr == GRID[int(np.argmin(reference))]


def test_error_scores_are_the_mean_validation_error_and_fit_arms_uses_them(data):
    arch = protocol.architecture("random masks", data, protocol.RemedyConfig(width=8))
    kw = dict(epochs=2, batch_size=32)
    choice = fair.select_lr(arch, data, GRID, [5, 6], split_seed=5, score="error", **kw)
    split = validation_split(data, 0.2, seed=5)
    reference = []
    for lr in GRID:  # one small run per learning rate, its error on the validation slot
        run = protocol.train(arch, split, [5, 6], lr=lr, **kw)
        preds = ensemble_forward(run.params, split.x_test, arch.activation).argmax(-1)
        reference.append((preds != split.y_test).double().mean().item())
    np.testing.assert_allclose(choice.search.pooled.scores, reference, atol=1e-6)
    training = fair.Training((0,), tuple(GRID), (5, 6), score="error", **kw)
    ((arm_choice, _),) = fair.fit_arms([arch], data, training)
    np.testing.assert_allclose(
        arm_choice.search.pooled.scores, choice.search.pooled.scores, atol=1e-6
    )
    with pytest.raises(ValueError, match="score"):
        fair.select_lr(arch, data, GRID, [5], score="auc", **kw)


def _fake(acc, dis, name="d"):
    acc = np.asarray(acc, float)
    return protocol.Measured("v", name, None, acc, acc, np.asarray(dis, float), acc, acc, 0.0, None)


def test_effects_are_remedy_against_twin_and_against_baseline():
    rng = np.random.default_rng(0)
    arms = []
    for _ in range(3):  # baseline, remedy, twin: 5 seeds each
        d = rng.uniform(0.05, 0.2, (5, 5))
        d = (d + d.T) / 2
        np.fill_diagonal(d, 0.0)
        arms.append(_fake(rng.uniform(0.7, 0.9, 5), d))
    base, remedy, twin = arms
    out = fair.effects([(base, remedy, twin)], n_boot=200, seed=0)
    off = ~np.eye(5, dtype=bool)
    expected = remedy.disagreement[off].mean() / twin.disagreement[off].mean() - 1
    assert out["symmetry_effect_disagreement"].value == pytest.approx(expected)
    err = 1 - remedy.test_acc
    per_error = (remedy.disagreement / (err[:, None] + err[None, :]))[off].mean()
    err_b = 1 - base.test_acc
    per_error_b = (base.disagreement / (err_b[:, None] + err_b[None, :]))[off].mean()
    assert out["per_error_change"].value == pytest.approx(per_error / per_error_b - 1)
    assert out["acc_change"].value == pytest.approx(remedy.test_acc.mean() - base.test_acc.mean())
    for est in out.values():
        assert est.lo <= est.value <= est.hi


def _arm(rng, n, name):
    d = rng.uniform(0.05, 0.2, (n, n))
    d = (d + d.T) / 2
    np.fill_diagonal(d, np.nan)
    return _fake(rng.uniform(0.7, 0.9, n), d, name)


def _pairs_mean(m, idx):
    """Brute force: the mean of ``d[i, j]`` over positions ``a != b`` of the resample ``idx``
    holding different seeds (``stats.pair_means``'s definition, written as loops)."""
    vals = [m[i, j] for a, i in enumerate(idx) for b, j in enumerate(idx) if a != b and i != j]
    return np.mean(vals) if vals else np.nan


def test_effects_over_draws_average_the_twin_over_resampled_draws():
    rng = np.random.default_rng(1)
    sets = []
    for name, n in (("a", 5), ("b", 4)):
        base, remedy = _arm(rng, n, name), _arm(rng, n, name)
        sets.append((base, remedy, [_arm(rng, n, name) for _ in range(3)]))
    out = fair.effects_over_draws(sets, n_boot=60, seed=3)
    # brute force on the same resamples: draws first, then each data set's seeds
    drawn = stats.resample([3, 5, 4], n_boot=60, seed=3)
    values = []
    for r in range(61):
        jdx, per_set = drawn[0][r], [drawn[1][r], drawn[2][r]]
        effects = []
        for (_, remedy, twins), idx in zip(sets, per_set, strict=True):
            twin = np.mean([_pairs_mean(twins[j].disagreement, idx) for j in jdx])
            effects.append(_pairs_mean(remedy.disagreement, idx) / twin - 1)
        values.append(np.mean(effects))
    (expected,) = stats.intervals(np.array(values), 3)
    got = out["symmetry_effect_disagreement"]
    assert (got.value, got.lo, got.hi) == pytest.approx((expected.value, expected.lo, expected.hi))
    # with one draw the point values are those of ``effects``
    one = fair.effects_over_draws([(b, r, t[:1]) for b, r, t in sets], n_boot=50, seed=0)
    plain = fair.effects([(b, r, t[0]) for b, r, t in sets], n_boot=50, seed=0)
    for key, est in plain.items():
        assert one[key].value == pytest.approx(est.value), key
    # the accuracy gap against the draw-mean twin, and each draw's own effect
    acc = np.mean(
        [r.test_acc.mean() - np.mean([t.test_acc.mean() for t in ts]) for _, r, ts in sets]
    )
    assert out["symmetry_effect_acc"].value == pytest.approx(acc)
    each = [
        np.mean(
            [
                _pairs_mean(r.disagreement, range(len(r.test_acc)))
                / _pairs_mean(ts[k].disagreement, range(len(r.test_acc)))
                - 1
                for _, r, ts in sets
            ]
        )
        for k in range(3)
    ]
    assert out["twin_draw_effects"] == pytest.approx(each)
    with pytest.raises(ValueError):
        fair.effects_over_draws([sets[0], (sets[1][0], sets[1][1], sets[1][2][:2])], n_boot=10)


@pytest.mark.parametrize(
    "variants",
    [
        ("baseline",),
        ("random masks", "random twin masks", "banded masks"),
        ("poly distinct", "poly shared"),
    ],
)
def test_arms_trained_together_equal_arms_trained_alone(data, variants):
    from ghost_optima.remedies import twins

    cfg = protocol.RemedyConfig(width=8, twin_block=2)
    archs = [twins.architecture(v, data, cfg) for v in variants]
    training = fair.Training((0, 1, 2), tuple(GRID), (5, 6), epochs=2, batch_size=32)
    together = fair.fit_arms(archs, data, training)
    for arch, (choice, run) in zip(archs, together, strict=True):
        alone_choice, alone = fair.fit(arch, data, training)
        np.testing.assert_allclose(
            choice.search.pooled.scores, alone_choice.search.pooled.scores, rtol=1e-5
        )
        assert choice.lr == alone_choice.lr and run.activation is arch.activation
        for k, v in alone.params.items():
            torch.testing.assert_close(run.params[k], v, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(run.history.test_acc[-1], alone.history.test_acc[-1])
        assert run.history.test_acc.shape == (2, 3)  # start and end only
