"""Checklist phrase P2 (data versus model changes): its corrected wording is chosen by code from
M5's recorded cleaning margin, one text per side of zero and one for an interval across it."""

import pytest

from ghost_optima.book.pages import wording
from ghost_optima.book.verdicts import claims, deliverables


def _rows(margin):
    rows = []
    for cid, claim in claims.registry().items():
        figures = {"cleaning_margin": margin} if cid == "M5" and margin is not None else {}
        verdict = "not supported" if cid in ("E5", "M5") else "supported"
        rows.append(
            {
                "id": cid,
                "verdict": verdict,
                "key": claim.rule.key if claim.rule else None,
                "figures": figures,
                "title": cid,
                "title_ja": cid,
                "class": claim.kind,
            }
        )
    return rows


@pytest.mark.parametrize(
    ("lo", "hi", "side"), [(-0.3, -0.1, "below"), (-0.1, 0.2, "straddles"), (0.05, 0.4, "above")]
)
def test_p2_wording_follows_the_m5_margin(lo, hi, side):
    phrase = next(p for p in deliverables.checklist()["phrases"] if p["id"] == "P2")
    by_id = {r["id"]: r for r in _rows({"value": (lo + hi) / 2, "lo": lo, "hi": hi, "n": 8})}
    for lang in ("en", "ja"):
        expected = phrase[f"instead_{lang}"][side]
        assert wording.phrase_text(phrase, "instead", lang, by_id) == expected
    assert phrase["figure"]["key"] == claims.registry()["M5"].rule.key


def test_p2_without_the_figure_falls_back_to_the_cautious_text():
    phrase = next(p for p in deliverables.checklist()["phrases"] if p["id"] == "P2")
    by_id = {r["id"]: r for r in _rows(None)}
    assert wording.phrase_text(phrase, "instead", "en", by_id) == phrase["instead_en"]["straddles"]
    assert wording.phrase_text(phrase, "say", "en", by_id) == phrase["say_en"]
