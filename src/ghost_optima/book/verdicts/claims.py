"""The claims registry and the pre-registered rules that turn figures into verdicts.

The registry (``claims.yml`` beside this file) declares every claim once: statement in English
and Japanese, source, the notebook that tests it, and its rule. A rule is three small boolean
expressions over named figures, fixed before the notebook runs::

    supported:     max_rel_change < 1e-10 and control_min_change > 1e-6
    not_supported: max_rel_change > 1e-6
    otherwise:     inconclusive

``evaluate`` reads them with a whitelist evaluator (comparisons, ``and``/``or``/``not``,
arithmetic, ``abs``/``min``/``max``, and ``x.lo``/``x.hi`` for a figure's interval), so a
rule is data, never code from a notebook. ``supported`` is checked first; when both
expressions are false the verdict is the rule's ``otherwise`` (``mixed`` or ``inconclusive``).
"""

import ast
import hashlib
import itertools
import json
import math
import operator
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import yaml

VERDICTS = ("supported", "not supported", "mixed", "inconclusive")
NOT_TESTED = "not yet tested"
UNSTABLE = "unstable"
"""What the scoreboard counts an empirical claim as when its replications disagree with its
verdict in ``UNSTABLE_DISAGREEMENTS`` or more runs (of the ``MIN_REPLICATIONS`` or more the
published build makes): neither supported nor not supported."""
MIN_REPLICATIONS = 4
UNSTABLE_DISAGREEMENTS = 2
KEY_UNITS = ("number", "share", "share difference", "relative change", "change")
"""What a key figure's number is (``key_label.unit`` in the registry; ``number`` when omitted): a
plain number, a share of a whole (0 to 1), a difference of two shares, a ratio minus 1, or a
signed change (a slope, a difference); the pages write each in its own way
(``book.pages.key_figures``)."""
CLASSES = ("identity", "empirical", "deliverable")
"""What a verdict is evidence of: a mathematical fact checked numerically, a measurement that
could have come out either way (the only kind the scoreboard counts), or a property of the book."""


@dataclass(frozen=True)
class Rule:
    text: str
    supported: str
    not_supported: str
    otherwise: str
    key: str


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    title_ja: str
    key_label_en: str  # what the key figure measures, in plain words, and its scale
    key_label_ja: str
    key_unit: str  # one of KEY_UNITS
    source: str
    kind: str  # one of CLASSES; ``class`` in the registry
    notebook: str
    statement_en: str
    statement_ja: str
    rule: Rule | None
    # what an empirical claim's within-run interval resamples, and what each run draws once from
    # its seed (so that only its replications vary it); named beside an overdispersed key figure
    interval_resamples: str = ""
    interval_fixed: str = ""


class RuleError(ValueError):
    """A rule that cannot be evaluated against the figures given."""


@cache
def registry() -> dict[str, Claim]:
    """Every registered claim by id, in the order of ``claims.yml``."""
    raw = yaml.safe_load(
        resources.files("ghost_optima.book").joinpath("claims.yml").read_text("utf-8")
    )
    return {cid: _parse_claim(cid, entry) for cid, entry in raw.items()}


def join_cjk(text: str) -> str:
    """Drop the spaces that line folding leaves between Japanese characters."""
    return _CJK_GAP.sub("", " ".join(text.split()))


_CJK = "\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef"  # kana, CJK ideographs, full-width forms
_CJK_GAP = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


