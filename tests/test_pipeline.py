"""The build pipeline on a small fixture book: caching, refusals, failures, provenance."""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ghost_optima.book.build import pipeline
from ghost_optima.book.build.profiles import ConfigError

ROOT = Path(__file__).resolve().parents[1]
HEADER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def notebook(title: str, parameters: str, body: str) -> str:
    cells = [f"```{{code-cell}} ipython3\n:tags: [parameters]\n{parameters}\n```"]
    cells += [f"```{{code-cell}} ipython3\n{code}\n```" for code in body.split("\n\n")]
    return HEADER + f"# {title}\n\n" + "\n\n".join(cells) + "\n"


def fixture_book(tmp_path: Path) -> pipeline.Project:
    """Two notebooks; the second reads a parameter and glues a number into its prose."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "book").mkdir()
    (tmp_path / "notebooks" / "10_first.md").write_text(
        notebook("First", "seed: int = 0  # seed", "value = seed * 2\nprint(value)")
    )
    (tmp_path / "notebooks" / "20_second.md").write_text(
        notebook(
            "Second",
            "scale: float = 1.5  # a number",
            "from ghost_optima.book.verdicts.record import Recorder\nrec = Recorder('20_second')\n"
            "rec.glue('doubled', 2 * scale)",
        ).replace("\n```{code-cell}", "\nDoubled: {glue:text}`doubled:.2f`.\n\n```{code-cell}", 1)
    )
    (tmp_path / "notebooks" / "profiles.yml").write_text(
        "profiles: [full, quick]\nnotebooks:\n"
        "  10_first:\n    seed: {min: 0}\n"
        "  20_second:\n    scale: {min: 0.0, quick: 0.5}\n"
    )
    (tmp_path / "book" / "intro.md").write_text("# Fixture\n\nA fixture book.\n")
    (tmp_path / "book" / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: _generated/10_first\n"
        "  - file: _generated/20_second\n  - file: _generated/ledger\n  - file: _generated/rules\n"
        "  - file: _generated/reproducibility\n  - file: _generated/summary_en\n"
        "  - file: _generated/checklist\n"
    )
    (tmp_path / "book" / "references.bib").write_text("")
    shutil.copy(ROOT / "_config.yml", tmp_path / "_config.yml")
    shutil.copytree(ROOT / "book" / "_static", tmp_path / "book" / "_static")
    return pipeline.Project(tmp_path)


@pytest.fixture
def book(tmp_path) -> pipeline.Project:
    return fixture_book(tmp_path)


@pytest.fixture(scope="module")
def first_build(tmp_path_factory):
    """The fixture book built once on the quick profile, and that build's log."""
    project = fixture_book(tmp_path_factory.mktemp("first_build"))
    return project.root, build(project, "quick")


@pytest.fixture
def built(first_build, tmp_path) -> pipeline.Project:
    """A copy of the built fixture book (the cache is keyed by content, never by path), so that
    the tests which start from a built book do not each build it again."""
    root, _ = first_build
    shutil.copytree(root, tmp_path / "built", symlinks=True)
    return pipeline.Project(tmp_path / "built")


def page_text(path: Path) -> str:
    return re.sub(r"<[^>]+>", "", path.read_text())


def build(project, *args, **kwargs):
    lines = []
    pipeline.build(project, *args, log=lines.append, **kwargs)
    return lines


