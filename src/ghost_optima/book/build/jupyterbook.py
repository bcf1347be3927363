"""Render a book with Jupyter Book, atomically: the last good HTML survives any failure.

The sources are written into a work folder (only files that changed are rewritten, so Sphinx
rebuilds only the pages that changed), Jupyter Book renders them with warnings as errors, and
the result replaces the published HTML in one rename. A digest of the sources and the
configuration skips the render when nothing changed.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ghost_optima.book.build import provenance


class BuildError(RuntimeError):
    """A notebook or the book failed; the message names what and where."""


def build_html(work: Path, config: bytes, files: dict[Path, bytes], html: Path, log=print) -> None:
    """Render ``files`` (paths relative to the book's source folder) with ``config`` into
    ``html``, working in ``work``; raise :class:`BuildError` and keep ``html`` on failure."""
    source = work / "book"
    book_hash = provenance.digest(
        config, *(b for rel in sorted(files) for b in (str(rel).encode(), files[rel]))
    )
    stamp = work / "book.sha256"
    if html.joinpath("index.html").exists() and stamp.exists() and stamp.read_text() == book_hash:
        log("book: unchanged, not rebuilt")
        return
    _write_if_changed(work / "_config.yml", config)
    if any(rel.parts[0] == "_static" for rel in _sync(source, files)):
        # An incremental Sphinx build keeps the static files it copied before: start afresh
        shutil.rmtree(work / "_build", ignore_errors=True)
    log("book: rendering with Jupyter Book ...")
    started = time.perf_counter()
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("jupyter-book")),
            "build",
            str(source),
            "--config",
            str(work / "_config.yml"),
            "--toc",
            str(source / "_toc.yml"),
            "--path-output",
            str(work),
            "-W",
            "-n",
            "--keep-going",
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    built = work / "_build" / "html"
    if done.returncode != 0 or not (built / "index.html").exists():
        (work / "jupyter-book.log").write_text(done.stdout + done.stderr, encoding="utf-8")
        tail = "\n  ".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise BuildError(f"Jupyter Book failed; the previous book was kept:\n  {tail}")
    _swap(built, html)
    stamp.write_text(book_hash)
    log(f"book: rendered to {html} in {time.perf_counter() - started:.1f} s")


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` unless ``path`` already holds it (keeping its timestamp); say if it did."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def _sync(folder: Path, files: dict[Path, bytes]) -> set[Path]:
    """Make ``folder`` hold exactly ``files``, rewriting only what changed; return what did.

    Unchanged files keep their timestamps, so Sphinx rebuilds only the pages that changed.
    """
    changed = set()
    for rel, data in files.items():
        if _write_if_changed(folder / rel, data):
            changed.add(Path(rel))
    if folder.exists():
        for p in folder.rglob("*"):
            if p.is_file() and p.relative_to(folder) not in files:
                p.unlink()
                changed.add(p.relative_to(folder))
    return changed


def _swap(built: Path, html: Path) -> None:
    fresh, old = html.with_name(html.name + ".new"), html.with_name(html.name + ".old")
    for leftover in (fresh, old):
        shutil.rmtree(leftover, ignore_errors=True)
    shutil.copytree(built, fresh)
    if html.exists():
        os.replace(html, old)
    os.replace(fresh, html)
    shutil.rmtree(old, ignore_errors=True)
