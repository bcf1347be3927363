"""The performance page and the cold-build copy."""

import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghost_optima.book.build import bench
from ghost_optima.book.pages import ledger, microbench, performance

REPORT = {
    "machine": {"platform": "Linux-x", "processor": "x86_64", "cpu_count": 2},
    "versions": {"torch": "2.13.0", "numpy": None},
    "commit": {"commit": "0123456789abcdef", "dirty": False},
    "builds": [
        {"profile": "quick", "cold": 61.5, "cached": 1.2, "notebooks": {"10_symmetry": 12.0}},
        {"profile": "full", "cold": 900.0, "cached": 2.0, "notebooks": {"10_symmetry": 30.5}},
    ],
    "micro": [{"script": "bench_x.py", "seconds": 3.0, "exit_status": 0, "output": "x 10 s"}],
}


RECORDS = {
    "10_symmetry": {
        "provenance": {
            "commit": "abcdef0123456",
            "dirty": True,
            "threads": 2,
            "wall_seconds": 12.25,
        }
    },
    "20_critical_points": {
        "provenance": {"commit": None, "dirty": False, "threads": 1, "wall_seconds": 7.5}
    },
}


def test_page_states_machine_and_every_timing():
    text = ledger.performance_page(REPORT, RECORDS)
    assert "2 cores" in text and "torch 2.13.0" in text and "numpy" not in text
    assert "| quick | fresh copy | 61.5 | 1.2 |" in text
    assert "| full | fresh copy | 900.0 | 2.0 |" in text
    assert "| 10_symmetry | 12.0 | 30.5 |" in text
    assert "x 10 s" in text


def test_page_without_bench_still_gives_this_builds_timings():
    text = ledger.performance_page(None, RECORDS)
    assert "| 10_symmetry | 12.2 | 2 | abcdef0123 (dirty) |" in text
    assert "| 20_critical_points | 7.5 | 1 | none |" in text
    assert "All notebooks together: 20 s." in text
    assert "was not run for this build" in text and "Not measured yet" not in text


def test_tracked_copy_takes_only_tracked_files(tmp_path):
    source, target = tmp_path / "repo", tmp_path / "copy"
    (source / "notebooks").mkdir(parents=True)
    target.mkdir()
    (source / "notebooks" / "10_a.md").write_text("tracked")
    (source / "scratch.txt").write_text("untracked")
    subprocess.run(["git", "init", "-q"], cwd=source, check=True)
    subprocess.run(["git", "add", "notebooks"], cwd=source, check=True)
    bench.tracked_copy(source, target)
    assert (target / "notebooks" / "10_a.md").read_text() == "tracked"
    assert not (target / "scratch.txt").exists()


def test_side_by_side_table_comes_from_the_benchmark_chapter():
    from ghost_optima.book.pages.performance import BENCH_CHAPTER

    row = {
        "task": "aligning two networks",
        "fast": "weight matching",
        "slow": "all 8! relabellings",
        "fast_seconds": 0.0005,
        "slow_seconds": 0.1125,
        "speedup": 225.0,
        "check": "optimum minus the score reached",
        "check_value": 0.0,
        "size": "8 hidden units",
    }
    chapter = {
        "values": {"benchmarks": [row]},
        "provenance": {
            "commit": "fedcba9876543",
            "dirty": False,
            "threads": 1,
            "wall_seconds": 40.0,
            "profile": "full",
        },
    }
    text = ledger.performance_page(None, {**RECORDS, BENCH_CHAPTER: chapter})
    assert (
        "| aligning two networks | 8 hidden units | weight matching: 0.0005 "
        "| all 8! relabellings: 0.113 | 225× | optimum minus the score reached: 0 |" in text
    )
    assert "on the `full` profile with 1 thread(s), commit `fedcba9876`" in text
    assert f"{{doc}}`{BENCH_CHAPTER}`" in text
    assert "not part of this build" in ledger.performance_page(None, RECORDS)