def _parse_claim(cid: str, entry: dict) -> Claim:
    entry["statement_ja"] = join_cjk(entry["statement_ja"])
    entry["kind"] = entry.pop("class")
    label = entry.pop("key_label")
    entry["key_label_en"], entry["key_label_ja"] = label["en"], join_cjk(label["ja"])
    entry["key_unit"] = label.get("unit", "number")
    if entry["key_unit"] not in KEY_UNITS:
        raise ValueError(f"claim {cid}: key_label.unit must be one of {KEY_UNITS}")
    if entry["kind"] not in CLASSES:
        raise ValueError(f"claim {cid}: class must be one of {CLASSES}, got {entry['kind']!r}")
    interval = entry.pop("interval", None)
    if (interval is None) == (entry["kind"] == "empirical"):
        raise ValueError(
            f"claim {cid}: every empirical claim, and no other, says what its interval resamples"
        )
    if interval is not None:
        entry["interval_resamples"], entry["interval_fixed"] = (
            interval["resamples"],
            interval["fixed"],
        )
    rule = entry.pop("rule")
    if rule is not None:
        if rule["otherwise"] not in ("mixed", "inconclusive"):
            raise ValueError(f"claim {cid}: 'otherwise' must be mixed or inconclusive")
        rule = Rule(**rule)
        for expr in (rule.supported, rule.not_supported):
            _check_syntax(expr)
    return Claim(id=cid, rule=rule, **entry)


RULE_FIELDS = ("text", "supported", "not_supported", "otherwise", "key")


def rule_digest(rule: dict | Rule | None) -> str | None:
    """sha256 (first 16 hex digits) of a rule's fields, whitespace-normalised; None if no rule.

    Recorded with every verdict and recomputed from git history by ``book.audit``, so a reader
    can tell which version of a rule judged a result.
    """
    if rule is None:
        return None
    if isinstance(rule, Rule):
        rule = {k: getattr(rule, k) for k in RULE_FIELDS}
    fields = {k: " ".join(str(rule[k]).split()) for k in RULE_FIELDS}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def figure_value(figure) -> float:
    """The point value of a figure given as a number or as ``{"value", "lo", "hi", ...}``."""
    return float(figure["value"] if isinstance(figure, dict) else figure)


def intervals(figures, path: str = "") -> list[tuple[str, dict]]:
    """Every interval figure ``{"value", "lo", "hi", ...}`` inside ``figures`` (nested dicts and
    lists walked), as ``(dotted path, figure)``; a figure ``x`` inside a dict ``d`` is ``d.x``."""
    found = []
    if isinstance(figures, dict):
        if {"value", "lo", "hi"} <= figures.keys():
            found.append((path, figures))
        for name, inner in figures.items():
            if isinstance(inner, dict | list):
                found += intervals(inner, f"{path}.{name}" if path else str(name))
    elif isinstance(figures, list):
        for i, inner in enumerate(figures):
            found += intervals(inner, f"{path}[{i}]")
    return found


def outside_interval(figure: dict) -> bool:
    """True unless ``lo <= value <= hi`` (a NaN anywhere counts as outside)."""
    lo, value, hi = (float(figure[k]) for k in ("lo", "value", "hi"))
    return not lo <= value <= hi


def evaluate(rule: Rule, figures: dict) -> str:
    """The verdict of ``rule`` on ``figures`` (name -> number or dict with value/lo/hi)."""
    if rule.key not in figures:
        raise RuleError(f"the rule's key figure {rule.key!r} was not recorded")
    if _eval(rule.supported, figures):
        return "supported"
    if _eval(rule.not_supported, figures):
        return "not supported"
    return rule.otherwise


COMPARISONS = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
FUNCTIONS = {"abs": abs, "min": min, "max": max, "log10": math.log10}


def _check_syntax(expr: str) -> None:
    try:
        ast.parse(expr, mode="eval")
    except SyntaxError as err:
        raise ValueError(f"rule expression {expr!r} is not valid: {err.msg}") from None


@cache
def parse_expression(expr: str) -> ast.AST:
    """The syntax tree of a rule expression (whitespace and line folding normalised)."""
    return ast.parse(" ".join(expr.split()), mode="eval").body


def _eval(expr: str, figures: dict):
    return evaluate_node(parse_expression(expr), figures)


