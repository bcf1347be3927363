"""Words in the prose that depend on a number, chosen by code from the number.

A sentence such as "the exponent is *close to* 1" or "the cloud *does not reach* the ghost" is a
claim about a figure; typed by hand it can silently disagree with the figure after a re-run.
Notebooks glue the word these functions return instead (``rec.glue("t6_reach", word)``), and
the thresholds are stated in the call, next to the figure they judge.
"""


def by_interval(estimate: dict, threshold: float, words: tuple[str, str, str]) -> str:
    """``words[0]`` when the whole interval lies below ``threshold``, ``words[2]`` when it lies
    above, ``words[1]`` when it straddles it (the data cannot tell).

    ``estimate`` is a recorded interval figure: ``{"value", "lo", "hi", ...}`` (an
    ``Estimate.as_dict()``).
    """
    below, straddles, above = words
    if estimate["hi"] < threshold:
        return below
    if estimate["lo"] > threshold:
        return above
    return straddles


def by_value(value: float, threshold: float, words: tuple[str, str]) -> str:
    """``words[0]`` when ``value < threshold``, else ``words[1]``."""
    return words[0] if value < threshold else words[1]


def near(estimate: dict, target: float, tolerance: float, words: tuple[str, str]) -> str:
    """``words[0]`` ("close to") when the interval lies within ``target +- tolerance``, else
    ``words[1]`` ("far from")."""
    inside = target - tolerance <= estimate["lo"] and estimate["hi"] <= target + tolerance
    return words[0] if inside else words[1]


def phrase_text(phrase: dict, status: str, lang: str, by_id: dict[str, dict]) -> str:
    """A text given as ``{below, straddles, above}`` is chosen by :func:`by_interval` of the
    figure ``phrase["figure"]`` names (``{claim, key, threshold}``); "straddles" without it."""
    text, spec = phrase[f"{status}_{lang}"], phrase.get("figure")
    if not isinstance(text, dict):  # a plain phrase
        return text
    fig = (by_id[spec["claim"]].get("figures") or {}).get(spec["key"])
    if not (isinstance(fig, dict) and "lo" in fig):
        return text["straddles"]
    return text[by_interval(fig, spec["threshold"], ("below", "straddles", "above"))]
