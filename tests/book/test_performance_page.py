"""The performance page of a built book is filled by the build itself (issue 16)."""

import html
import json
import re
from pathlib import Path

import pytest

from ghost_optima.book.build import pipeline
from ghost_optima.book.pages.performance import BENCH_CHAPTER

ROOT = Path(__file__).resolve().parents[2]
PROJECT = pipeline.Project(ROOT)


@pytest.fixture(scope="module")
def profile(request) -> str:
    return request.config.getoption("--book-profile")


def article(path: Path) -> str:
    content = path.read_text(encoding="utf-8")
    start = content.index("<article")
    body = content[start : content.index("</article>", start)]
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def test_the_page_gives_every_notebooks_time_and_the_side_by_side_table(profile):
    page = article(PROJECT.html(profile) / "_generated" / "performance.html")
    assert "Not measured yet" not in page and "not part of this build" not in page
    for stem in PROJECT.notebook_sources():
        record = json.loads((PROJECT.results(profile) / f"{stem}.json").read_text())
        seconds = record["provenance"]["wall_seconds"]
        assert f"{stem} {seconds:.1f} " in page, stem
    rows = json.loads((PROJECT.results(profile) / f"{BENCH_CHAPTER}.json").read_text())
    rows = rows["values"]["benchmarks"]
    assert len(rows) == 3
    for row in rows:
        assert f"{row['speedup']:.3g}×" in page, row["task"]
        assert row["slow_seconds"] > 0 and row["fast_seconds"] > 0


def test_both_methods_of_every_comparison_give_the_same_answer(profile):
    record = json.loads((PROJECT.results(profile) / f"{BENCH_CHAPTER}.json").read_text())
    eigen, ensemble, matching = record["values"]["benchmarks"]
    assert eigen["check_value"] < 1e-6  # relative difference of the top eigenvalues
    assert ensemble["check_value"] < 1e-5  # same seeds, same networks
    assert abs(matching["check_value"]) < 1e-9  # one hidden layer: the optimum
