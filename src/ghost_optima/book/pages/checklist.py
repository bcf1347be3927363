"""The meeting checklist: the brief's phrases for meetings in our words, English and Japanese.

Each phrase of ``checklist.yml`` is shown as the brief would say it only when every claim behind
it is supported, corrected when one is not supported or mixed, and flagged while one is untested
(``verdicts.deliverables.phrase_status``); each claim behind it with its verdict, its key figure
and, where they point different ways, the sentence that says why
(``key_figures.placement_note``).
"""

from ghost_optima.book.pages.key_figures import key_figure, placement_note
from ghost_optima.book.pages.ledger import badge
from ghost_optima.book.pages.wording import phrase_text
from ghost_optima.book.verdicts.claims import join_cjk
from ghost_optima.book.verdicts.deliverables import checklist, phrase_status


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
            notes = [placement_note(row, lang) for lang in ("en", "ja")]
            if notes[0]:
                lines += [f"  {notes[0]} {notes[1]}"]
        lines.append("")
    return "\n".join(lines)


CHECKLIST_INTRO_EN = """\
The brief's phrases for meetings, in our words. Each is shown as the brief would say it only when
every claim behind it is supported; otherwise a corrected or hedged phrasing replaces it."""

CHECKLIST_INTRO_JA = """\
要約資料にある会議用フレーズを、本書の検証結果に合わせて書き直したもの。根拠となる主張がすべて
支持された場合に限り原文の趣旨どおりに示し、そうでない場合は修正または留保を付けた言い方に
置き換えている。"""
