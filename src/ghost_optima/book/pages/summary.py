"""The executive summaries (English, Japanese); with their figure and the meeting checklist, the
generated pages for decision makers.

Generated at build time from the claims ledger (``results/claims.json``), so every verdict and
number they show is the recorded one. They decide nothing: the verdicts, X1's and X2's included,
come from ``book.verdicts``. A claim is listed under its verdict with its key figure in words
chosen by code (``key_figures``); where the key figure points the claim's way and the verdict
does not (or the reverse), the item says which conditions of the rule decided it. How many
rules git shows were decided before their numbers closes the page; the ledger names the others.
"""

from ghost_optima.book.pages import calibration_table, checklist, verdict_figure
from ghost_optima.book.pages.key_figures import key_figure, placement_note, replication_text
from ghost_optima.book.pages.ledger import badge, standings
from ghost_optima.book.pages.verdict_figure import JA_VERDICT
from ghost_optima.book.verdicts import audit
from ghost_optima.book.verdicts.claims import (
    NOT_TESTED,
    UNSTABLE,
    is_unstable,
    join_cjk,
    scoreboard,
)
from ghost_optima.book.verdicts.deliverables import checklist as checklist_wording

HEADINGS = {
    "supported": ("What held", "支持された主張"),
    "not supported": ("What did not hold", "支持されなかった主張"),
    "mixed": ("Partly", "一部のみ支持された主張"),
    "inconclusive": ("Inconclusive", "判定できなかった主張"),
}


def _lists(rows: list[dict], lang: str) -> list[str]:
    en = lang == "en"
    lines = []
    for verdict, (head_en, head_ja) in HEADINGS.items():
        chosen = [r for r in rows if r["verdict"] == verdict and not is_unstable(r)]
        if chosen:
            lines += [f"## {head_en if en else head_ja}", ""]
            lines += [_item(r, lang) for r in chosen] + [""]
    shaky = [r for r in rows if is_unstable(r)]
    if shaky:
        lines.append(
            "## Unstable: replications disagree" if en else "## 再現実験で判定が揺れた主張"
        )
        lines += ["", UNSTABLE_EN if en else join_cjk(UNSTABLE_JA), ""]
        lines += [_item(r, lang, recorded=True) for r in shaky] + [""]
    untested = [r["id"] for r in rows if r["verdict"] == NOT_TESTED]
    if untested:
        head = "Not yet tested" if en else "未検証の主張"
        body = (
            "No chapter measures these yet; read nothing into them: "
            if en
            else "まだどの章でも測定していないため、判断材料にしないこと:"
        )
        lines += [f"## {head}", "", body + ", ".join(untested) + ("." if en else "。"), ""]
    return lines


UNSTABLE_EN = (
    "Their recorded verdict did not come out again in two or more independent replications, so "
    "they are counted as unstable, neither held nor failed:"
)
UNSTABLE_JA = """\
独立な再現実験の 2 回以上で記録と異なる判定が出たため、支持・不支持のどちらにも数えず「不安定」
として扱う。"""


def _item(row: dict, lang: str, recorded: bool = False) -> str:
    """One claim in a summary list: statement, key figure, replications, chapter, and the
    sentence that explains a verdict its key figure does not point to."""
    en = lang == "en"
    statement = join_cjk(row["statement_en"] if en else row["statement_ja"])
    parts = [key_figure(row, lang)]
    if recorded:
        verdict = row["verdict"] if en else JA_VERDICT[row["verdict"]]
        parts.insert(0, f"recorded verdict: {verdict}" if en else f"記録した判定: {verdict}")
    again = replication_text(row, lang)
    if again:
        parts.append(again)
    short = calibration_table.underpowered_text(row, lang)
    if short:
        parts.append(short)
    parts.append(f"{{doc}}`{row['notebook']}`")
    item = (
        f"- **{row['id']}** {statement} ({'; '.join(parts)})"
        if en
        else f"- **{row['id']}** {statement}({' / '.join(parts)})"
    )
    note = placement_note(row, lang)
    return item + ((" " if en else "") + note if note else "")


