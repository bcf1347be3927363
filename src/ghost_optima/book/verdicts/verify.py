"""Replications: the claim notebooks re-run with disjoint base seeds, and the robustness report.

Every build of a profile adds, for each notebook that tests a claim with a registered rule,
``n`` replications (the profile's ``replications`` setting in ``profiles.yml``, or
``--replications``; ``ghost-optima verify --seeds n`` is the same build): replication ``i``
runs with the notebook's base ``seed`` shifted by ``SEED_STRIDE * i`` (``i = 1..n``), so the
seeds of the published run and of every replication are disjoint whenever a notebook draws fewer
than ``SEED_STRIDE`` seeds from its base. They are tasks of the same build (``cluster``) and are
cached like any run; their results land in ``results/verify/<profile>/run-<i>/`` and never touch
the published ones. ``report`` turns them into ``robustness.json`` beside the profile's results:
per claim, the verdict of each replication, how many agree with the recorded verdict, the
range of the key figure and each replication's key figure (with its interval, which
``calibration`` reads); the ledger shows it, and ``claims.json`` carries it (but the key
figures) for empirical claims.

**A smaller published profile.** A published value that shrinks to fit the build's budget
(issue #24) stands only where two full builds, each a main run and its replications, the one
at the old profile and the one at the new, give every claim of the changed notebooks the same
verdict in the main run, and the new build at least as many agreeing replications as the old
(``cut_holds``; ``ghost-optima cut-check OLD NEW`` prints it from the two ``robustness.json``).
Otherwise that notebook's values go back. The rule was fixed before any cut was measured.
"""

import math

from ghost_optima.book.verdicts import claims
from ghost_optima.book.verdicts.claims import figure_value

SEED_STRIDE = 1000
ROW_FIELDS = ("runs", "agree", "verdicts", "key_min", "key_max")


def claim_notebooks(stems) -> list[str]:
    """Of ``stems`` (in build order), those that test a claim with a registered rule."""
    tested = {c.notebook for c in claims.registry().values() if c.rule is not None}
    return [stem for stem in stems if stem in tested]


def outputs(profile: str, replication: int) -> str:
    """The output key (folder under ``results/``) of one replication of ``profile``."""
    return f"verify/{profile}/run-{replication}"


def replica_parameters(parameters: dict, replication: int) -> dict:
    """A notebook's parameters for replication ``replication``: its base seed shifted."""
    return {**parameters, "seed": parameters["seed"] + SEED_STRIDE * replication}


def report(rows: list[dict], replicas: list[dict[str, dict | None]]) -> dict:
    """``robustness.json``: claims of notebooks whose every replication has a current result.

    ``rows``: the ledger (``claims.ledger`` plus the build's fields); ``replicas``: per
    replication, notebook -> its result record (None when missing or out of date).
    """
    current = [{stem for stem, record in run.items() if record} for run in replicas]
    stems = set.intersection(*current) if current else set()
    runs = []
    for run in replicas:
        recorded = {
            cid: {**entry, "notebook": stem}
            for stem in stems
            for cid, entry in run[stem].get("claims", {}).items()
        }
        runs.append(claims.ledger(recorded))
    found = robustness([row for row in rows if row["notebook"] in stems], runs)
    return {**found, "replications": len(replicas)}


def robustness(recorded: list[dict], runs: list[list[dict]]) -> dict:
    """Per tested claim: verdicts across runs, agreement with ``recorded``, key-figure range,
    and each run's key figure (``key_figures``, None where a run recorded none)."""
    by_id = {row["id"]: row for row in recorded}
    report = {}
    for cid, row in by_id.items():
        if row["verdict"] == claims.NOT_TESTED:
            continue
        again = [next(r for r in run if r["id"] == cid) for run in runs]
        values = [figure_value(r["figures"][r["key"]]) for r in again if r["key"]]
        report[cid] = {
            "recorded": row["verdict"],
            "verdicts": [r["verdict"] for r in again],
            "agree": sum(r["verdict"] == row["verdict"] for r in again),
            "runs": len(again),
            "key": row["key"],
            "key_min": min(values, default=float("nan")),
            "key_max": max(values, default=float("nan")),
            "key_figures": [r["figures"].get(r["key"]) if r["key"] else None for r in again],
        }
    return {"seed_stride": SEED_STRIDE, "claims": report}


def attach(rows: list[dict], found: dict) -> None:
    """Give each empirical claim's ledger row its ``robustness`` (runs, agree, verdicts, range);
    a range no replication recorded a key figure for is ``None``, not NaN (plain JSON)."""
    for row in rows:
        entry = found["claims"].get(row["id"])
        if entry and row["class"] == "empirical":
            row["robustness"] = {
                name: None
                if isinstance(entry[name], float) and math.isnan(entry[name])
                else entry[name]
                for name in ROW_FIELDS
            }


def cut_holds(before: dict, after: dict) -> dict[str, dict]:
    """Whether a smaller profile keeps each claim's verdict (the module's rule for cuts).

    ``before``, ``after``: ``robustness.json`` of a full build (main run and replications) at
    the old and at the new profile. For each claim in both: ``before`` and ``after`` as
    ``(verdict, agreeing replications, replications)`` and ``holds``: the main run's verdict
    is the same and at least as many replications agree with it. A claim in only one of them
    is not compared (its notebook was not built in both)."""
    old, new = before["claims"], after["claims"]
    found = {}
    for cid in sorted(old.keys() & new.keys()):
        a, b = old[cid], new[cid]
        found[cid] = {
            "before": (a["recorded"], a["agree"], a["runs"]),
            "after": (b["recorded"], b["agree"], b["runs"]),
            "holds": b["recorded"] == a["recorded"] and b["agree"] >= a["agree"],
        }
    return found
