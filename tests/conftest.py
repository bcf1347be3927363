"""Shared test options: ``--book-profile P`` turns on the checks of an already built book.

The tests' own builds start every kernel the ordinary way (``GHOST_OPTIMA_WARM_KERNELS=0``):
their notebooks import little, and a zygote per build process and Dask worker would cost more
than it saves. ``tests/test_warm_kernels.py`` drives the zygote itself, and the quick book of
``make test`` is built with it, so the built-book determinism check reruns a notebook with a
fresh kernel against values recorded by a forked one.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("GHOST_OPTIMA_WARM_KERNELS", "0")


def pytest_addoption(parser):
    parser.addoption(
        "--book-profile",
        default=None,
        help="check the book built for this profile (tests/book); off by default",
    )


def pytest_ignore_collect(collection_path, config):
    if config.getoption("--book-profile") is None:
        return collection_path == ROOT / "tests" / "book" or None
    return None
