"""The executive pages: summary (English, Japanese), its figure, and the meeting checklist.

Generated at build time from the claims ledger (``results/claims.json``), so every verdict and
number they show is the recorded one. They decide nothing: the verdicts, X1's and X2's included,
and which phrasing of a meeting phrase applies, come from ``book.verdicts``
(``deliverables``); the wording that depends on evidence is declared in ``checklist.yml``.
"""

from ghost_optima.book.pages.ledger import badge
from ghost_optima.book.pages.plotting import japanese_font
from ghost_optima.book.pages.wording import phrase_text
from ghost_optima.book.verdicts.claims import (
    NOT_TESTED,
    UNSTABLE,
    is_unstable,
    join_cjk,
    replications,
    scoreboard,
)
from ghost_optima.book.verdicts.deliverables import checklist, phrase_status
from ghost_optima.book.verdicts.record import key_figure, plain_figure, replication_text

COLORS = {
    "supported": "#1a7f37",
    "not supported": "#cf222e",
    "mixed": "#bf8700",
    "inconclusive": "#6e7781",
    UNSTABLE: "#8250df",
    NOT_TESTED: "#d0d7de",
}
JA_VERDICT = {
    "supported": "支持",
    "not supported": "不支持",
    "mixed": "一部支持",
    "inconclusive": "判定不能",
    UNSTABLE: "不安定",
    NOT_TESTED: "未検証",
}


