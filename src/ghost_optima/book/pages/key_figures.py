"""A claim's key figure in words, for the executive pages and the ledger.

Every word here that depends on a number is chosen by code from the recorded figure, the unit
its label declares in ``claims.yml`` (``key_label.unit``) and the direction of the claim's rule
(``verdicts.conditions``), so the prose cannot contradict the figure:

- ``share`` (a part of a whole, 0 to 1) is written in percent: 0.12 is "12%";
- ``share difference`` (one share minus another) in percentage points: 0.295 is "+29.5
  percentage points", never "0.295 percentage points";
- ``relative change`` (a ratio minus 1) in percent with its sign and a word that agrees with the
  interval: -0.21 is "-21%, a decrease";
- ``change`` (a signed slope or difference) with its sign and the same words;
- ``number``: as it is.

Where the rule gives the key figure a direction (the side of its thresholds that favours the
claim), the text says whether it points the claim's way; when the verdict goes the other way,
:func:`placement_note` names the conditions of the rule that decided it.
"""

import math

from ghost_optima.book.pages.wording import by_interval
from ghost_optima.book.verdicts import claims, conditions

PERCENT = {"share": "%", "relative change": "%"}
POINTS = {"en": " percentage points", "ja": " %ポイント"}
SIGNED = ("share difference", "relative change", "change")
CHANGE_WORDS = {
    "en": ("a decrease", "no clear change", "an increase"),
    "ja": ("減少", "明確な変化なし", "増加"),
}
DIRECTION_WORDS = {
    "en": ("pointing against the claim", "pointing the claim's way"),
    "ja": ("主張に反する向き", "主張を支持する向き"),
}


def plain_number(x: float, decimals: int | None = None, *, signed: bool = False) -> str:
    """``x`` for a reader: fixed point with ``decimals`` (3 significant digits when None), or
    ``m × 10^e`` in math markup when it is very small or very large; ``signed`` writes a
    ``+`` before a positive number."""
    if not math.isfinite(x):
        return str(x)
    plus = "+" if signed and x > 0 else ""
    if x != 0 and not 1e-3 <= abs(x) < 1e5:
        mantissa, exponent = f"{x:.2g}".split("e") if "e" in f"{x:.2g}" else (f"{x:.2g}", "0")
        return f"${plus}{mantissa} \\times 10^{{{int(exponent)}}}$"
    if decimals is None:
        text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    else:
        text = f"{x:,.{decimals}f}"
    return plus + text if text.strip("-0.,") else text.lstrip("-")  # no "-0.0"


def interval_decimals(lo: float, hi: float) -> int | None:
    """Decimals that show the interval's width to two significant digits (None if no width)."""
    width = hi - lo
    if not (math.isfinite(width) and width > 0):
        return None
    return min(max(1 - math.floor(math.log10(width)), 0), 6)


def _scale(unit: str) -> float:
    return 100.0 if unit in ("share", "share difference", "relative change") else 1.0


def in_unit(
    x: float, lang: str = "en", unit: str = "number", decimals: int | None = None, *, points=True
) -> str:
    """One number in its unit: ``12%``, ``+29.5 percentage points``, ``-0.031``; ``decimals``
    are those of the scaled number (3 significant digits when None); ``points=False`` leaves
    out the words "percentage points" (an interval's ends)."""
    text = plain_number(_scale(unit) * x, decimals, signed=unit in SIGNED) + PERCENT.get(unit, "")
    return text + (POINTS[lang] if points and unit == "share difference" else "")


def plain_figure(figure, lang: str = "en", unit: str = "number") -> str:
    """A figure for the executive pages in its unit: ``-21% (95% interval -35% to -8%)``.

    The point and its interval are rounded to the same decimal place, the one that shows the
    interval's width to two significant digits, so no digit is printed that the seeds do not
    support; a figure without an interval gets three significant digits.
    """
    if isinstance(figure, dict) and "lo" in figure:
        decimals = figure_decimals(figure, unit)
        value = in_unit(figure["value"], lang, unit, decimals)
        lo, hi = (in_unit(figure[k], lang, unit, decimals, points=False) for k in ("lo", "hi"))
        if lang == "en":
            return f"{value} (95% interval {lo} to {hi})"
        return f"{value}(95% 区間 {lo}〜{hi})"
    value = figure["value"] if isinstance(figure, dict) else figure
    if isinstance(value, bool | int) and unit == "number":
        return str(int(value))
    return in_unit(float(value), lang, unit)


