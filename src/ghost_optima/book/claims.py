"""The claims registry and the pre-registered rules that turn figures into verdicts.

The registry (``claims.yml`` beside this file) declares every claim once: statement in English
and Japanese, source, the notebook that tests it, and its rule. A rule is three small boolean
expressions over named figures, fixed before the notebook runs::

    supported:     max_rel_change < 1e-10 and control_min_change > 1e-3
    not_supported: max_rel_change > 1e-6
    otherwise:     inconclusive

``evaluate`` reads them with a whitelist evaluator (comparisons, ``and``/``or``/``not``,
arithmetic, ``abs``/``min``/``max``, and ``x.lo``/``x.hi`` for a figure's interval), so a
rule is data, never code from a notebook. ``supported`` is checked first; when both
expressions are false the verdict is the rule's ``otherwise`` (``mixed`` or ``inconclusive``).
"""

import ast
import math
import operator
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

VERDICTS = ("supported", "not supported", "mixed", "inconclusive")
NOT_TESTED = "not yet tested"


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
    source: str
    notebook: str
    statement_en: str
    statement_ja: str
    rule: Rule | None


class RuleError(ValueError):
    """A rule that cannot be evaluated against the figures given."""


@cache
def registry() -> dict[str, Claim]:
    """Every registered claim by id, in the order of ``claims.yml``."""
    raw = yaml.safe_load(resources.files(__package__).joinpath("claims.yml").read_text("utf-8"))
    return {cid: _parse_claim(cid, entry) for cid, entry in raw.items()}


def join_cjk(text: str) -> str:
    """Drop the spaces that line folding leaves between Japanese characters."""
    return _CJK_GAP.sub("", " ".join(text.split()))


_CJK = "\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef"  # kana, CJK ideographs, full-width forms
_CJK_GAP = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")


def _parse_claim(cid: str, entry: dict) -> Claim:
    entry["statement_ja"] = join_cjk(entry["statement_ja"])
    rule = entry.pop("rule")
    if rule is not None:
        if rule["otherwise"] not in ("mixed", "inconclusive"):
            raise ValueError(f"claim {cid}: 'otherwise' must be mixed or inconclusive")
        rule = Rule(**rule)
        for expr in (rule.supported, rule.not_supported):
            _check_syntax(expr)
    return Claim(id=cid, rule=rule, **entry)


def figure_value(figure) -> float:
    """The point value of a figure given as a number or as ``{"value", "lo", "hi", ...}``."""
    return float(figure["value"] if isinstance(figure, dict) else figure)


def evaluate(rule: Rule, figures: dict) -> str:
    """The verdict of ``rule`` on ``figures`` (name -> number or dict with value/lo/hi)."""
    if rule.key not in figures:
        raise RuleError(f"the rule's key figure {rule.key!r} was not recorded")
    if _eval(rule.supported, figures):
        return "supported"
    if _eval(rule.not_supported, figures):
        return "not supported"
    return rule.otherwise


_COMPARE = {
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
_FUNCTIONS = {"abs": abs, "min": min, "max": max, "log10": math.log10}


def _check_syntax(expr: str) -> None:
    try:
        ast.parse(expr, mode="eval")
    except SyntaxError as err:
        raise ValueError(f"rule expression {expr!r} is not valid: {err.msg}") from None


def _eval(expr: str, figures: dict):
    return _node(ast.parse(" ".join(expr.split()), mode="eval").body, figures)


def _node(node: ast.AST, figures: dict):
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
            return all(_node(v, figures) for v in values)
        case ast.BoolOp(op=ast.Or(), values=values):
            return any(_node(v, figures) for v in values)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _node(operand, figures)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_node(operand, figures)
        case ast.BinOp(op=op, left=left, right=right) if type(op) in _BINARY:
            return _BINARY[type(op)](_node(left, figures), _node(right, figures))
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            values = [_node(left, figures)] + [_node(c, figures) for c in comparators]
            return all(
                _COMPARE[type(op)](a, b)
                for op, a, b in zip(ops, values[:-1], values[1:], strict=True)
            )
        case ast.Call(func=ast.Name(id=fname), args=args, keywords=[]) if fname in _FUNCTIONS:
            return _FUNCTIONS[fname](*(_node(a, figures) for a in args))
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
                "statement_en": claim.statement_en,
                "statement_ja": claim.statement_ja,
                "source": claim.source,
                "notebook": entry["notebook"] if entry else claim.notebook,
                "rule": claim.rule.text if claim.rule else None,
                "verdict": entry["verdict"] if entry else NOT_TESTED,
                "key": entry["key"] if entry else None,
                "figures": entry["figures"] if entry else {},
            }
        )
    return rows