def evaluate_node(node: ast.AST, figures: dict):
    """The value of a node of a rule expression on ``figures``: only the whitelisted elements
    (numbers, figures and their ``lo``/``hi``, ``and``/``or``/``not``, arithmetic, comparisons,
    ``FUNCTIONS``); anything else raises ``RuleError``."""
    match node:
        case ast.Constant(value=value) if isinstance(value, int | float):
            return value
        case ast.Name(id=name):
            if name not in figures:
                raise RuleError(f"figure {name!r} used by the rule was not recorded")
            return figure_value(figures[name])
        case ast.Attribute(value=ast.Name(id=name), attr=("lo" | "hi") as bound):
            figure = figures.get(name)
            if not isinstance(figure, dict) or bound not in figure:
                raise RuleError(f"figure {name!r} has no interval, but the rule reads {bound}")
            return float(figure[bound])
        case ast.BoolOp(op=ast.And(), values=values):
            return all(evaluate_node(v, figures) for v in values)
        case ast.BoolOp(op=ast.Or(), values=values):
            return any(evaluate_node(v, figures) for v in values)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not evaluate_node(operand, figures)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -evaluate_node(operand, figures)
        case ast.BinOp(op=op, left=left, right=right) if type(op) in _BINARY:
            return _BINARY[type(op)](evaluate_node(left, figures), evaluate_node(right, figures))
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            values = [evaluate_node(left, figures)] + [
                evaluate_node(c, figures) for c in comparators
            ]
            return all(
                COMPARISONS[type(op)](a, b)
                for op, a, b in zip(ops, values[:-1], values[1:], strict=True)
            )
        case ast.Call(func=ast.Name(id=fname), args=args, keywords=[]) if fname in FUNCTIONS:
            return FUNCTIONS[fname](*(evaluate_node(a, figures) for a in args))
    raise RuleError(f"unsupported element in rule: {ast.dump(node)}")


def ledger(recorded: dict[str, dict]) -> list[dict]:
    """One row per registered claim: its recorded entry, or ``not yet tested``.

    ``recorded`` maps claim id to what a notebook recorded (``verdict``, ``figures``, ...).
    """
    rows = []
    for claim in registry().values():
        entry = recorded.get(claim.id)
        rows.append(
            {
                "id": claim.id,
                "title": claim.title,
                "title_ja": claim.title_ja,
                "key_label_en": claim.key_label_en,
                "key_label_ja": claim.key_label_ja,
                "key_unit": claim.key_unit,
                "statement_en": claim.statement_en,
                "statement_ja": claim.statement_ja,
                "source": claim.source,
                "class": claim.kind,
                "notebook": entry["notebook"] if entry else claim.notebook,
                "rule": claim.rule.text if claim.rule else None,
                "verdict": entry["verdict"] if entry else NOT_TESTED,
                "key": entry["key"] if entry else None,
                "figures": entry["figures"] if entry else {},
                "robustness": entry.get("robustness") if entry else None,
            }
        )
    return rows


def replications(row: dict) -> dict | None:
    """The row's replications, ``{"runs", "agree", "verdicts", "key_min", "key_max"}`` (``agree``
    counts the runs that gave the recorded verdict), or None when there are none or they were
    made for another verdict than the one recorded now (stale: an entry's ``recorded``)."""
    entry = row.get("robustness")
    if not entry or not entry.get("runs"):
        return None
    if entry.get("recorded", row["verdict"]) != row["verdict"]:
        return None
    return entry


def is_unstable(row: dict) -> bool:
    """An empirical claim whose replications disagree with its verdict in at least
    ``UNSTABLE_DISAGREEMENTS`` runs: ``runs - agree >= 2``. The published build makes at least
    ``MIN_REPLICATIONS`` (4) replications, so this is 2 or more of 4; with fewer runs, two
    disagreements are no weaker evidence, and the same count applies."""
    entry = replications(row)
    if row["class"] != "empirical" or entry is None or row["verdict"] == NOT_TESTED:
        return False
    return entry["runs"] - entry["agree"] >= UNSTABLE_DISAGREEMENTS