def figure_decimals(figure, unit: str = "number") -> int | None:
    """The decimals :func:`plain_figure` writes a figure with (None: 3 significant digits)."""
    if not (isinstance(figure, dict) and "lo" in figure):
        return None
    scale = _scale(unit)
    return interval_decimals(scale * float(figure["lo"]), scale * float(figure["hi"]))


def plain_range(low: float, high: float, lang: str = "en", unit: str = "number") -> str:
    """``-35% to -8%`` (``〜`` in Japanese): a range of a key figure, in its unit (one value
    when both ends read the same)."""
    low_text, high_text = (in_unit(v, lang, unit, points=False) for v in (low, high))
    points = POINTS[lang] if unit == "share difference" else ""
    if low_text == high_text:  # one replication, or all alike
        return low_text + points
    joined = f"{low_text} to {high_text}" if lang == "en" else f"{low_text}〜{high_text}"
    return joined + points


def change_word(figure, lang: str = "en") -> str:
    """``a decrease``, ``no clear change`` or ``an increase``: by the interval when the figure
    has one (it must lie wholly on one side of zero), else by the sign of its value."""
    words = CHANGE_WORDS[lang]
    if isinstance(figure, dict) and "lo" in figure:
        return by_interval(figure, 0.0, words)
    value = claims.figure_value(figure)
    return words[0] if value < 0 else words[2] if value > 0 else words[1]


def favours(row: dict) -> bool | None:
    """Whether the row's key figure lies on the side its rule favours (None: no rule, no
    direction, or the rule cannot be read on the figures recorded)."""
    claim = claims.registry().get(row["id"])
    if not (claim and claim.rule and claim.rule.key in row.get("figures", {})):
        return None
    try:
        return conditions.favours_claim(claim.rule, row["figures"])
    except (claims.RuleError, ArithmeticError):
        return None


def key_figure(row: dict, lang: str = "en") -> str:
    """A ledger row's key figure: its label, value in its unit, the word its sign calls for and
    the way it points (``—`` when it has none)."""
    if not row["key"]:
        return "—"
    unit = row.get("key_unit", "number")
    figure = row["figures"][row["key"]]
    label = row["key_label_en"] if lang == "en" else row["key_label_ja"]
    words = [plain_figure(figure, lang, unit)]
    if unit in ("relative change", "change"):
        words.append(change_word(figure, lang))
    way = favours(row)
    if way is not None:
        words.append(DIRECTION_WORDS[lang][way])
    return f"{label}: " + (", " if lang == "en" else "、").join(words)


def replication_text(row: dict, lang: str = "en") -> str | None:
    """``same verdict in 3/4 replications, key figure 12% to 19%`` (or the Japanese), from a
    ledger row's replications (``claims.replications``), saying so when the published figure
    lies outside the range of two or more; None when it has none."""
    entry = claims.replications(row)
    if entry is None:
        return None
    unit = row.get("key_unit", "number")
    low, high = entry["key_min"], entry["key_max"]
    if low is None or high is None:
        span = "—"
    else:
        span = plain_range(float(low), float(high), lang, unit)
    agree, runs = entry["agree"], entry["runs"]
    side = _outside(row, low, high) if runs >= 2 else None  # a range, not one run
    if lang == "en":
        text = f"same verdict in {agree}/{runs} replications, key figure {span}"
        return text + (f"; the published run's figure lies {side} that range" if side else "")
    text = f"再現実験 {runs} 回中 {agree} 回で同じ判定、主要な数値は {span}"
    return text + (f"(本実行の値はこの範囲より{SIDE_JA[side]})" if side else "")


SIDE_JA = {"above": "上", "below": "下"}


def _outside(row: dict, low, high) -> str | None:
    if low is None or high is None or not row.get("key"):
        return None
    value = claims.figure_value(row["figures"][row["key"]])
    return "above" if value > high else "below" if value < low else None


