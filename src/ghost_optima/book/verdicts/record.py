"""What a notebook records: glued numbers for the prose and claim verdicts for the ledger.

A notebook makes one ``Recorder`` and calls it for every number it puts into prose and for every
claim it tests::

    rec = Recorder("10_symmetry")
    rec.glue("n_archs", 120)                      # {glue:text}`n_archs` in the prose
    rec.claim("T1", {"max_rel_change": 3e-16, "control_min_change": est})

``claim`` evaluates the rule fixed in the registry (``claims.yml``) on the figures and shows
the verdict. Everything is written, after each call, to the JSON file named by the environment
variable ``GHOST_OPTIMA_RESULT`` (set by the build pipeline, which adds provenance once the
notebook succeeds); run interactively, the record goes to ``results/interactive/``.
"""

import json
import math
import os
import sys
from pathlib import Path

from ghost_optima.book.verdicts import claims as claims_registry
from ghost_optima.core import timing
from ghost_optima.core.stats import Estimate

RESULT_ENV = "GHOST_OPTIMA_RESULT"


def _plain(value):
    """A JSON-safe copy of a recorded value (numbers, strings, lists, dicts, Estimates)."""
    if isinstance(value, Estimate):
        return value.as_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):  # numpy and torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"refusing to record a non-finite number: {value}")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot record a value of type {type(value).__name__}")


class Recorder:
    """Collects one notebook's glued values and claim verdicts into its result file."""

    def __init__(self, notebook: str):
        self.notebook = notebook
        default = Path("results") / "interactive" / f"{notebook}.json"
        self.path = Path(os.environ.get(RESULT_ENV, default))
        self.values: dict = {}
        self.claims: dict = {}
        self._write()

    def glue(self, name: str, value, *, display: bool = False):
        """Store ``value`` under ``name`` and glue it for the book's prose.

        Numbers are read with ``{glue:text}`name:.3g```; strings are glued as Markdown and read
        with ``{glue:md}`name```.
        """
        from IPython.display import Markdown
        from myst_nb import glue

        plain = _plain(value)
        self.values[name] = plain
        self._write()
        glue(name, Markdown(plain) if isinstance(plain, str) else plain, display=display)
        return value

    def claim(self, claim_id: str, figures: dict, *, notes: str = "") -> str:
        """Record the figures for ``claim_id``, apply its registered rule, and show the verdict."""
        registry = claims_registry.registry()
        if claim_id not in registry:
            raise KeyError(f"unknown claim id {claim_id!r}; registered: {', '.join(registry)}")
        claim = registry[claim_id]
        if claim.rule is None:
            raise ValueError(f"claim {claim_id} has no rule in claims.yml: fix one before testing")
        if claim.notebook != self.notebook:
            raise ValueError(f"claim {claim_id} belongs to notebook {claim.notebook}")
        plain = _plain(figures)
        verdict = claims_registry.evaluate(claim.rule, plain)
        self.claims[claim_id] = {
            "verdict": verdict,
            "key": claim.rule.key,
            "rule_sha": claims_registry.rule_digest(claim.rule),
            "figures": plain,
            "notes": notes,
        }
        self._write()
        self._show(claim, verdict, plain)
        return verdict

    def _show(self, claim, verdict: str, figures: dict) -> None:
        from IPython.display import Markdown, display

        lines = [f"**{claim.id} — {claim.title}: {verdict}.** Rule: {claim.rule.text}", ""]
        lines += [f"- `{name}` = {format_figure(value)}" for name, value in figures.items()]
        display(Markdown("\n".join(lines)))

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "notebook": self.notebook,
            "values": self.values,
            "claims": self.claims,
            "threads": _torch_threads(),
            "kernels": timing.totals(),  # seconds and flops per kernel so far: provenance
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


def _torch_threads() -> int | None:
    """torch's thread count, where the notebook has imported torch (importing it here would
    cost a notebook without torch seconds for a number that does not concern it)."""
    torch = sys.modules.get("torch")
    return None if torch is None else torch.get_num_threads()


def format_figure(figure, digits: int = 3) -> str:
    """``value [lo, hi] (n=...)`` for an interval, or the number, to ``digits`` significant."""
    if isinstance(figure, dict):
        text = f"{figure['value']:.{digits}g}"
        if "lo" in figure:
            text += f" [{figure['lo']:.{digits}g}, {figure['hi']:.{digits}g}]"
        if "n" in figure:
            text += f" (n={figure['n']})"
        return text
    if isinstance(figure, float):
        return f"{figure:.{digits}g}"
    return str(figure)
