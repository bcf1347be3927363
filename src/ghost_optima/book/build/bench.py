"""Time the whole book and the micro-benchmarks; the book shows the table on a performance page.

``ghost-optima bench [--profiles quick full] [--in-place P ...] [--no-micro]`` copies the
tracked files of the project into a scratch folder (so the build is cold: no results, no cache),
builds each profile there twice (cold, then cached), reads every notebook's wall time from its
provenance, and runs
each ``benchmarks/*.py`` script, keeping what it prints. Everything lands in
``results/performance.json`` with the machine, core count and versions; the next build renders
it. Timings are of this machine on the day: rerun the command to refresh them.

A profile named with ``--in-place`` is timed in the project itself instead: every notebook is
forced to run (the cold pass), so the timing run also produces that profile's results; Jupyter
Book's own incremental state is kept, which the table says.
"""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ghost_optima.book.build import pipeline, provenance
from ghost_optima.book.pages.performance import PERFORMANCE_FILE


def tracked_copy(root: Path, target: Path) -> None:
    """Copy the files git tracks (or, outside git, the source folders) into ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=False
    )
    names = [n for n in listed.stdout.split("\0") if n] if listed.returncode == 0 else []
    if not names:
        names = [
            str(p.relative_to(root))
            for d in ("notebooks", "book")
            for p in (root / d).rglob("*")
            if p.is_file()
        ] + ["_config.yml", "requirements.lock"]
    for name in names:
        source = root / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def time_builds(
    project: pipeline.Project, profiles: list[str], in_place=(), log=print
) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ghost-optima-bench-") as scratch:
        fresh = pipeline.Project(Path(scratch))
        tracked_copy(project.root, fresh.root)
        for profile in profiles:
            target = project if profile in in_place else fresh
            timings = {}
            for state in ("cold", "cached"):
                log(f"timing a {state} build of the {profile} profile ...")
                started = time.perf_counter()
                pipeline.build(
                    target, profile, force=state == "cold", log=lambda text: log(f"  {text}")
                )
                timings[state] = round(time.perf_counter() - started, 1)
            notebooks = {
                stem: pipeline.load_result(target.results(profile) / f"{stem}.json")["provenance"][
                    "wall_seconds"
                ]
                for stem in target.notebook_sources()
            }
            where = "in place" if profile in in_place else "fresh copy"
            rows.append({"profile": profile, "where": where, **timings, "notebooks": notebooks})
    return rows


def run_micro(project: pipeline.Project, log=print) -> list[dict]:
    results = []
    for script in sorted((project.root / "benchmarks").glob("*.py")):
        log(f"running {script.name} ...")
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            cwd=project.root,
            timeout=1800,
        )
        results.append(
            {
                "script": script.name,
                "seconds": round(time.perf_counter() - started, 1),
                "exit_status": done.returncode,
                "output": done.stdout.strip(),
            }
        )
    return results


def bench(
    project: pipeline.Project, profiles: list[str], *, in_place=(), micro=True, log=print
) -> dict:
    for profile in [*profiles, *in_place]:  # refuse bad input before the long work
        pipeline.plan(project, profile)
    profiles = list(dict.fromkeys([*profiles, *in_place]))
    report = {
        "machine": provenance.machine(),
        "versions": provenance.versions(),
        "commit": provenance.git_state(project.root),
        "builds": time_builds(project, profiles, in_place, log),
        "micro": run_micro(project, log) if micro else [],
    }
    pipeline.write_json(project.root / "results" / PERFORMANCE_FILE, report)
    return report
