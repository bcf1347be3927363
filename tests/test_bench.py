"""The performance page and the cold-build copy."""

import subprocess

from ghost_optima.book import bench, pages

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
    text = pages.performance_page(REPORT, RECORDS)
    assert "2 cores" in text and "torch 2.13.0" in text and "numpy" not in text
    assert "| quick | fresh copy | 61.5 | 1.2 |" in text
    assert "| full | fresh copy | 900.0 | 2.0 |" in text
    assert "| 10_symmetry | 12.0 | 30.5 |" in text
    assert "x 10 s" in text


def test_page_without_bench_still_gives_this_builds_timings():
    text = pages.performance_page(None, RECORDS)
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
