"""Tests of ghost_optima.sgd.chains: sampler against its laws, engine against closed forms."""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from ghost_optima.sgd.chains import ChainRecord, Schedule, Watch, run_chains, sample_batches

DT = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- the sampler


def test_sampler_with_replacement_draws_iid_uniform_indices():
    n, B, rows = 6, 3, 20000
    idx = sample_batches(rows, n, B, _gen(0), replacement=True)
    assert idx.shape == (rows, B) and idx.dtype == torch.long
    assert int(idx.min()) >= 0 and int(idx.max()) < n
    # every index uniform on range(n) (chi-square goodness of fit)
    counts = np.bincount(idx.reshape(-1).numpy(), minlength=n)
    assert stats.chisquare(counts).pvalue > 1e-3
    # repeats within a row happen at the i.i.d. rate: P(all distinct) = n! / ((n - B)! n^B)
    distinct = np.mean([len(set(r)) == B for r in idx.tolist()])
    p = math.perm(n, B) / n**B
    assert distinct == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / rows))
    # all n^B ordered tuples equally likely (independence of positions within a row)
    codes = (idx.numpy() * n ** np.arange(B)).sum(axis=1)
    assert stats.chisquare(np.bincount(codes, minlength=n**B)).pvalue > 1e-3


def test_sampler_without_replacement_draws_uniform_subsets():
    n, B, rows = 6, 3, 20000
    idx = sample_batches(rows, n, B, _gen(1), replacement=False)
    assert idx.shape == (rows, B) and idx.dtype == torch.long
    assert all(len(set(r)) == B for r in idx.tolist())  # distinct within every row
    # every B-subset equally likely: brute force over the C(n, B) = 20 subsets
    subsets = {s: k for k, s in enumerate(itertools.combinations(range(n), B))}
    counts = np.bincount([subsets[tuple(sorted(r))] for r in idx.tolist()], minlength=len(subsets))
    assert stats.chisquare(counts).pvalue > 1e-3
    # B = n is the whole data set
    full = sample_batches(3, n, n, _gen(2), replacement=False)
    assert all(sorted(r) == list(range(n)) for r in full.tolist())


def test_sampler_is_seeded_and_checks_sizes():
    for replacement in (True, False):
        a = sample_batches(4, 10, 3, _gen(5), replacement=replacement)
        assert torch.equal(a, sample_batches(4, 10, 3, _gen(5), replacement=replacement))
        assert not torch.equal(a, sample_batches(4, 10, 3, _gen(6), replacement=replacement))
        with pytest.raises(ValueError):
            sample_batches(4, 10, 11, _gen(0), replacement=replacement)


# ----------------------------------------------------------------------------- the engine


def test_engine_on_a_deterministic_quadratic_matches_closed_forms():
    # g(theta) = lam * theta: theta_t = (1 - eta lam)^t theta_0, so every recorded quantity is a
    # geometric sum
    lam = torch.tensor([0.1, 0.5, 1.5], dtype=DT)
    eta, T, burn = 0.5, 40, 10
    start = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.3, 0.3]], dtype=DT)
    D = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]], dtype=DT)
    out = run_chains(
        lambda theta, batch: lam * theta,
        None,
        start,
        Schedule(eta, 1, T, burn),
        _gen(0),
        Watch(torch.zeros(3, dtype=DT), D, record_every=5),
    )
    rho = (1 - eta * lam).numpy()
    t = np.arange(T + 1)[:, None]
    path = start.numpy()[:, None, :] * rho[None] ** t  # (C, T + 1, d)
    kept = path[:, burn + 1 :]
    np.testing.assert_allclose(out.final, path[:, -1], rtol=1e-12)
    np.testing.assert_allclose(out.proj_mean, (kept @ D.numpy()).mean(1), rtol=1e-12)
    np.testing.assert_allclose(out.proj_sq, ((kept @ D.numpy()) ** 2).mean(1), rtol=1e-12)
    np.testing.assert_allclose(out.msd, (kept**2).sum(2).mean(1), rtol=1e-12)
    assert out.steps.tolist() == list(range(0, T + 1, 5)) and out.n_samples == T - burn
    np.testing.assert_allclose(out.trace, (path[:, ::5] ** 2).sum(2), rtol=1e-12)
    assert torch.equal(start, torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.3, 0.3]], dtype=DT))


@pytest.mark.parametrize("replacement", [True, False])
def test_engine_passes_the_samplers_batches_and_none_for_full_batch(replacement):
    seen = []

    def gradient(theta, batch):
        seen.append(batch)
        return torch.zeros_like(theta)

    start = torch.zeros(3, 2, dtype=DT)
    watch = Watch(torch.zeros(2, dtype=DT))
    run_chains(gradient, 10, start, Schedule(0.1, 4, 5, replacement=replacement), _gen(3), watch)
    replay = _gen(3)
    for batch in seen:
        expected = sample_batches(3, 10, 4, replay, replacement=replacement)
        assert torch.equal(batch, expected)
    seen.clear()
    run_chains(gradient, 10, start, Schedule(0.1, 10, 5), _gen(3), watch)
    assert seen == [None] * 5
    with pytest.raises(ValueError, match="batch_size"):
        run_chains(gradient, 10, start, Schedule(0.1, 11, 5), _gen(3), watch)


def test_schedule_validates():
    for bad in ({"eta": 0.0}, {"batch_size": 0}, {"burn_in": 5}, {"burn_in": -1}):
        kwargs = {"eta": 0.1, "batch_size": 2, "n_steps": 5, **bad}
        with pytest.raises(ValueError):
            Schedule(**kwargs)


def test_var_per_chain_is_centred_on_the_pooled_mean():
    ch = ChainRecord(
        proj_mean=torch.tensor([[1.0], [3.0]]),
        proj_sq=torch.tensor([[2.0], [10.0]]),
        msd=torch.zeros(2),
        trace=torch.zeros(2, 0),
        steps=torch.zeros(0),
        n_samples=1,
        final=torch.zeros(2, 1),
    )
    # pooled mean 2: E[(u - 2)^2] = E[u^2] - 4 E[u] + 4
    np.testing.assert_allclose(ch.var_per_chain().numpy(), [[2 - 4 + 4], [10 - 12 + 4]])
