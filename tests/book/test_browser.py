"""A real browser over the built book: headless Debian Chromium driven by Selenium.

Every HTML page of the built site (the table of contents, the generated pages, the index and
search pages), on a 1280 px screen and on a 390 px phone, loads without console errors, loads
every image and fits its screen: the document's scroll width is at most the width of its
viewport (``clientWidth``), so the page never scrolls sideways (wide tables and equations
scroll inside their own box). ``window.innerWidth`` is no measure of that: on an emulated phone
the layout viewport grows with content wider than the screen;
math is typeset by the bundled MathJax, Japanese text is drawn with real glyphs (not the empty
boxes of a missing font), and chapter code stays folded until its toggle is clicked.
Screenshots are kept under ``_build/<profile>/screenshots/``. Without a browser the tests skip
and say why, except under CI (``CI=true``), where a missing browser is a failure.
"""

import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from ghost_optima.book.build import pipeline

ROOT = Path(__file__).resolve().parents[2]
PROJECT = pipeline.Project(ROOT)


def toc_pages() -> dict[str, str]:
    """Page name -> path in the built site, for every file of ``book/_toc.yml``."""
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return {Path(f).name: f"{f}.html" for f in files}


PAGES = toc_pages()
WIDTHS = {"desktop": 1280, "phone": 390}


def pytest_generate_tests(metafunc):
    """``page``: every HTML page of the built site (the generated ones included), by its path."""
    if "page" in metafunc.fixturenames:
        profile = metafunc.config.getoption("--book-profile")
        html = PROJECT.html(profile) if profile else None
        pages = sorted(
            str(p.relative_to(html))
            for p in (html.rglob("*.html") if html and html.exists() else [])
            if not {"_sources", "_static", "_images"} & set(p.relative_to(html).parts)
        )
        metafunc.parametrize("page", pages)


# Draw a character and a private-use code point (always a missing-glyph box) on a canvas:
# identical pixels mean the browser has no font for the character.
HAS_GLYPH = """
const draw = (ch) => { const c = document.createElement('canvas'); c.width = 40; c.height = 40;
  const g = c.getContext('2d'); g.font = '32px sans-serif'; g.fillText(ch, 2, 32);
  return c.toDataURL(); };
return draw(arguments[0]) !== draw('\\uE000');
"""


@pytest.fixture(scope="module")
def site(request):
    profile = request.config.getoption("--book-profile")
    html = PROJECT.html(profile)
    handler = functools.partial(QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", PROJECT.root / "_build" / profile
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        # LinkChecker waits 0.1 to 0.6 s between two requests to one host unless the host
        # answers with this header; then it waits 1 / maxrequestspersecond (LINKCHECKER_RC).
        self.send_header("LinkChecker", "local")
        super().end_headers()

    def log_message(self, *args):
        pass


LINKCHECKER_RC = "[checking]\nmaxrequestspersecond=1000\n"


@pytest.fixture(scope="module")
def driver():
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        why = "Debian's chromium and chromium-driver are not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; .ci/run installs them")
        pytest.skip(f"{why} (apt-get install chromium chromium-driver fonts-noto-cjk)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield browser
    browser.quit()


def visit(driver, site, name: str, width: int = WIDTHS["desktop"]):
    """Load ``name`` (a page of the contents, or a path in the site) at ``width`` px."""
    base, folder = site
    path = PAGES.get(name, name)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 1600, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    driver.get(f"{base}/{path}")
    deadline = time.time() + 30
    while time.time() < deadline:  # MathJax typesets asynchronously
        state = driver.execute_script(
            "return [document.readyState, document.querySelectorAll('.math').length,"
            " document.querySelectorAll('mjx-container').length]"
        )
        if state[0] == "complete" and (state[1] == 0 or state[2] >= state[1]):
            break
        time.sleep(0.25)
    shots = folder / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    suffix = "" if width == WIDTHS["desktop"] else f"-{width}"
    shot = Path(path).with_suffix("").as_posix().replace("/", "_").removeprefix("_generated_")
    driver.save_screenshot(str(shots / f"{shot}{suffix}.png"))
    return state


@pytest.mark.parametrize("screen", list(WIDTHS))
def test_page_loads_cleanly_and_fits_the_screen(driver, site, page, screen):
    driver.get_log("browser")  # drop what earlier pages logged
    visit(driver, site, page, WIDTHS[screen])
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    broken = driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
        ".map(i => i.src)"
    )
    assert not broken, broken
    page_width, viewport = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert viewport <= WIDTHS[screen]
    assert page_width <= viewport, f"{page} is {page_width} px wide on a {viewport} px screen"


def test_chapter_code_is_folded_until_its_toggle_is_clicked(driver, site):
    visit(driver, site, "10_symmetry")
    hidden = driver.find_elements("css selector", ".cell.tag_hide-input")
    assert hidden, "no collapsed code cell on the chapter page"
    source = hidden[0].find_element("css selector", ".cell_input")
    assert not source.is_displayed()
    toggle = hidden[0].find_element("css selector", "summary, button.toggle-button")
    driver.execute_script("arguments[0].click()", toggle)
    time.sleep(0.5)
    assert source.is_displayed()
    # papermill's injected cell holds the values this run used (the defaults cell is removed)
    shown = driver.find_elements("css selector", ".cell.tag_injected-parameters .cell_input")
    assert shown and shown[0].is_displayed(), "the run's parameters must stay in view"


def test_math_is_typeset(driver, site):
    _, n_math, n_typeset = visit(driver, site, "10_symmetry")
    assert n_math > 0 and n_typeset >= n_math


def test_notebook_page_has_figures(driver, site):
    visit(driver, site, "10_symmetry")
    n_figures = driver.execute_script(
        "return Array.from(document.images).filter(i => i.naturalWidth > 200).length"
    )
    assert n_figures >= 2


def test_japanese_is_drawn_with_real_glyphs(driver, site):
    visit(driver, site, "summary_ja")
    title = driver.execute_script("return document.querySelector('h1').textContent")
    assert "経営層向け要約" in title
    assert driver.execute_script(HAS_GLYPH, "経")


def test_internal_links_resolve(site, tmp_path, request):
    # Over the local server, not file://: run as root, LinkChecker drops to user nobody, who
    # may not read a private checkout folder.
    base, _ = site
    config = tmp_path / "linkcheckerrc"
    config.write_text(LINKCHECKER_RC, encoding="utf-8")
    config.chmod(0o644)
    done = subprocess.run(
        [
            str(Path(os.sys.executable).with_name("linkchecker")),
            "--no-status",
            "--config",
            str(config),
            f"{base}/index.html",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    checked = re.search(r"in (\d+) URLs? checked", done.stdout)
    html = PROJECT.html(request.config.getoption("--book-profile"))
    pages = [p for p in html.rglob("*.html") if "_static" not in p.parts]
    assert checked and int(checked.group(1)) >= len(pages), done.stdout[-3000:]