@given(st.integers(1, 7), st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_brute_force_matching_finds_the_assignment_optimum(n, seed):
    from scipy.optimize import linear_sum_assignment

    score = np.random.default_rng(seed).standard_normal((n, n))
    perm, best = microbench.brute_force_matching(score)
    rows, cols = linear_sum_assignment(score, maximize=True)
    assert best == pytest.approx(score[rows, cols].sum(), abs=1e-12)
    assert best == pytest.approx(score[np.arange(n), perm].sum(), abs=1e-12)
    assert sorted(perm) == list(range(n))


def test_matching_score_is_the_inner_product_after_relabelling():
    import torch

    from ghost_optima.core import mlp
    from ghost_optima.symmetry import align

    a = mlp.init_mlp((5, 4, 3), 0, dtype=torch.float64)
    b = mlp.init_mlp((5, 4, 3), 1, dtype=torch.float64)
    score = microbench.matching_score(a, b)
    rng = np.random.default_rng(0)
    base = sum(float((a[k] * b[k]).sum()) for k in ("b2",))  # untouched by relabelling
    for _ in range(5):
        perm = rng.permutation(4)
        moved = align.permute(b, {"P1": torch.as_tensor(perm)})
        inner = sum(float((a[k] * moved[k]).sum()) for k in a)
        assert inner == pytest.approx(score[np.arange(4), perm].sum() + base, abs=1e-12)


def test_each_benchmark_compares_two_methods_that_agree():
    row = microbench.matching_vs_brute_force(6, seed=3)
    assert row["check_value"] == pytest.approx(0.0, abs=1e-9) and row["speedup"] > 0
    row = microbench.ensemble_vs_loop(2, 4, 1, seed=0)
    assert row["check_value"] < 1e-5 and row["fast_seconds"] > 0
    row = microbench.hessian_top_eigenvalues(3, 60, 3, seed=0)
    assert row["check_value"] < 1e-6 and row["size"] == "235 parameters"


def test_best_time_keeps_the_least():
    clock = iter([0.0, 5.0, 10.0, 11.0, 20.0, 23.0])
    import time

    original = time.perf_counter
    time.perf_counter = lambda: next(clock)
    try:
        result, seconds = microbench.best_time(lambda: "x", 3)
    finally:
        time.perf_counter = original
    assert (result, seconds) == ("x", 1.0)


def _timed(wall, **kernels):
    """A record whose provenance has ``wall`` seconds and ``kernels`` as (seconds, flops)."""
    entries = {k: {"seconds": s, "flops": f, "calls": 1} for k, (s, f) in kernels.items()}
    return {"provenance": {"wall_seconds": wall, "kernels": entries}}


def test_kernel_breakdown_sums_every_run_and_sets_throughput_against_the_peak():
    runs = [_timed(10, training=(6, 12e9), chains=(2, 0)), _timed(30, training=(12, 6e9))]
    lines = "\n".join(performance.kernel_breakdown(runs, peak_gflops=4.0))
    assert "All 2 runs of this build (published and replications) took 40 task-seconds" in lines
    # training: 18 s of 40, 18 GFLOP at 1 GFLOP/s = 25% of a 4 GFLOP/s peak; chains: no flops
    assert "| training | 18 | 45% | 18 | 1 | 25% |" in lines
    assert "| chains | 2 | 5% | — | — | — |" in lines
    assert "| other | 20 | 50% | — | — | — |" in lines
    assert lines.index("| training") < lines.index("| chains")  # largest first
    no_peak = "\n".join(performance.kernel_breakdown(runs, peak_gflops=None))
    assert (
        "not measured in this build" in no_peak
        and "| training | 18 | 45% | 18 | 1 | — |" in no_peak
    )
    assert "recorded its kernels" in " ".join(
        performance.kernel_breakdown([{"provenance": {"wall_seconds": 5}}], 4.0)
    )


def test_the_page_counts_the_replications_seconds_too():
    records = {"10_symmetry": {**_timed(10, training=(4, 0)), **RECORDS["10_symmetry"]}}
    records["10_symmetry"]["provenance"] = {
        **RECORDS["10_symmetry"]["provenance"],
        "kernels": {"training": {"seconds": 4, "flops": 0, "calls": 1}},
    }
    text = ledger.performance_page(
        None, records, [{"10_symmetry": _timed(20, training=(8, 0))}, {}]
    )
    assert "All 2 runs of this build" in text and "| training | 12 |" in text


def test_matmul_rate_is_a_positive_rate():
    assert microbench.matmul_gflops(size=64, repeats=1) > 0
