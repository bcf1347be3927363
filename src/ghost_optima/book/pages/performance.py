"""The performance page: what this build measured, filled by the build that publishes the book.

Three sources, in this order on the page:

1. the wall time of every notebook of this build, from each result's provenance, and where the
   task-seconds of the whole build (published runs and replications) went, kernel by kernel
   (``ghost_optima.core.timing``), with each kernel's throughput against the matmul peak the
   performance chapter measures;
2. the side-by-side micro-benchmarks of the performance chapter (``BENCH_CHAPTER``), a notebook
   the normal build runs on the published profile like any other; it records its rows
   (``microbench`` row dicts) as the glued value ``benchmarks``;
3. when ``ghost-optima bench`` has been run, its cold and cached whole-book builds and the
   output of the ``benchmarks/*.py`` scripts (``results/performance.json``).
"""

import json
from pathlib import Path

PERFORMANCE_FILE = "performance.json"
BENCH_CHAPTER = "90_performance"


def load_performance(root: Path) -> dict | None:
    """The report ``ghost-optima bench`` left in ``root/results``, or None."""
    path = root / "results" / PERFORMANCE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _commit(prov: dict) -> str:
    return (prov["commit"] or "none")[:10] + (" (dirty)" if prov["dirty"] else "")


def _seconds(x: float) -> str:
    return f"{x:.3g}" if x < 10 else f"{x:.0f}"


def side_by_side(records: dict[str, dict]) -> list[str]:
    """The chapter's rows as a table, or a sentence saying the chapter is not in this build."""
    record = records.get(BENCH_CHAPTER) or {}
    rows = record.get("values", {}).get("benchmarks")
    if not rows:
        return [
            f"The benchmark chapter ({BENCH_CHAPTER}) is not part of this build, so there is no "
            "side-by-side table here.",
            "",
        ]
    prov = record.get("provenance", {})
    where = (
        f" on the `{prov['profile']}` profile with {prov['threads']} thread(s), commit "
        f"`{_commit(prov)}`"
        if prov
        else ""
    )
    lines = [
        f"Each faster method against the plain one it replaces, on the same input, measured by "
        f"the chapter {{doc}}`{BENCH_CHAPTER}` when this build ran it{where}. Seconds are the "
        "best of the chapter's repeats; the last column checks that both give the same answer.",
        "",
        "| task | size | fast method (s) | plain method (s) | speed-up | check |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['task']} | {row['size']} | {row['fast']}: {_seconds(row['fast_seconds'])} "
            f"| {row['slow']}: {_seconds(row['slow_seconds'])} | {row['speedup']:.3g}× "
            f"| {row['check']}: {row['check_value']:.2g} |"
        )
    return [*lines, ""]


def kernel_breakdown(records: list[dict], peak_gflops: float | None) -> list[str]:
    """Task-seconds of ``records`` (every run of the build) by kernel, as a table: seconds, share
    of all task-seconds, counted work and throughput, against ``peak_gflops`` (a plain matmul's
    rate on this machine, or None); the rest of each task (kernel start, imports, plotting,
    glue) is the row "other"."""
    wall = sum(r["provenance"]["wall_seconds"] for r in records)
    kernels: dict[str, list[float]] = {}
    for record in records:
        for name, k in record["provenance"].get("kernels", {}).items():
            seconds, flops = kernels.setdefault(name, [0.0, 0.0])
            kernels[name] = [seconds + k["seconds"], flops + k["flops"]]
    if not wall or not kernels:
        return ["No run of this build recorded its kernels' seconds.", ""]
    peak = f"{peak_gflops:.3g} GFLOP/s" if peak_gflops else "not measured in this build"
    lines = [
        f"All {len(records)} runs of this build (published and replications) took {wall:.0f} "
        f"task-seconds. Where they went, by kernel, each counted once (a kernel inside another "
        f"pauses it); the matmul peak, a 512 x 512 single-precision product on one thread "
        f"measured by the performance chapter, is {peak}.",
        "",
        "| kernel | task-seconds | share | GFLOP | GFLOP/s | of matmul peak |",
        "|---|---|---|---|---|---|",
    ]
    for name, (seconds, flops) in sorted(kernels.items(), key=lambda kv: -kv[1][0]):
        rate = flops / seconds / 1e9 if flops and seconds else None
        cells = [f"{flops / 1e9:.3g}", f"{rate:.3g}"] if rate else ["—", "—"]
        share = f"{100 * rate / peak_gflops:.0f}%" if rate and peak_gflops else "—"
        lines.append(
            f"| {name} | {seconds:.0f} | {100 * seconds / wall:.0f}% | {cells[0]} | {cells[1]} "
            f"| {share} |"
        )
    other = wall - sum(seconds for seconds, _ in kernels.values())
    lines += [f"| other | {other:.0f} | {100 * other / wall:.0f}% | — | — | — |", ""]
    return lines


