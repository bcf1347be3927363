"""A rule taken apart: each of its conditions with whether it held, and which way its key
figure points.

A rule (``claims.Rule``) is two boolean expressions over the recorded figures, ``supported``
(checked first) and ``not_supported``, and an ``otherwise`` verdict. Each expression is read as
a list of *conditions*: the operands of its top-level ``and`` (all must hold) or ``or`` (one
suffices), or the expression itself. :func:`explain` lists them with the values they read and
whether they held, as the registry states them: chapters show it instead of typing a rule's
conditions and thresholds again. :func:`key_direction` reads, from the same expressions, on
which side of its thresholds the key figure favours the claim, so pages can say in words chosen
by code whether the key figure points the claim's way and, when the verdict goes the other way,
which conditions decided it (:func:`deciding_conditions`).
"""

import ast
import operator
from dataclasses import dataclass

from ghost_optima.book.verdicts.claims import (
    COMPARISONS,
    FUNCTIONS,
    Claim,
    Rule,
    evaluate,
    evaluate_node,
    figure_value,
    parse_expression,
    registry,
)

BRANCHES = ("supported", "not supported")


@dataclass(frozen=True)
class Condition:
    """One condition of a rule's branch: its text as the registry writes it (normalised by
    ``ast.unparse``), whether it held on the figures, and the values it read, in order
    (``name`` for a figure's value, ``name.lo``/``name.hi`` for its interval's ends)."""

    branch: str  # "supported" or "not supported"
    text: str
    held: bool
    values: dict[str, float]
    key_bound: tuple[str, str, float] | None = None  # ("value"/"lo"/"hi", "<", threshold)


def _parts(expr: str) -> tuple[str, list[ast.AST]]:
    """``("all", operands)`` of a top-level ``and``, ``("any", ...)`` of an ``or``, or
    ``("this", [expression])``."""
    node = parse_expression(expr)
    if isinstance(node, ast.BoolOp):
        return ("all" if isinstance(node.op, ast.And) else "any"), list(node.values)
    return "this", [node]


def _read(node: ast.AST, figures: dict) -> dict[str, float]:
    """The figures a condition reads, in order of appearance: interval ends as ``x.lo``."""
    found: dict[str, float] = {}
    bounds = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
            bounds.add(id(inner.value))
    for inner in _in_order(node):
        if isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
            found[f"{inner.value.id}.{inner.attr}"] = evaluate_node(inner, figures)
        elif isinstance(inner, ast.Name) and id(inner) not in bounds:
            if inner.id not in FUNCTIONS:
                found[inner.id] = evaluate_node(inner, figures)
    return found


def _in_order(node: ast.AST):
    """Nodes of ``node`` depth first, left to right (``ast.walk`` is breadth first)."""
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _in_order(child)


def conditions(rule: Rule, figures: dict) -> dict[str, tuple[str, list[Condition]]]:
    """Per branch (``supported``, ``not supported``): how its conditions combine (``all``,
    ``any`` or ``this``) and each :class:`Condition` evaluated on ``figures``, with its
    ``key_bound`` when it compares the rule's key figure with a threshold. Raises
    ``claims.RuleError`` when a figure the rule reads was not recorded."""
    found = {}
    for branch, expr in zip(BRANCHES, (rule.supported, rule.not_supported), strict=True):
        how, nodes = _parts(expr)
        found[branch] = (
            how,
            [
                Condition(
                    branch,
                    ast.unparse(n),
                    bool(evaluate_node(n, figures)),
                    _read(n, figures),
                    _key_bound(n, rule.key, figures),
                )
                for n in nodes
            ],
        )
    return found


def number(x: float) -> str:
    """A value as the rule pages write it: 3 significant digits."""
    return f"{x:.3g}"


def condition_text(condition: Condition) -> str:
    """```x.hi < 0` (x.hi = -0.12)``: the condition and the values it read."""
    read = ", ".join(f"{name} = {number(v)}" for name, v in condition.values.items())
    return f"`{condition.text}`" + (f" ({read})" if read else "")


WORDS = {
    "all": "when all of these hold",
    "any": "when any of these holds",
    "this": "when this holds",
}


def explain(claim: str | Claim, figures: dict) -> str:
    """Markdown: the verdict of ``claim``'s registered rule on ``figures`` and each condition
    of each branch, with the values it read and whether it held; the ``otherwise`` verdict
    last. Read from ``claims.yml``, so a chapter states no condition or threshold itself."""
    claim = registry()[claim] if isinstance(claim, str) else claim
    rule = claim.rule
    if rule is None:
        raise ValueError(f"claim {claim.id} has no rule in claims.yml")
    verdict = evaluate(rule, figures)
    lines = [f"The rule of {claim.id} on these figures gives **{verdict}**. It says:", ""]
    for branch, (how, found) in conditions(rule, figures).items():
        first = " (checked first)" if branch == "supported" else ""
        lines.append(f"- *{branch}*{first} {WORDS[how]}:")
        for condition in found:
            lines.append(
                f"  - {condition_text(condition)}: **{'held' if condition.held else 'no'}**"
            )
    lines.append(f"- otherwise *{rule.otherwise}*.")
    return "\n".join(lines)


