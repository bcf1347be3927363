"""Book pages generated from the recorded results: the claims ledger and reproducibility.

They are written at build time from ``results/*.json`` so they can never disagree with the
runs. Both are MyST markdown; verdicts use sphinx-design badges.
"""

import json
from pathlib import Path

from .claims import scoreboard
from .record import format_figure

PERFORMANCE_FILE = "performance.json"

BADGE = {
    "supported": "bdg-success",
    "not supported": "bdg-danger",
    "mixed": "bdg-warning",
    "inconclusive": "bdg-secondary",
    "not yet tested": "bdg-light",
}


def badge(verdict: str) -> str:
    return f"{{{BADGE[verdict]}}}`{verdict}`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def generated(
    profile: str, records: dict[str, dict], rows: list[dict], robustness: dict
) -> dict[str, str]:
    """File name -> MyST text of every generated page."""
    return {
        "ledger.md": ledger_page(profile, rows, records, robustness),
        "reproducibility.md": reproducibility_page(profile, records),
    }


def robustness_cell(row: dict, robustness: dict) -> str:
    """``agree/runs`` of the reviewer re-runs, with the key figure's range; ``—`` if none."""
    entry = robustness.get(row["id"])
    if not entry:
        return "—"
    if entry["recorded"] != row["verdict"]:
        return "stale (verdict changed since the re-runs)"
    return (
        f"{entry['agree']}/{entry['runs']} same verdict; key figure "
        f"{entry['key_min']:.3g} to {entry['key_max']:.3g}"
    )


def ledger_page(profile: str, rows: list[dict], records: dict, robustness: dict) -> str:
    board = scoreboard(rows)
    tally = ", ".join(f"{n} {verdict}" for verdict, n in board["empirical"].items())
    identities, deliverables = ", ".join(board["identities"]), ", ".join(board["deliverables"])
    lines = [
        "(ledger)=",
        "# Claims ledger",
        "",
        f"Every claim the book tests, with the verdict its pre-registered rule gave on the "
        f"`{profile}` profile. Empirical findings: {tally}; the identities ({identities}) "
        f"and the book's own deliverables ({deliverables}) are listed but not counted. "
        "Rules live in the registry (`claims.yml`) and were fixed "
        "before the runs; intervals are percentile bootstrap intervals over seeds where seeds "
        "vary. *Robustness* is filled in by `ghost-optima verify --seeds K`: how many re-runs "
        "with other base seeds give the same verdict, and the range of the key figure.",
        "",
        "| id | claim | class | source | verdict | key figure | robustness | notebook |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        key = row["key"]
        figure = f"`{key}` = {format_figure(row['figures'][key])}" if key else "—"
        notebook = row["notebook"]
        linked = notebook in records or row["verdict"] != "not yet tested"
        link = f"{{doc}}`{notebook}`" if linked else _cell(notebook)
        lines.append(
            f"| {row['id']} | **{_cell(row['title'])}**. {_cell(row['statement_en'])} "
            f"<br>{_cell(row['statement_ja'])} | {row['class']} | {_cell(row['source'])} "
            f"| {badge(row['verdict'])} "
            f"| {_cell(figure)} | {_cell(robustness_cell(row, robustness))} | {link} |"
        )
    lines += ["", "## Rules", ""]
    for row in rows:
        rule = row["rule"] or "No rule fixed yet: the claim has not been tested."
        lines += [f"**{row['id']}**: {_cell(rule)}", ""]
    return "\n".join(lines) + "\n"


def reproducibility_page(profile: str, records: dict[str, dict]) -> str:
    lines = [
        "(reproducibility)=",
        "# Reproducibility",
        "",
        f"How each notebook of this book was last executed (profile `{profile}`). Rebuild any "
        "notebook with `ghost-optima build --only NAME --set KEY=VALUE`; a notebook runs again "
        "only when its source, parameters, the package sources or the lock file change.",
        "",
        "| notebook | commit | parameters | seeds | threads | seconds |",
        "|---|---|---|---|---|---|",
    ]
    versions, machine = {}, {}
    for stem, record in records.items():
        prov = record["provenance"]
        commit = (prov["commit"] or "none")[:10] + (" (dirty)" if prov["dirty"] else "")
        params = ", ".join(f"`{k}={v}`" for k, v in prov["parameters"].items())
        seeds = ", ".join(f"`{k}={v}`" for k, v in prov["seeds"].items()) or "—"
        lines.append(
            f"| {{doc}}`{stem}` | `{commit}` | {params} | {seeds} | {prov['threads']} "
            f"| {prov['wall_seconds']} |"
        )
        versions, machine = prov["versions"], prov["machine"]
    lines += ["", "## Versions and machine", "", "| package | version |", "|---|---|"]
    lines += [f"| {name} | {version} |" for name, version in versions.items()]
    lines += ["", ", ".join(f"{k}: `{v}`" for k, v in machine.items()), ""]
    return "\n".join(lines)


def load_performance(root: Path) -> dict | None:
    """The report ``ghost-optima bench`` left in ``root/results``, or None."""
    path = root / "results" / PERFORMANCE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def performance_page(report: dict | None) -> str:
    lines = ["(performance)=", "# Performance", ""]
    if report is None:
        return "\n".join(lines + ["Not measured yet: run `ghost-optima bench`.", ""])
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
            f"## `benchmarks/{item['script']}`",
            "",
            f"{item['seconds']} s, exit status {item['exit_status']}.",
            "",
            "```text",
            item["output"],
            "```",
        ]
    return "\n".join(lines) + "\n"