def performance_page(
    report: dict | None, records: dict[str, dict], replications: list[dict] = ()
) -> str:
    """Wall times of this build's notebooks (from their provenance), the task-seconds of every
    run (``records`` and the ``replications``' records) by kernel, the benchmark chapter's
    side-by-side table, then what ``ghost-optima bench`` measured, when it has been run."""
    lines = ["(performance)=", "# Performance", "", "## This build", ""]
    lines += [
        "Seconds each notebook took when its recorded results were computed, with the threads "
        "it used (from each result's provenance).",
        "",
        "| notebook | seconds | threads | commit |",
        "|---|---|---|---|",
    ]
    for stem, record in records.items():
        prov = record["provenance"]
        lines.append(
            f"| {stem} | {prov['wall_seconds']:.1f} | {prov['threads']} | {_commit(prov)} |"
        )
    total = sum(r["provenance"]["wall_seconds"] for r in records.values())
    lines += ["", f"All notebooks together: {total:.0f} s.", "", "## Where the seconds go", ""]
    every = [*records.values(), *(r for run in replications for r in run.values() if r)]
    peak = (records.get(BENCH_CHAPTER) or {}).get("values", {}).get("matmul_gflops")
    lines += kernel_breakdown(every, peak)
    lines += ["## Side by side", ""]
    lines += side_by_side(records)
    lines += ["## Whole-book builds", ""]
    if report is None:
        return "\n".join(
            lines
            + [
                "Cold and cached timings of whole builds, and the scripts under `benchmarks/`, "
                "come from `ghost-optima bench`, which was not run for this build.",
                "",
            ]
        )
    machine = report["machine"]
    lines += [
        f"Measured on `{machine['platform']}` ({machine['processor']}, {machine['cpu_count']} "
        f"cores), commit `{(report['commit']['commit'] or 'none')[:10]}`, with "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
        + ". A cold build on a fresh copy starts from the tracked files alone (no results, no "
        "cache); in place, every notebook is forced to run but Jupyter Book keeps its own "
        "incremental state. A cached build follows with nothing changed.",
        "",
        "| profile | where | cold build (s) | cached rebuild (s) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {b['profile']} | {b.get('where', 'fresh copy')} | {b['cold']} | {b['cached']} |"
        for b in report["builds"]
    ]
    if report["builds"]:
        profiles = [b["profile"] for b in report["builds"]]
        lines += [
            "",
            "Seconds per notebook (cold):",
            "",
            "| notebook | " + " | ".join(profiles) + " |",
            "|---|" + "---|" * len(profiles),
        ]
        for stem in report["builds"][0]["notebooks"]:
            cells = [str(b["notebooks"].get(stem, "—")) for b in report["builds"]]
            lines.append(f"| {stem} | " + " | ".join(cells) + " |")
    for item in report["micro"]:
        lines += [
            "",
            f"### `benchmarks/{item['script']}`",
            "",
            f"{item['seconds']} s, exit status {item['exit_status']}.",
            "",
            "```text",
            item["output"],
            "```",
        ]
    return "\n".join(lines) + "\n"
