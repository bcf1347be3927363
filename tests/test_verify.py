"""Reviewer mode's robustness summary."""

from ghost_optima.book.verify import robustness


def row(cid, verdict, value):
    return {"id": cid, "verdict": verdict, "key": "x", "figures": {"x": {"value": value}}}


def test_robustness_counts_agreement_and_key_range():
    recorded = [row("T1", "supported", 1.0), row("T2", "not yet tested", 0)]
    runs = [
        [row("T1", "supported", 0.5), row("T2", "not yet tested", 0)],
        [row("T1", "mixed", 2.0), row("T2", "not yet tested", 0)],
    ]
    report = robustness(recorded, runs)["claims"]
    assert set(report) == {"T1"}
    assert report["T1"]["agree"] == 1 and report["T1"]["runs"] == 2
    assert report["T1"]["verdicts"] == ["supported", "mixed"]
    assert (report["T1"]["key_min"], report["T1"]["key_max"]) == (0.5, 2.0)
