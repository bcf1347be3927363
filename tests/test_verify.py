"""Replications and the robustness report."""

from ghost_optima.book.verdicts import claims
from ghost_optima.book.verdicts.verify import (
    SEED_STRIDE,
    attach,
    cut_holds,
    outputs,
    replica_parameters,
    report,
    robustness,
)


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
    assert report["T1"]["key_figures"] == [{"value": 0.5}, {"value": 2.0}]  # for calibration


def ledger_row(cid, verdict, value, notebook, kind="empirical"):
    return {**row(cid, verdict, value), "notebook": notebook, "class": kind}


def result(claims):
    return {
        "claims": {cid: {"verdict": v, "key": "x", "figures": {"x": x}} for cid, v, x in claims}
    }


def test_report_uses_only_notebooks_current_in_every_replication(monkeypatch):
    registered = {"A": "10_a", "B": "20_b"}
    monkeypatch.setattr(
        claims,
        "ledger",
        lambda recorded: [
            {**recorded[cid], "id": cid}
            if cid in recorded
            else {"id": cid, "verdict": claims.NOT_TESTED, "key": None, "figures": {}}
            for cid in registered
        ],
    )
    rows = [ledger_row("A", "supported", 1.0, "10_a"), ledger_row("B", "mixed", 5.0, "20_b")]
    replicas = [
        {"10_a": result([("A", "supported", 2.0)]), "20_b": result([("B", "mixed", 4.0)])},
        {"10_a": result([("A", "not supported", -1.0)]), "20_b": None},  # 20_b out of date
    ]
    found = report(rows, replicas)
    assert found["replications"] == 2 and set(found["claims"]) == {"A"}
    entry = found["claims"]["A"]
    assert entry["verdicts"] == ["supported", "not supported"] and entry["agree"] == 1
    assert (entry["key_min"], entry["key_max"]) == (-1.0, 2.0)
    assert report(rows, [])["claims"] == {}


def test_attach_gives_empirical_rows_their_robustness_only():
    rows = [
        ledger_row("A", "supported", 1.0, "n"),
        ledger_row("T", "supported", 1.0, "n", "identity"),
    ]
    found = robustness(rows, [[row("A", "supported", 3.0), row("T", "mixed", 1.0)]] * 4)
    attach(rows, found)
    assert rows[0]["robustness"] == {
        "runs": 4,
        "agree": 4,
        "verdicts": ["supported"] * 4,
        "key_min": 3.0,
        "key_max": 3.0,
    }
    assert "robustness" not in rows[1]


def test_replications_shift_the_base_seed_by_disjoint_strides():
    params = {"seed": 7, "n_seeds": 16}
    seeds = [replica_parameters(params, i)["seed"] for i in range(1, 5)]
    assert seeds == [7 + SEED_STRIDE * i for i in range(1, 5)]
    assert replica_parameters(params, 1)["n_seeds"] == 16 and params["seed"] == 7
    assert outputs("full", 3) == "verify/full/run-3"


def test_a_claim_without_key_figures_in_its_replications_gets_no_nan():
    rows = [ledger_row("A", "supported", 1.0, "n")]
    again = {"id": "A", "verdict": "supported", "key": None, "figures": {}}
    attach(rows, robustness(rows, [[again]]))
    assert rows[0]["robustness"]["key_min"] is None and rows[0]["robustness"]["agree"] == 1


def build_robustness(main: dict[str, str], replications: list[dict[str, str]]) -> dict:
    """``robustness.json`` of a build whose main run and replications gave these verdicts."""
    recorded = [row(cid, verdict, 0.0) for cid, verdict in main.items()]
    runs = [[row(cid, verdict, 0.0) for cid, verdict in run.items()] for run in replications]
    return robustness(recorded, runs)


def test_a_cut_holds_only_with_the_same_main_verdict_and_no_fewer_agreeing_runs():
    s, m = "supported", "mixed"
    before = build_robustness(
        {"T2": s, "T3": s, "T4": m, "E1": s, "E2": s},
        [
            {"T2": s, "T3": s, "T4": m, "E1": m, "E2": s},
            {"T2": s, "T3": m, "T4": m, "E1": s, "E2": s},
        ],
    )
    after = build_robustness(
        {"T2": s, "T3": s, "T4": s, "E1": s, "M1": s},
        [
            {"T2": s, "T3": s, "T4": s, "E1": s, "M1": s},
            {"T2": m, "T3": s, "T4": s, "E1": s, "M1": s},
        ],
    )
    found = cut_holds(before, after)
    assert set(found) == {"T2", "T3", "T4", "E1"}  # E2 and M1 were not built in both
    assert found["T2"] == {"before": (s, 2, 2), "after": (s, 1, 2), "holds": False}  # fewer agree
    assert found["T3"]["holds"]  # more agree: a cut may also steady a verdict
    assert not found["T4"]["holds"]  # the main verdict moved, though every run agrees with it
    assert found["E1"] == {"before": (s, 1, 2), "after": (s, 2, 2), "holds": True}


def test_cut_check_prints_each_claim_and_fails_where_a_verdict_moved(tmp_path, capsys):
    import json

    from ghost_optima.book.build import cli

    s, m = "supported", "mixed"
    before, after, moved = (tmp_path / name for name in ("before.json", "after.json", "moved.json"))
    before.write_text(json.dumps(build_robustness({"T2": s}, [{"T2": s}, {"T2": m}])))
    after.write_text(json.dumps(build_robustness({"T2": s}, [{"T2": s}, {"T2": m}])))
    moved.write_text(json.dumps(build_robustness({"T2": m}, [{"T2": m}, {"T2": m}])))
    assert cli.main(["cut-check", str(before), str(after)]) == 0
    assert "| T2 | supported, 1/2 | supported, 1/2 | yes |" in capsys.readouterr().out
    assert cli.main(["cut-check", str(before), str(moved)]) == cli.EXIT_FAILED
    assert "| NO |" in capsys.readouterr().out
    assert cli.main(["cut-check", str(before), str(tmp_path / "absent.json")]) == cli.EXIT_BAD_INPUT
    assert "cannot read a robustness report" in capsys.readouterr().err
