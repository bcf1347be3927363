"""Book pages generated from the recorded results: the claims ledger and reproducibility.

They are written at build time from ``results/*.json`` so they can never disagree with the
runs. Both are MyST markdown; verdicts use sphinx-design badges.
"""

from .record import format_figure

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
    counts = {}
    for row in rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    tally = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    lines = [
        "(ledger)=",
        "# Claims ledger",
        "",
        f"Every claim the book tests, with the verdict its pre-registered rule gave on the "
        f"`{profile}` profile ({tally}). Rules live in the registry (`claims.yml`) and were fixed "
        "before the runs; intervals are percentile bootstrap intervals over seeds where seeds "
        "vary. *Robustness* is filled in by `ghost-optima verify --seeds K`: how many re-runs "
        "with other base seeds give the same verdict, and the range of the key figure.",
        "",
        "| id | claim | source | verdict | key figure | robustness | notebook |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        key = row["key"]
        figure = f"`{key}` = {format_figure(row['figures'][key])}" if key else "—"
        notebook = row["notebook"]
        linked = notebook in records or row["verdict"] != "not yet tested"
        link = f"{{doc}}`{notebook}`" if linked else _cell(notebook)
        lines.append(
            f"| {row['id']} | **{_cell(row['title'])}**. {_cell(row['statement_en'])} "
            f"<br>{_cell(row['statement_ja'])} | {_cell(row['source'])} | {badge(row['verdict'])} "
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
