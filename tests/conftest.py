"""Shared test options: ``--book-profile P`` turns on the checks of an already built book."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