def cli(project, *args):
    return subprocess.run(
        [sys.executable, "-m", "ghost_optima.book.build.cli", "--root", str(project.root), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_build_caches_and_reruns_only_what_changed(first_build, built):
    first = first_build[1]
    assert any("10_first: done" in line for line in first)
    html = built.html("quick") / "_generated" / "20_second.html"
    assert "Doubled: 1.00." in page_text(html)
    result = json.loads((built.results("quick") / "20_second.json").read_text())
    assert result["values"] == {"doubled": 1.0}
    assert result["provenance"]["parameters"] == {"scale": 0.5}
    assert set(result["provenance"]["versions"]) >= {"torch", "papermill", "jupyter-book"}

    second = build(built, "quick")
    assert second[:2] == [
        "[1/2] 10_first: cached (inputs unchanged)",
        "[2/2] 20_second: cached (inputs unchanged)",
    ]
    assert "book: unchanged, not rebuilt" in second

    third = build(built, "quick", overrides=["scale=2"])
    assert "[1/2] 10_first: cached (inputs unchanged)" in third
    assert "[2/2] 20_second: running ..." in third
    assert "Doubled: 4.00." in page_text(html)

    forced = build(built, "quick", overrides=["scale=2"], force=True, only=["first"])
    assert forced[0] == "[1/1] 10_first: running ..."


def test_a_failing_cell_is_named_and_the_book_kept(built):
    index = built.html("quick") / "index.html"
    before = index.read_bytes()
    (built.notebooks / "20_second.md").write_text(
        notebook(
            "Second",
            "scale: float = 1.5  # a number",
            "x = 1\n\nraise RuntimeError('planted failure')",
        )
    )
    with pytest.raises(pipeline.BuildError) as failure:
        build(built, "quick")
    message = str(failure.value)
    assert "notebook 20_second failed in code cell 3" in message
    assert "RuntimeError: planted failure" in message
    assert (built.failed("quick") / "20_second.ipynb").exists()
    assert index.read_bytes() == before
    # the last good result is still the one on record
    assert (
        json.loads((built.results("quick") / "20_second.json").read_text())["values"]["doubled"]
        == 1.0
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "nosuch"], "unknown profile 'nosuch'"),
        (["--set", "nosuch=1"], "unknown parameter 'nosuch'"),
        (["--set", "scale=abc"], "cannot read 'abc' as float"),
        (["--set", "seed=-3"], "below the minimum"),
        (["--only", "third"], "no such notebook"),
        (["--set", "scale=nan"], "not a finite number"),
        (["--set", "scale=-inf"], "not a finite number"),
    ],
)
def test_bad_input_is_refused_before_any_work(book, args, message):
    html = book.html("full")
    html.mkdir(parents=True)
    (html / "index.html").write_text("the last good book")
    done = cli(book, "build", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert (html / "index.html").read_text() == "the last good book"
    assert not (book.root / "results").exists()


def test_bounds_must_name_declared_parameters(book):
    (book.notebooks / "10_first.md").write_text(notebook("First", "other: int = 0  # x", "pass"))
    with pytest.raises(ConfigError, match=r"\['seed'\] not declared in the notebook's parameters"):
        pipeline.plan(book, "quick")


def test_a_stray_bounds_entry_is_refused_by_the_cli_before_any_work(book):
    (book.notebooks / "10_first.md").write_text(notebook("First", "other: int = 0  # x", "pass"))
    done = cli(book, "build", "--profile", "quick")
    assert done.returncode == 2
    assert "not declared in the notebook's parameters cell" in done.stderr
    assert not (book.root / "results").exists() and not (book.root / "_build").exists()


def test_altered_result_file_is_not_trusted(built):
    path = built.results("quick") / "20_second.json"
    record = json.loads(path.read_text())
    record["values"]["doubled"] = 99.0
    path.write_text(json.dumps(record))
    assert pipeline.load_result(path) is None
    lines = build(built, "quick")
    assert any("20_second: result file unreadable or altered" in line for line in lines)
    assert pipeline.load_result(path)["values"]["doubled"] == 1.0


def test_an_interrupted_build_leaves_nothing_trusted(book):
    (book.notebooks / "10_first.md").write_text(
        notebook(
            "First", "seed: int = 0  # seed", "import time\n\ntime.sleep(60 if seed == 0 else 0)"
        )
    )
    build(book, "quick", only=["second"], render_book=False)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ghost_optima.book.build.cli",
            "--root",
            str(book.root),
            "build",
            "--profile",
            "quick",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:  # wait until the first notebook is running, then kill the build
        if "10_first: running" in line:
            break
    time.sleep(3)
    process.kill()
    process.wait()
    assert not (book.results("quick") / "10_first.json").exists()
    lines = build(book, "quick", overrides=["seed=1"])
    assert "[1/2] 10_first: running ..." in lines
    assert "[2/2] 20_second: cached (inputs unchanged)" in lines
    assert (book.html("quick") / "index.html").exists()


def test_truncated_result_file_is_run_again(book):
    build(book, "quick", render_book=False)
    path = book.results("quick") / "10_first.json"
    path.write_text(path.read_text()[:40])
    lines = build(book, "quick", render_book=False)
    assert "[1/2] 10_first: result file unreadable or altered; running again" in lines


def test_claims_json_lists_every_registered_claim(built):
    rows = json.loads((built.results("quick") / "claims.json").read_text())["claims"]
    assert [r["id"] for r in rows][:3] == ["T1", "T2", "T3"]
    verdicts = {r["id"]: r["verdict"] for r in rows}
    # the build's own checks: a summary that covers no tested claim is not supported
    assert verdicts.pop("X1") == verdicts.pop("X2") == "not supported"
    assert set(verdicts.values()) == {"not yet tested"}
    assert {r["class"] for r in rows} == {"identity", "empirical", "deliverable"}
    history = {r["id"]: r["rule_commit"] for r in rows}
    assert history["T1"] is None  # the fixture is no git checkout: no history, and it says so


def test_the_real_notebooks_match_their_declarations():
    plan = pipeline.plan(pipeline.Project(ROOT), "quick")
    assert list(plan.notebooks) == sorted(plan.notebooks)
    toc = (ROOT / "book" / "_toc.yml").read_text()
    for stem in plan.notebooks:
        assert f"_generated/{stem}" in toc, f"{stem} is missing from book/_toc.yml"


def test_cli_lists_parameters():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ghost_optima.book.build.cli",
            "--root",
            str(ROOT),
            "params",
            "--profile",
            "quick",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "10_symmetry" in done.stdout and "n_archs" in done.stdout


def test_a_second_concurrent_build_is_refused(book):
    with pipeline._exclusive(book, "quick"):
        with pytest.raises(ConfigError, match="another build of 'quick' is running"):
            build(book, "quick")
    build(book, "quick", render_book=False)  # free again once the first one is done


def test_inputs_hash_follows_the_science_not_the_build_code(tmp_path):
    for folder in ("book/build", "book/verdicts", "symmetry"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "symmetry" / "align.py").write_text("x = 1")
    (tmp_path / "book" / "build" / "pipeline.py").write_text("y = 1")
    for name in pipeline.RESULT_MODULES:
        (tmp_path / "book" / name).write_text("T1: {}")

    before = pipeline.science_digest(tmp_path)
    (tmp_path / "book" / "build" / "pipeline.py").write_text("y = 2")
    assert pipeline.science_digest(tmp_path) == before
    (tmp_path / "book" / "claims.yml").write_text("T1: {rule: null}")
    changed = pipeline.science_digest(tmp_path)
    assert changed != before
    (tmp_path / "symmetry" / "align.py").write_text("x = 2")
    assert pipeline.science_digest(tmp_path) != changed


def test_overrides_put_a_banner_on_every_page_until_a_plain_build(built):
    def banners():
        html = built.html("quick")  # every rendered page (index.html only redirects to intro)
        pages = [
            p for p in html.rglob("*.html") if "_static" not in p.parts and p != html / "index.html"
        ]
        return [("parameter overrides" in p.read_text(encoding="utf-8")) for p in pages]

    assert not any(banners())
    build(built, "quick", overrides=["20_second.scale=2"])
    assert all(banners()) and len(banners()) >= 5
    rows = json.loads((built.results("quick") / "claims.json").read_text())["claims"]
    ledger = (built.html("quick") / "_generated" / "ledger.html").read_text(encoding="utf-8")
    assert "20_second: scale=2" in ledger
    assert all(r["overrides"] == {} for r in rows)  # no claim comes from 20_second
    build(built, "quick")  # the plain build runs 20_second again with the profile's value
    assert not any(banners())


def test_a_changed_static_file_reaches_the_built_book(built):
    stylesheet = built.book / "_static" / "print.css"
    stylesheet.write_text(stylesheet.read_text() + "\n/* changed */\n")
    build(built, "quick")
    assert "/* changed */" in (built.html("quick") / "_static" / "print.css").read_text()


def test_a_second_build_with_nothing_changed_does_no_work(built, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("a cached build regenerated the pages")

    for name in ("collect_claims", "render", "run_notebook"):
        monkeypatch.setattr(pipeline, name, must_not_run)
    lines = build(built, "quick")
    assert "book: unchanged, not rebuilt" in lines
    (built.book / "intro.md").write_text("# Fixture\n\nChanged prose.\n")
    with pytest.raises(AssertionError, match="regenerated the pages"):
        build(built, "quick")  # a changed source page is rendered again
