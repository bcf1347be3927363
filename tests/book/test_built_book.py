"""Checks of a built book (``pytest tests/book --book-profile quick`` after a build)."""

import html
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from ghost_optima.book.build import cluster, pipeline, results
from ghost_optima.book.pages.key_figures import plain_figure
from ghost_optima.book.verdicts import claims

ROOT = Path(__file__).resolve().parents[2]
PROJECT = pipeline.Project(ROOT)


@pytest.fixture(scope="module")
def profile(request) -> str:
    name = request.config.getoption("--book-profile")
    if not (PROJECT.html(name) / "index.html").exists():
        pytest.fail(
            f"no book built for profile {name!r}: run `ghost-optima build --profile {name}`"
        )
    return name


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def text(path: Path) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8")))


def test_every_page_of_the_toc_is_rendered(profile):
    for name in toc_files():
        assert (PROJECT.html(profile) / f"{name}.html").exists(), name


def test_claims_json_has_one_entry_per_registered_claim(profile):
    rows = json.loads((PROJECT.results(profile) / "claims.json").read_text())["claims"]
    assert [row["id"] for row in rows] == list(claims.registry())
    for row in rows:
        assert row["verdict"] in (*claims.VERDICTS, claims.NOT_TESTED)
        if row["verdict"] != claims.NOT_TESTED:
            assert row["key"] in row["figures"], row["id"]
    tested = {row["id"] for row in rows if row["verdict"] != claims.NOT_TESTED}
    assert {"T1", "T2"} <= tested


def test_ledger_shows_the_same_verdicts_as_the_json(profile):
    rows = json.loads((PROJECT.results(profile) / "claims.json").read_text())["claims"]
    page = text(PROJECT.html(profile) / "_generated" / "ledger.html")
    for row in rows:
        assert re.search(rf"\b{row['id']}\b .*? {re.escape(row['verdict'])}", page), row["id"]


def test_executed_notebooks_are_clean(profile):
    for stem in PROJECT.notebook_sources():
        notebook = nbformat.read(PROJECT.executed(profile) / f"{stem}.ipynb", as_version=4)
        assert not notebook.metadata.papermill.get("exception")
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            assert cell.execution_count is not None, f"{stem}: a cell did not run"
            for output in cell.outputs:
                assert output.output_type != "error", stem
                if output.get("name") == "stderr":
                    assert "Warning" not in output.text, f"{stem} warns: {output.text[:300]}"


def test_no_page_shows_a_traceback(profile):
    for page in (PROJECT.html(profile) / "_generated").glob("*.html"):
        content = page.read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" not in content, page.name
        assert "An Exception was encountered" not in content, page.name


def test_same_profile_gives_the_same_recorded_values(profile):
    """Determinism: a second run of a claim notebook (the quickest, chapter 55, which trains
    ensembles, aligns them and resamples), with the parameters and threads of the build, records
    the same values, claim figures included, as the build did. The run happens in a scratch
    folder (``cluster.run_task``): the built book and its results are not touched, so the other
    checks may read them meanwhile. Its kernel starts the ordinary way (tests/conftest.py),
    where the build forked its kernels from a zygote: the check compares the two as well."""
    stem = "55_label_noise"
    job = pipeline.plan(PROJECT, profile, only=[stem], replications=0)
    task = pipeline.tasks(PROJECT, job)[0]
    stored = results.load_result(PROJECT.results(profile) / f"{stem}.json")
    assert stored and stored["inputs_hash"] == task.key, "the build's result is not this source's"
    payload = cluster.run_task(cluster.task_spec(PROJECT, job, task))
    assert payload["returncode"] == 0, payload.get("log")
    again = payload["record"]
    assert again["claims"] == stored["claims"] and again["claims"]
    assert again["values"] == stored["values"]


def test_executive_pages_show_the_recorded_numbers(profile):
    rows = json.loads((PROJECT.results(profile) / "claims.json").read_text())["claims"]
    rows = [row for row in rows if row["class"] != "deliverable"]  # the pages themselves
    folder = PROJECT.html(profile) / "_generated"
    pages = {lang: without_math_delimiters(text(folder / f"summary_{lang}.html")) for lang in LANGS}
    assert re.search(r"[\u3040-\u30ff]", pages["ja"])
    for row in rows:
        if row["verdict"] == claims.NOT_TESTED:
            continue
        for lang in LANGS:
            shown = plain_figure(row["figures"][row["key"]], lang, row["key_unit"])
            figure = without_math_delimiters(shown)
            assert figure in pages[lang], (row["id"], lang, figure)
    board = claims.scoreboard(rows)
    tally = ", ".join(f"{n} {verdict}" for verdict, n in board["empirical"].items())
    assert f"Empirical findings: {tally}." in pages["en"]
    checklist = text(folder / "checklist.html")
    assert "P1" in checklist and "P4" in checklist


LANGS = ("en", "ja")


def without_math_delimiters(page: str) -> str:
    return page.replace("$", "").replace("\\(", "").replace("\\)", "")


def article_text(path: Path) -> str:
    """The text of a page's article (no navigation), tags stripped, entities decoded."""
    content = path.read_text(encoding="utf-8")
    start = content.index("<article")
    return html.unescape(text_of(content[start : content.index("</article>", start)]))


def text_of(markup: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup))


@pytest.mark.parametrize("page", ["summary_en", "summary_ja", "checklist", "ledger"])
def test_pages_for_people_name_no_variable(profile, page):
    words = article_text(PROJECT.html(profile) / "_generated" / f"{page}.html")
    words = re.sub(r"\\\(.*?\\\)|\\\[.*?\\\]", " ", words)  # math is notation, not names
    names = sorted(set(re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", words)))
    assert not names, f"{page} shows variable names: {names}"


def test_executed_notebooks_are_downloadable(profile):
    for stem in PROJECT.notebook_sources():
        page = (PROJECT.html(profile) / "_generated" / f"{stem}.html").read_text(encoding="utf-8")
        assert f"_sources/_generated/{stem}.ipynb" in page, stem
        served = PROJECT.html(profile) / "_sources" / "_generated" / f"{stem}.ipynb"
        notebook = nbformat.read(served, as_version=4)
        assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


@pytest.mark.parametrize("stem", ["10_symmetry", "20_critical_points", "30_sgd_stationary"])
def test_theory_chapters_state_theorems_with_proofs(profile, stem):
    page = (PROJECT.html(profile) / "_generated" / f"{stem}.html").read_text(encoding="utf-8")
    assert re.search(r'class="[^"]*\bproof\b[^"]*\b(theorem|proposition)\b', page), stem
    assert re.search(r'class="[^"]*\bproof\b[^"]*\bproof\b|class="proof admonition"', page), stem


def test_every_chapter_numbers_its_figures_and_cites_each_one(profile):
    for stem in PROJECT.notebook_sources():
        page = (PROJECT.html(profile) / "_generated" / f"{stem}.html").read_text(encoding="utf-8")
        numbered = re.findall(r'<figure[^>]*id="(fig-[^"]+)"', page)
        assert numbered, f"{stem} has no numbered figure"
        for name in numbered:
            assert f'href="#{name}"' in page, f"{stem}: {name} is never referred to"