def scoreboard_line(rows: list[dict], lang: str) -> str:
    """The scoreboard sentence: empirical findings counted, identities listed as checked."""
    board = scoreboard(rows)
    ids = ", ".join(board["identities"])
    hold = {True: 0, False: 1, None: 2}[board["identities_hold"]]
    shaky = ", ".join(board["unstable"])
    if lang == "en":
        tally = ", ".join(f"{n} {v}" for v, n in board["empirical"].items())
        held = ("all hold", "not all hold: see the ledger", "not all checked yet")[hold]
        unstable = (
            f" Unstable ({shaky}): independent replications disagree with the recorded "
            "verdict in two or more runs."
            if shaky
            else ""
        )
        return (
            f"**Scoreboard.** Empirical findings: {tally}.{unstable} Mathematical identities "
            f"checked numerically, not counted as findings: {ids} ({held})."
        )
    total = sum(board["empirical"].values())
    tally = "、".join(f"{JA_VERDICT[v]} {n} 件" for v, n in board["empirical"].items())
    held = ("すべて成立", "一部不成立、台帳を参照", "一部未確認")[hold]
    unstable = (
        f"不安定({shaky})は、独立な再現実験の 2 回以上で記録と異なる判定が出たもの。"
        if shaky
        else ""
    )
    return (
        f"**判定の内訳**:実験で検証する主張 {total} 件のうち、{tally}。{unstable}"
        f"数式上の恒等式として数値で確かめたもの(件数に含めない):{ids}({held})。"
    )


def decided_line(rows: list[dict], lang: str) -> str | None:
    """How many rules in force git shows were decided before their numbers, and how many are
    legacy or not yet shown (``audit.standing``; the ledger names them); None without git."""
    found = standings(rows)
    audited = sum(len(ids) for ids in found.values())
    if not audited:
        return None
    before, legacy, unshown = (len(found[name]) for name in audit.STANDINGS)
    cutoff = f"`{audit.CUTOFF[:7]}`"
    if lang == "en":
        text = (
            f"Git shows {before} of the {audited} rules in force decided before the numbers "
            "they judge: committed on their own, before the run that recorded their verdict."
        )
        if legacy:
            text += (
                f" {'All' if legacy == audited else 'The other'} {legacy} are legacy rules, "
                f"fixed before commit {cutoff}, when the book began to commit every changed rule "
                "on its own ahead of its results; git cannot show they came first."
            )
        if unshown:
            text += f" {unshown} changed since then are not yet shown to come first."
        return text + " The {ref}`ledger` names them and gives each rule's history."
    text = (
        f"現行の判定規則 {audited} 件のうち、判定する数値より先に決めたこと"
        f"(規則を単独でコミットし、その後の実行で判定を記録したこと)を git の履歴で示せるのは "
        f"{before} 件である。"
    )
    if legacy:
        text += (
            f"{'全' if legacy == audited else '残る '}{legacy} 件は、規則を単独で先にコミットする"
            f"運用を始めたコミット {cutoff} より前に決めた旧来の規則で、数値より先に決まっていた"
            "ことは git では示せない。"
        )
    if unshown:
        text += f"それ以降に変更した {unshown} 件は、まだ先に決めたことを示せていない。"
    return text + "個々の規則と変更履歴は {ref}`ledger` に載せている。"