def placement_note(row: dict, lang: str = "en") -> str | None:
    """A sentence for a claim whose key figure and verdict point different ways: a figure that
    favours the claim under any other verdict than supported, or one against it under
    supported. It says in words which conditions on the key figure decided the verdict
    (``conditions.deciding_conditions``), counts the others and links the rule, whose page
    lists them all. None when figure and verdict agree or the figure has no direction."""
    way = favours(row)
    verdict = row["verdict"]
    if way is None or verdict == claims.NOT_TESTED or way == (verdict == "supported"):
        return None
    rule = claims.registry()[row["id"]].rule
    try:
        deciding = conditions.deciding_conditions(rule, row["figures"])
    except (claims.RuleError, ArithmeticError):  # figures of another rule: no verdict to explain
        return None
    en, unit = lang == "en", row.get("key_unit", "number")
    link = f"{{ref}}`{row['id']} <rule-{row['id'].lower()}>`"
    if not way:
        return NOTES[lang][False].format(link=link)
    figure = row["figures"][rule.key]
    reasons = [_bound_words(c, rule.key, figure, unit, lang) for c in deciding if c.key_bound]
    others = [c for c in deciding if not c.key_bound]
    if others:
        count = len(others)
        if en:
            plural = "condition" if count == 1 else "conditions"
            which = "for 'not supported' held" if others[0].held else "for support failed"
            reasons.append(f"{count} other {plural} of its rule {which}")
        else:
            which = "「不支持」の条件" if others[0].held else "支持の条件"
            state = "成立した" if others[0].held else "満たされなかった"
            reasons.append(f"規則の{which}が他に {count} 件{state}")
    listed = ("; " if en else "。また、").join(reasons)
    return NOTES[lang][True].format(listed=listed, link=link)


NOTES = {
    "en": {
        True: "The key figure points the claim's way, but its rule decided otherwise: {listed} "
        "(the conditions are on the rules page: {link}).",
        False: "The key figure points against the claim, but every condition of its rule for "
        "support held (the conditions are on the rules page: {link}).",
    },
    "ja": {
        True: "主要な数値は主張を支持する向きだが、判定は規則の条件で次のように決まった。{listed}"
        "(条件の一覧は判定規則のページの {link})。",
        False: "主要な数値は主張に反する向きだが、規則の支持の条件はすべて満たされた"
        "(条件の一覧は判定規則のページの {link})。",
    },
}
SUBJECTS = {
    "en": {
        "value": "the key figure",
        "lo": "the lower end of its 95% interval",
        "hi": "the upper end of its 95% interval",
    },
    "ja": {"value": "主要な数値", "lo": "95% 区間の下端", "hi": "95% 区間の上端"},
}
COMPARED = {  # symbol -> (holds, does not hold)
    "en": {
        "<": ("is below", "is not below"),
        "<=": ("is at most", "is above"),
        ">": ("is above", "is not above"),
        ">=": ("is at least", "is below"),
        "==": ("equals", "differs from"),
        "!=": ("differs from", "equals"),
    },
    "ja": {
        "<": ("より小さい", "より小さくない"),
        "<=": ("以下である", "より大きい"),
        ">": ("より大きい", "より大きくない"),
        ">=": ("以上である", "より小さい"),
        "==": ("に等しい", "と異なる"),
        "!=": ("と異なる", "に等しい"),
    },
}


def _bound_words(condition: conditions.Condition, key: str, figure, unit: str, lang: str) -> str:
    """``the upper end of its 95% interval, +23%, is not below 0%``: a condition on the key
    figure in words, with the value it read and its threshold in the figure's unit."""
    part, symbol, threshold = condition.key_bound
    value = condition.values[key if part == "value" else f"{key}.{part}"]
    subject = SUBJECTS[lang][part]
    decimals = figure_decimals(figure, unit)
    measured, bound = (in_unit(v, lang, unit, decimals) for v in (value, threshold))
    words = COMPARED[lang][symbol][0 if condition.held else 1]
    if lang == "en":
        return f"{subject}, {measured}, {words} {bound}"
    return f"{subject}({measured})は {bound} {words}"
