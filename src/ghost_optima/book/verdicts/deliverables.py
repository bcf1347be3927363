"""The verdicts of the book's own deliverables, X1 (the summary) and X2 (the meeting checklist).

Every verdict of the book is computed in ``book.verdicts``: the claims' by their chapters
(``record``), these two by the build, from the ledger's coverage, with the rules registered for
them in ``claims.yml``. The pages (``book.pages.summary``) only render what is decided here.

The meeting phrases and the adoption stages are declared once in ``checklist.yml``: a phrase is
said as the brief says it only when every claim behind it is supported (``say``), corrected when
one is not supported or mixed (``instead``), and flagged while one has no verdict (``untested``).
"""

from functools import cache
from importlib import resources

import yaml

from ghost_optima.book.verdicts.claims import NOT_TESTED, evaluate, registry

PAGES = {"X1": "summary_en", "X2": "checklist"}  # the page each deliverable is


@cache
def checklist() -> dict:
    """``checklist.yml``: ``phrases`` (the brief's meeting phrases, with the claims behind each)
    and ``stages`` (its staged adoption plan, with the claims that would back each stage)."""
    text = resources.files("ghost_optima.book").joinpath("checklist.yml").read_text("utf-8")
    return yaml.safe_load(text)


def phrase_status(claim_ids: list[str], verdicts: dict[str, str]) -> str:
    """``say`` if all supported; ``instead`` if any is refuted or mixed; else ``untested``."""
    found = [verdicts[cid] for cid in claim_ids]
    if all(v == "supported" for v in found):
        return "say"
    if any(v in ("not supported", "mixed") for v in found):
        return "instead"
    return "untested"


def deliverables(rows: list[dict]) -> dict[str, dict]:
    """Entries for X1 and X2 (as a notebook records a claim), judged by their registered rules.

    X1 counts the claims T1-M5 without a verdict; X2 counts the meeting phrases that still rest
    on an untested claim, and reports the number the evidence corrected.
    """
    verdicts = {r["id"]: r["verdict"] for r in rows if r["class"] != "deliverable"}
    statuses = [phrase_status(p["claims"], verdicts) for p in checklist()["phrases"]]
    figures = {
        "X1": {
            "untested": sum(v == NOT_TESTED for v in verdicts.values()),
            "claims": len(verdicts),
        },
        "X2": {
            "untested_phrases": statuses.count("untested"),
            "corrected_phrases": statuses.count("instead"),
            "phrases": len(statuses),
        },
    }
    entries = {}
    for cid, found in figures.items():
        rule = registry()[cid].rule
        entries[cid] = {
            "verdict": evaluate(rule, found),
            "key": rule.key,
            "figures": found,
            "notes": "",
            "notebook": PAGES[cid],
        }
    return entries
