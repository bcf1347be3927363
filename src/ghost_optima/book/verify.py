"""Reviewer mode: re-run the claim notebooks with other base seeds and report robustness.

``ghost-optima verify --seeds K --profile P`` runs every notebook that tests a claim ``K`` more
times, run ``i`` with base seed ``seed + 1000 i`` (each notebook's declared ``seed`` shifted),
into its own folders (``results/verify/P/run-i/``), so nothing published is touched. It then
writes ``robustness.json`` beside the profile's results: per claim, the verdict of each run, how
many agree with the recorded verdict, and the range of the key figure. The ledger shows it.
"""

import json

from . import claims, pipeline, profiles
from .claims import figure_value
from .profiles import ConfigError

SEED_STRIDE = 1000


def claim_notebooks(project: pipeline.Project) -> list[str]:
    """Notebooks that test at least one claim with a registered rule, in build order."""
    tested = {c.notebook for c in claims.registry().values() if c.rule is not None}
    return [stem for stem in project.notebook_sources() if stem in tested]


def verify(project: pipeline.Project, profile: str, n_seeds: int, *, log=print) -> dict:
    if n_seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {n_seeds}")
    declared = profiles.load(project.notebooks)
    declared.check_profile(profile)
    stems = claim_notebooks(project)
    unseeded = [stem for stem in stems if "seed" not in declared.notebooks[stem]]
    if unseeded:
        raise ConfigError(f"claim notebooks without a 'seed' parameter: {unseeded}")
    pipeline.plan(project, profile)  # every input checked before the first run
    runs = []
    for run in range(1, n_seeds + 1):
        overrides = [
            f"{stem}.seed={declared.notebooks[stem]['seed'].values[profile] + SEED_STRIDE * run}"
            for stem in stems
        ]
        key = f"verify/{profile}/run-{run}"
        log(f"verify run {run}/{n_seeds}: base seeds shifted by {SEED_STRIDE * run}")
        pipeline.build(
            project,
            profile,
            only=stems,
            overrides=overrides,
            outputs=key,
            render_book=False,
            log=lambda text: log(f"  {text}"),
        )
        runs.append(json.loads((project.results(key) / "claims.json").read_text("utf-8")))
    recorded = pipeline.load_claims(project, profile)
    report = robustness(recorded, [r["claims"] for r in runs])
    pipeline.write_json(project.results(profile) / "robustness.json", report)
    for cid, entry in report["claims"].items():
        log(
            f"{cid}: {entry['agree']}/{entry['runs']} runs give '{entry['recorded']}'; "
            f"key figure from {entry['key_min']:.3g} to {entry['key_max']:.3g}"
        )
    return report


def robustness(recorded: list[dict], runs: list[list[dict]]) -> dict:
    """Per tested claim: verdicts across runs, agreement with ``recorded``, key-figure range."""
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
        }
    return {"seed_stride": SEED_STRIDE, "claims": report}