def draw_figure(rows: list[dict], lang: str) -> bytes:
    """One bar per claim, coloured by verdict, with its key figure, in the page's language.

    An unstable claim (``claims.is_unstable``) is coloured as unstable and its bar names the
    verdict its replications did not confirm; a claim with replications shows ``k/n`` (runs
    with the same verdict) after its key figure. The Japanese figure is drawn in a font
    with Japanese glyphs (``plotting.japanese_font``) and fails loudly when there is none.
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    en = lang == "en"
    family = "DejaVu Sans" if en else japanese_font()
    with plt.rc_context({"font.family": family}):
        fig, ax = plt.subplots(figsize=(8.5, 0.34 * len(rows) + 1.2), facecolor="white")
        shown = [UNSTABLE if is_unstable(r) else r["verdict"] for r in rows]
        for y, (row, verdict) in enumerate(zip(reversed(rows), reversed(shown), strict=True)):
            ax.barh(y, 1, color=COLORS[verdict], height=0.8)
            label = f"{row['id']}  {row['title'] if en else row['title_ja']}"
            if verdict == UNSTABLE:
                label += f" ({row['verdict'] if en else JA_VERDICT[row['verdict']]}?)"
            ax.text(
                0.02,
                y,
                label,
                va="center",
                fontsize=9,
                color="white" if verdict in ("supported", "not supported", UNSTABLE) else "black",
            )
            figure = plain_figure(row["figures"][row["key"]], lang) if row["key"] else ""
            again = replications(row)
            if again:
                figure += f"  [{again['agree']}/{again['runs']}]"
            ax.text(1.02, y, figure, va="center", fontsize=8)
        ax.set(xlim=(0, 1.75), ylim=(-0.6, len(rows) - 0.4))
        ax.axis("off")
        present = [v for v in COLORS if v in shown]
        ax.legend(
            handles=[Patch(color=COLORS[v], label=v if en else JA_VERDICT[v]) for v in present],
            loc="lower center",
            bbox_to_anchor=(0.45, 1.0),
            ncol=len(present),
            frameon=False,
            fontsize=8,
        )
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=110, facecolor="white", metadata={"Software": None})
        plt.close(fig)
    return png.getvalue()


def _lists(rows: list[dict], lang: str) -> list[str]:
    groups = [
        ("supported", "What held", "成り立ったこと"),
        ("not supported", "What did not hold", "成り立たなかったこと"),
        ("mixed", "Partly", "一部だけ成り立ったこと"),
        ("inconclusive", "Inconclusive", "判定できなかったこと"),
    ]
    lines = []
    for verdict, en, ja in groups:
        chosen = [r for r in rows if r["verdict"] == verdict and not is_unstable(r)]
        if not chosen:
            continue
        lines += [f"## {en if lang == 'en' else ja}", ""]
        lines += [_item(r, lang) for r in chosen] + [""]
    shaky = [r for r in rows if is_unstable(r)]
    if shaky:
        en = lang == "en"
        lines.append("## Unstable: replications disagree" if en else "## 不安定:判定が揺れたこと")
        lines += [
            "",
            "Their recorded verdict did not come out again in two or more independent "
            "replications, so they are counted as unstable, neither held nor failed:"
            if en
            else join_cjk(UNSTABLE_JA),
            "",
        ]
        lines += [_item(r, lang, recorded=True) for r in shaky] + [""]
    untested = [r["id"] for r in rows if r["verdict"] == NOT_TESTED]
    if untested:
        head = "Not yet tested" if lang == "en" else "未検証"
        body = (
            "No chapter measures these yet; read nothing into them: "
            if lang == "en"
            else "まだどの章でも測定していないため、判断材料にしないこと: "
        )
        lines += [f"## {head}", "", body + ", ".join(untested) + ".", ""]
    return lines


UNSTABLE_JA = """\
記録した判定が独立な再現の2回以上で得られなかったため、成り立った・成り立たなかったのどちらにも
数えず「不安定」とする:"""


def _item(row: dict, lang: str, recorded: bool = False) -> str:
    """One claim in a summary list: statement, key figure, replications, chapter."""
    en = lang == "en"
    statement = join_cjk(row["statement_en"] if en else row["statement_ja"])
    parts = [key_figure(row, lang)]
    if recorded:
        verdict = row["verdict"] if en else JA_VERDICT[row["verdict"]]
        parts.insert(0, f"recorded verdict: {verdict}" if en else f"記録した判定: {verdict}")
    again = replication_text(row, lang)
    if again:
        parts.append(again)
    return f"- **{row['id']}** {statement} ({'; '.join(parts)}; {{doc}}`{row['notebook']}`)"


def scoreboard_line(rows: list[dict], lang: str) -> str:
    """The scoreboard sentence: empirical findings counted, identities listed as checked."""
    board = scoreboard(rows)
    en = lang == "en"
    tally = (", " if en else "、").join(
        f"{n} {v if en else JA_VERDICT[v]}" for v, n in board["empirical"].items()
    )
    ids = ", ".join(board["identities"])
    hold = {True: 0, False: 1, None: 2}[board["identities_hold"]]
    shaky = ", ".join(board["unstable"])
    if en:
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
    held = ("すべて成立", "一部不成立、台帳を参照", "一部未確認")[hold]
    unstable = f"不安定({shaky}):独立な再現の2回以上で記録した判定と異なった。" if shaky else ""
    return (
        f"**判定の内訳。** 実証的な主張: {tally}。{unstable}"
        f"数値で確認した数学的恒等式(内訳に含めない): {ids}({held})。"
    )


def audit_line(rows: list[dict], lang: str) -> str | None:
    """How many rules in force are flagged by the git audit (``book.audit``); None without git."""
    audited = [r for r in rows if r.get("rule_commit")]
    if not audited:
        return None
    flagged = [r["id"] for r in audited if r.get("rule_flagged")]
    if lang == "en":
        return (
            f"**When the rules were decided.** {len(flagged)} of the {len(audited)} rules in "
            "force were changed together with their chapter or after it first recorded a "
            "verdict, so git cannot show they came before their numbers"
            + (f" ({', '.join(flagged)})" if flagged else "")
            + "; see the {ref}`ledger`."
        )
    return (
        f"**規則を決めた時期。** 現行の規則 {len(audited)} 件のうち {len(flagged)} 件は、"
        "章と同時に、または章が最初に判定を記録した後に変更されており、"
        "数値より先に決まっていたことを git では示せない"
        + (f"({', '.join(flagged)})" if flagged else "")
        + "。{ref}`ledger` を参照。"
    )


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
    audited = audit_line(rows, lang)
    lines += [audited, ""] if audited else []
    lines += [
        f"```{{figure}} summary_{lang}.png\n:name: summary-figure-{lang}\n:class: verdict-figure\n"
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
    for stage in checklist()["stages"]:
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
    return "\n".join(lines)


def checklist_page(rows: list[dict]) -> str:
    verdicts = {r["id"]: r["verdict"] for r in rows}
    by_id = {r["id"]: r for r in rows}
    lines = ["(checklist)=", "# Meeting checklist / 会議用チェックリスト", ""]
    lines += [CHECKLIST_INTRO_EN, "", join_cjk(CHECKLIST_INTRO_JA), ""]
    for phrase in checklist()["phrases"]:
        status = phrase_status(phrase["claims"], verdicts)
        label = {
            "say": "as the brief says it / 原文どおり",
            "instead": "corrected / 修正版",
            "untested": "not yet tested / 未検証",
        }[status]
        lines += [f"## {phrase['id']}: {label}", ""]
        lines += [
            f"- **EN**: {join_cjk(phrase_text(phrase, status, 'en', by_id))}",
            f"- **JA**: {join_cjk(phrase_text(phrase, status, 'ja', by_id))}",
        ]
        for cid in phrase["claims"]:
            row = by_id[cid]
            lines.append(
                f"- {cid} {badge(row['verdict'])}: {key_figure(row, 'en')}; {key_figure(row, 'ja')}"
            )
        lines.append("")
    return "\n".join(lines)


def generated(rows: list[dict]) -> dict[str, bytes]:
    """File name -> content of the figure and the pages (MyST, UTF-8)."""
    pages = {
        "summary_en.md": summary_page(rows, "en"),
        "summary_ja.md": summary_page(rows, "ja"),
        "checklist.md": checklist_page(rows),
    }
    figures = {f"summary_{lang}.png": draw_figure(rows, lang) for lang in ("en", "ja")}
    return figures | {k: v.encode("utf-8") for k, v in pages.items()}


INTRO_EN = """\
The paper (Glukhov 2024) argues that ordinary neural networks have an astronomical number of
interchangeable solutions, because their hidden units can be relabelled freely; that a noisy or
imprecise objective keeps training from settling on any one of them; and that this makes large
models harder to reproduce and to tune. It proposes four design remedies. The brief we were given
adds that data quality should be fixed first. This book tested each of those statements with a
rule written in advance in a registry; the verdicts below come straight from those runs. Whether
a rule really came before its numbers can only be shown from git: the claims ledger gives each
rule's history and flags every rule changed together with its chapter or after the chapter first
recorded a verdict."""

INTRO_JA = """\
この論文(Glukhov 2024)は、通常のニューラルネットワークでは隠れユニットの番号を自由に付け替え
られるため、互いに入れ替え可能な解が天文学的な数だけ存在し、目的関数にノイズや不正確さがあると
学習がどれか一つに落ち着かず、その結果、大きなモデルほど再現や調整が難しくなると主張し、四つの
設計上の対策を提案している。我々が受け取った要約資料は、まずデータ品質を正すべきだと付け加えて
いる。本書はそれぞれの主張を、あらかじめ登録簿に書いた判定規則で検証した。以下の判定はすべてその
実行結果から直接得たものである。規則が本当に数値より先に決まっていたかは git の履歴でしか示せない
ため、主張の台帳に各規則の履歴を載せ、章と同時に、または章が最初に判定を記録した後に変更された規則
には印を付けている。"""

MEANING_EN = """\
Each stage of the brief's staged adoption plan is shown with the claims that would justify it and
their verdicts. Spend on a stage when its evidence is supported; where it is untested or not
supported, treat the stage as ordinary good practice rather than a fix for the problem the paper
describes."""

MEANING_JA = """\
要約資料の段階的導入計画の各段階を、それを正当化する主張とその判定とともに示す。根拠が支持された
段階には投資してよい。未検証または不支持の段階は、論文が述べる問題の解決策ではなく、通常の良い
実務として扱うべきである。"""

CHECKLIST_INTRO_EN = """\
The brief's phrases for meetings, in our words. Each is shown as the brief would say it only when
every claim behind it is supported; otherwise a corrected or hedged phrasing replaces it."""

CHECKLIST_INTRO_JA = """\
要約資料の会議用フレーズを我々の言葉で書き直したもの。根拠となる主張がすべて支持された場合のみ
原文の趣旨どおりに示し、そうでなければ修正・留保した言い方に置き換える。"""
