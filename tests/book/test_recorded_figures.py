"""The recorded claims of a built book: every interval holds its point, every entry can be audited.

Run on an already built profile: ``pytest tests/book --book-profile quick``.
"""

import json
from pathlib import Path

import pytest

from ghost_optima.book.build import pipeline, profiles
from ghost_optima.book.verdicts import claims

ROOT = Path(__file__).resolve().parents[2]
PROJECT = pipeline.Project(ROOT)


@pytest.fixture(scope="module")
def rows(request) -> list[dict]:
    name = request.config.getoption("--book-profile")
    path = PROJECT.results(name) / "claims.json"
    if not path.exists():
        pytest.fail(
            f"no claims.json for profile {name!r}: run `ghost-optima build --profile {name}`"
        )
    return json.loads(path.read_text(encoding="utf-8"))["claims"]


def test_every_recorded_interval_contains_its_point_estimate(rows):
    """Issue 13, must-show 2: over every figure of every claim, ``lo <= value <= hi``."""
    checked, outside = 0, []
    for row in rows:
        for path, figure in claims.intervals(row["figures"]):
            checked += 1
            if claims.outside_interval(figure):
                outside.append(
                    f"{row['id']} {path}: {figure['value']:.6g} not in "
                    f"[{figure['lo']:.6g}, {figure['hi']:.6g}]"
                )
    assert checked > 0, "no interval figure was recorded: nothing was checked"
    assert not outside, "intervals that miss their point estimate:\n" + "\n".join(outside)


def test_every_entry_carries_its_class_and_commits(rows):
    """Issue 16, must-show 1: class, the rule's commit and the results' commit on every entry
    (a deliverable is judged by the build, so its results commit may be empty)."""
    registry = claims.registry()
    for row in rows:
        assert row["class"] == registry[row["id"]].kind, row["id"]
        assert {"rule_commit", "results_commit"} <= row.keys(), row["id"]
        if row["verdict"] != claims.NOT_TESTED and git_available():
            assert row["rule_commit"], f"{row['id']}: no rule commit"
            if row["class"] != "deliverable":
                assert row["results_commit"], f"{row['id']}: no results commit"


def test_the_published_profile_asks_for_at_least_four_replications():
    """Issue 16, must-show 1: the book ``make book`` publishes replicates every claim notebook
    at least ``claims.MIN_REPLICATIONS`` times (the quick profile may ask for fewer)."""
    declared = profiles.load(PROJECT.notebooks)
    assert declared.setting(pipeline.PUBLISHED, "replications") >= claims.MIN_REPLICATIONS


def test_every_empirical_claim_has_its_profiles_replications(rows, request):
    """Issue 16, must-show 1: ``robustness`` with as many runs as the built profile asks for
    (at least 4 on the published one) and ``agree`` for every tested empirical claim,
    consistent with the verdicts it lists and its key-figure range."""
    name = request.config.getoption("--book-profile")
    wanted = profiles.load(PROJECT.notebooks).setting(name, "replications")
    for row in rows:
        if row["class"] != "empirical" or row["verdict"] == claims.NOT_TESTED or not wanted:
            continue
        entry = row.get("robustness")
        assert entry, f"{row['id']}: no replications recorded"
        assert entry["runs"] >= wanted, row["id"]
        assert len(entry["verdicts"]) == entry["runs"], row["id"]
        assert entry["agree"] == sum(v == row["verdict"] for v in entry["verdicts"]), row["id"]
        assert entry["key_min"] <= entry["key_max"], row["id"]


def git_available() -> bool:
    return (ROOT / ".git").exists()


def test_the_built_ledger_shows_commits_and_replications(rows, request):
    profile = request.config.getoption("--book-profile")
    page = (PROJECT.html(profile) / "_generated" / "ledger.html").read_text(encoding="utf-8")
    for row in rows:
        if row.get("rule_commit"):
            assert row["rule_commit"][:10] in page, row["id"]
        if row.get("results_commit"):
            assert row["results_commit"][:10] in page, row["id"]
        entry = claims.replications(row)
        if entry:
            assert f"{entry['agree']}/{entry['runs']} same verdict" in page, row["id"]
        if claims.is_unstable(row):
            named = page.split("not under their verdict):")[1].split(".")[0]
            assert row["id"] in named.replace(",", " ").split(), row["id"]


def test_every_empirical_key_figure_has_its_replication_ratio(rows, request):
    """Issue 24, must-show: ``calibration.json`` gives every empirical key figure with
    replications its spread over its within-run SE, recomputed here with numpy from the main
    run's key figure and the replications' (``robustness.json``); the ledger shows the table
    and names every overdispersed key figure, main run outside its replications and
    underpowered claim."""
    import numpy as np

    from ghost_optima.book.verdicts import calibration

    profile = request.config.getoption("--book-profile")
    folder = PROJECT.results(profile)
    found = json.loads((folder / "calibration.json").read_text(encoding="utf-8"))["claims"]
    again = json.loads((folder / "robustness.json").read_text(encoding="utf-8"))["claims"]
    page = (PROJECT.html(profile) / "_generated" / "ledger.html").read_text(encoding="utf-8")
    checked = 0
    for row in rows:
        if row["class"] != "empirical" or row["id"] not in again:
            continue
        figures = [row["figures"][row["key"]], *again[row["id"]]["key_figures"]]
        entry = found[row["id"]]
        assert row["calibration"]["replication_ratio"] == entry["replication_ratio"], row["id"]
        values = [claims.figure_value(f) for f in figures]
        assert entry["spread"] == pytest.approx(np.std(values, ddof=1)), row["id"]
        if all(isinstance(f, dict) and "lo" in f for f in figures):
            se = np.mean([(f["hi"] - f["lo"]) / (2 * calibration.Z95) for f in figures])
            if se > 0:
                assert entry["replication_ratio"] == pytest.approx(np.std(values, ddof=1) / se)
                checked += 1
        if entry["overdispersed"] or not entry["main_agrees"] or calibration.underpowered(row):
            named = page[page.index("Calibration and power") :]
            assert row["id"] in named, row["id"]
    wanted = profiles.load(PROJECT.notebooks).setting(profile, "replications")
    if wanted:
        assert checked > 0, "no key figure with intervals had its ratio checked"
        assert "Calibration and power" in page