def scoreboard(rows: list[dict]) -> dict:
    """What every page that states a count says: verdict counts of the empirical claims only.

    Returns ``{"empirical": {verdict: n, ...}`` (in the order of ``VERDICTS``, then
    ``unstable``, then ``not yet tested``, zero counts left out; an unstable claim
    (:func:`is_unstable`) is counted as ``unstable``, not under its recorded verdict),
    ``"unstable": [ids]``, ``"identities": [ids]``, ``"identities_hold"`` (True when every
    identity is supported, False when one has another verdict, None while one is untested and
    the rest hold) and ``"deliverables": [ids]``.
    """
    empirical = [r for r in rows if r["class"] == "empirical"]
    shaky = [r["id"] for r in empirical if is_unstable(r)]
    counted = [UNSTABLE if r["id"] in shaky else r["verdict"] for r in empirical]
    identities = [r for r in rows if r["class"] == "identity"]
    counts = {v: counted.count(v) for v in (*VERDICTS, UNSTABLE, NOT_TESTED)}
    return {
        "empirical": {v: n for v, n in counts.items() if n},
        "unstable": shaky,
        "identities": [r["id"] for r in identities],
        "identities_hold": _all_hold([r["verdict"] for r in identities]),
        "deliverables": [r["id"] for r in rows if r["class"] == "deliverable"],
    }


def branch_witnesses(rule: Rule, *, tries: int = 20000, seed: int = 0) -> dict[str, dict | None]:
    """For each branch of ``rule`` (supported, not supported, its ``otherwise``), figures that
    reach it, or ``None`` when a random search over ``tries`` assignments found none.

    A rule that can never say "not supported" cannot fail, so a test asks every rule for all
    three. Candidate values of each figure are the rule's own constants, nudged to either side,
    their negatives, a few round numbers and the midpoints between neighbours; a figure read as
    ``x.lo``/``x.hi`` gets an interval around its value with half-widths from 0 to 1e3. The
    search is seeded, so it is deterministic.
    """
    names, interval_names, constants = set(), set(), {0.0, 1.0, -1.0, 1e6, -1e6}
    for expr in (rule.supported, rule.not_supported):
        for node in ast.walk(parse_expression(expr)):
            if isinstance(node, ast.Name) and node.id not in FUNCTIONS:
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                interval_names.add(node.value.id)
            elif isinstance(node, ast.Constant) and isinstance(node.value, int | float):
                constants.add(float(node.value))
    names = sorted(names | interval_names | {rule.key})
    nudged = {c + d for c in constants for d in (0.0, -1e-3 * abs(c) - 1e-9, 1e-3 * abs(c) + 1e-9)}
    points = sorted(nudged | {-c for c in nudged})
    candidates = np.array(points + [(a + b) / 2 for a, b in itertools.pairwise(points)])
    half_widths = np.array([0.0, 1e-9, 1e-3, 0.1, 1.0, 1e3])
    rng = np.random.default_rng(seed)
    found: dict[str, dict | None] = {"supported": None, "not supported": None, rule.otherwise: None}
    for _ in range(tries):
        figures = {}
        for name in names:
            value = float(rng.choice(candidates))
            if name in interval_names:
                below, above = rng.choice(half_widths, 2)
                figures[name] = {"value": value, "lo": value - below, "hi": value + above}
            else:
                figures[name] = value
        try:
            verdict = evaluate(rule, figures)
        except (ArithmeticError, ValueError):
            continue
        if found[verdict] is None:
            found[verdict] = figures
            if all(v is not None for v in found.values()):
                break
    return found


def _all_hold(verdicts: list[str]) -> bool | None:
    if any(v not in ("supported", NOT_TESTED) for v in verdicts):
        return False
    return True if all(v == "supported" for v in verdicts) else None