def deciding_conditions(rule: Rule, figures: dict) -> list[Condition]:
    """The conditions that gave the verdict: for ``supported``, every condition of that branch;
    for ``not supported``, those of its branch that held (all of them under ``all``); for the
    ``otherwise`` verdict, the conditions for support that failed."""
    verdict = evaluate(rule, figures)
    found = conditions(rule, figures)
    if verdict == "supported":
        return found["supported"][1]
    if verdict == "not supported":
        return [c for c in found["not supported"][1] if c.held]
    return [c for c in found["supported"][1] if not c.held]


@dataclass(frozen=True)
class Direction:
    """Where the key figure favours the claim: ``value <op> threshold`` for every pair of
    ``bounds`` (the rule's comparisons of its key with a threshold), negated when the bounds
    come from the ``not supported`` branch (``against``)."""

    bounds: tuple[tuple[str, float], ...]  # (operator symbol, threshold)
    against: bool

    def favours(self, value: float) -> bool:
        held = [_SYMBOLS[symbol](value, t) for symbol, t in self.bounds]
        return not any(held) if self.against else all(held)


_SYMBOLS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _is_key(node: ast.AST, key: str) -> bool:
    if isinstance(node, ast.Attribute) and node.attr in ("lo", "hi"):
        node = node.value
    return isinstance(node, ast.Name) and node.id == key


def _mentions(node: ast.AST, key: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == key for n in ast.walk(node))


def _key_bound(node: ast.AST, key: str, figures: dict) -> tuple[str, str, float] | None:
    """``(part, symbol, threshold)`` when ``node`` is a simple comparison of the key figure
    (``part``: its ``value``, or its interval's ``lo`` or ``hi``) with a threshold, either way
    round (the threshold may be an expression of other figures); else None."""
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
        return None
    symbol = next(s for s, f in _SYMBOLS.items() if f is COMPARISONS[type(node.ops[0])])
    left, right = node.left, node.comparators[0]
    if _is_key(right, key) and not _mentions(left, key):
        left, right, symbol = right, left, _FLIPPED[symbol]
    if not (_is_key(left, key) and not _mentions(right, key)):
        return None
    part = left.attr if isinstance(left, ast.Attribute) else "value"
    return part, symbol, float(evaluate_node(right, figures))


def _bounds(nodes: list[ast.AST], key: str, figures: dict) -> list[tuple[str, float]]:
    """``(symbol, threshold)`` of each simple comparison of the key among ``nodes``."""
    found = [_key_bound(node, key, figures) for node in nodes]
    return [(symbol, threshold) for _, symbol, threshold in filter(None, found)]


def key_direction(rule: Rule, figures: dict) -> Direction | None:
    """Which side of its thresholds the key figure favours the claim on, read from the rule:
    the comparisons of the key with a threshold among the conditions of ``supported`` (all
    must hold for the key to favour the claim), or else among those of ``not supported``
    (none may hold). None when the rule compares its key with no threshold at the top level."""
    for branch, expr in zip(BRANCHES, (rule.supported, rule.not_supported), strict=True):
        _, nodes = _parts(expr)
        bounds = _bounds(nodes, rule.key, figures)
        if bounds:
            return Direction(tuple(bounds), against=branch == "not supported")
    return None


def favours_claim(rule: Rule, figures: dict) -> bool | None:
    """Whether the key figure's value lies on the side its rule favours (None: no direction)."""
    direction = key_direction(rule, figures)
    if direction is None:
        return None
    return direction.favours(figure_value(figures[rule.key]))


def threshold(
    claim: str | Claim, read: str, branch: str = "supported", figures: dict | None = None
) -> float:
    """The threshold the registered rule of ``claim`` compares ``read`` with in ``branch``:
    ``read`` is a figure ``x`` or an interval's end ``x.lo``/``x.hi``, compared (either way
    round, anywhere in the branch's expression) with a number, or with an expression of other
    figures, given in ``figures``. For prose and plots that must use a rule's own bar instead
    of typing it again. Raises ``ValueError`` unless exactly one threshold is found."""
    found = thresholds(claim, read, branch, figures)
    if len(found) != 1:
        claim_id = claim if isinstance(claim, str) else claim.id
        raise ValueError(f"the {branch} rule of {claim_id} compares {read} with {found}")
    return found[0]


def thresholds(
    claim: str | Claim, read: str, branch: str = "supported", figures: dict | None = None
) -> list[float]:
    """Every threshold, ascending, that ``branch`` of the rule of ``claim`` compares ``read``
    with (see :func:`threshold`), for a rule that reads one figure against several bars (e.g.
    a band ``-t <= x.lo and x.hi <= t``)."""
    claim = registry()[claim] if isinstance(claim, str) else claim
    expr = claim.rule.supported if branch == "supported" else claim.rule.not_supported
    name, _, part = read.partition(".")
    found = set()
    for node in ast.walk(parse_expression(expr)):
        if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
            continue
        bound = _key_bound(node, name, figures or {})
        if bound and bound[0] == (part or "value"):
            found.add(bound[2])
    return sorted(found)