def summary_page(all_rows: list[dict], lang: str) -> str:
    verdicts = {r["id"]: r["verdict"] for r in all_rows}
    shaky = {r["id"] for r in all_rows if is_unstable(r)}
    rows = [r for r in all_rows if r["class"] != "deliverable"]  # the claims, not the pages
    en = lang == "en"
    lines = [
        f"(summary-{lang})=",
        "# Summary for decision makers" if en else "# 経営層向け要約",
        "",
    ]
    lines += [INTRO_EN if en else join_cjk(INTRO_JA), ""]
    lines += [scoreboard_line(all_rows, lang), ""]
    lines += [
        f"```{{figure}} summary_{lang}.png\n:name: summary-figure-{lang}\n"
        ":figclass: verdict-figure\n"
        f":alt: {'verdict of every claim' if en else '各主張の判定'}\n\n"
        + (
            "Every claim and its verdict, with its key figure."
            if en
            else "各主張の判定と主要な数値。"
        )
        + "\n```",
        "",
    ]
    lines += _lists(rows, lang)
    lines += ["## What it means for an investment decision" if en else "## 投資判断への示唆", ""]
    lines += [MEANING_EN if en else join_cjk(MEANING_JA), ""]
    lines += ["| stage | evidence |" if en else "| 段階 | 根拠 |", "|---|---|"]
    for stage in checklist_wording()["stages"]:
        evidence = " ".join(
            f"{cid} {badge(verdicts[cid])}" + (f" {badge(UNSTABLE)}" if cid in shaky else "")
            for cid in stage["claims"]
        )
        lines.append(f"| {stage['en'] if en else join_cjk(stage['ja'])} | {evidence} |")
    lines += [
        "",
        (
            "See the {ref}`checklist` for what to say in meetings."
            if en
            else "会議での言い方は {ref}`checklist` を参照。"
        ),
        "",
    ]
    decided = decided_line(rows, lang)
    if decided:
        lines += ["## When the rules were decided" if en else "## 判定規則を決めた時期", ""]
        lines += [decided, ""]
    return "\n".join(lines)


def generated(rows: list[dict]) -> dict[str, bytes]:
    """File name -> content of the figure and the pages (MyST, UTF-8)."""
    pages = {
        "summary_en.md": summary_page(rows, "en"),
        "summary_ja.md": summary_page(rows, "ja"),
        "checklist.md": checklist.checklist_page(rows),
    }
    figures = {
        f"summary_{lang}.png": verdict_figure.draw_figure(rows, lang) for lang in ("en", "ja")
    }
    return figures | {k: v.encode("utf-8") for k, v in pages.items()}


INTRO_EN = """\
The paper (Glukhov 2024) argues that ordinary neural networks have an astronomical number of
interchangeable solutions, because their hidden units can be relabelled freely; that a noisy or
imprecise objective keeps training from settling on any one of them; and that this makes large
models harder to reproduce and to tune. It proposes four design remedies. The brief we were given
adds that data quality should be fixed first. This book tested each of those statements with a
rule written in advance in a registry; the verdicts below come straight from those runs, and the
end of the page says how many of the rules git shows were fixed before their numbers."""

INTRO_JA = """\
本ページは、Glukhov(2024)の論文と手元の要約資料の主張を検証した結果を、経営判断に必要な範囲で
まとめたものである。論文の主張は三点ある。第一に、通常のニューラルネットワークでは隠れユニットを
入れ替えても同じ働きをするため(順列冗長性)、同じ性能の解(ゴースト最適解)が天文学的な数だけ
存在する。第二に、損失関数の評価にノイズや不確実性があると、学習はどの解にも落ち着かない。第三に、
その結果、大きなモデルほど再現性が下がり、チューニング工数が増える。論文はこれに四つの設計上の
対策を挙げ、要約資料はさらに、まずデータ品質を固めるべきだとしている。本書は主張ごとに判定規則を
事前に登録簿へ書き、その規則で実験結果を判定した。以下の判定と数値はすべて実行結果からそのまま
取っている。規則が数値より先に決まっていたことを git の履歴で何件示せるかは、本ページの末尾に
記す。"""

MEANING_EN = """\
Each stage of the brief's staged adoption plan is shown with the claims that would justify it and
their verdicts. Spend on a stage when its evidence is supported; where it is untested or not
supported, treat the stage as ordinary good practice rather than a fix for the problem the paper
describes."""

MEANING_JA = """\
要約資料の段階的な導入計画を、各段階の根拠となる主張とその判定とともに示す。根拠が支持された段階は
投資の対象にしてよい。根拠が未検証または不支持の段階は、論文が指摘する問題の解決策としてではなく、
通常の良い実務として予算化すべきである。"""
