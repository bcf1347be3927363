"""Calibration and power of the empirical claims' key figures, from a build's replications.

The main run of a claim notebook and its replications (``verify``: the same experiment with
disjoint base seeds) are ``k = R + 1`` independent runs of one experiment. Their key figures
test two things the book otherwise takes on trust.

**Calibration.** Each run gives its key figure a 95% percentile bootstrap interval over the
units that vary; if that interval is honest, the key figure moves from run to run by about
its width. Defined, for a key figure recorded with an interval ``[lo, hi]`` in every run:

- the *spread*: the sample standard deviation (``ddof=1``) of the ``k`` runs' key figures;
- the *within-run SE*: the mean over the ``k`` runs of ``(hi - lo) / (2 * Z95)``, the standard
  error a normal 95% interval of that width implies (``Z95 = 1.96``);
- the *replication ratio*: spread / within-run SE. About 1 when the intervals are calibrated;
  above ``CALIBRATION_LIMIT`` the key figure is named *overdispersed* on the ledger (its interval
  understates how much it moves between runs). Under calibration, ``(k - 1) ratio**2`` is
  about chi-square with ``k - 1`` degrees of freedom, so a ratio above 2 happens by chance with
  probability 0.003 at ``k = 5`` and 0.05 at ``k = 2``.

**The main run among its replications.** The main run is one draw of the same experiment, so
its key figure should look like theirs: it *agrees* when it lies within the range (lowest to
highest) of the replications' key figures, or, failing that, when its own interval overlaps
the interval of at least one replication. Otherwise the ledger flags it.

**Power.** For an empirical claim with a decided verdict (``supported`` or ``not supported``),
the units its key figure would need for that verdict to hold in ``POWER_RUNS`` of
``POWER_RUNS`` replications, at the effect the runs observed:

- the *effect*: the distance from the mean of the ``k`` runs' key figures to the nearest bar
  its rule compares the key figure with (its value, or an interval's end, in either branch);
- the key figure varies between runs with the spread ``s`` at the ``n`` units it was computed
  from (the figure's ``n``), and as ``1 / sqrt(units)``: ``s sqrt(n / N)`` at ``N`` units. When
  the nearest bar is read on an interval's end (``x.lo`` or ``x.hi``), the interval's mean
  half-width ``h`` (also shrinking as ``1 / sqrt(units)``) must clear it too;
- a run keeps the verdict when its key figure stays on the runs' side of that bar, beyond the
  half-width when one applies. All ``POWER_RUNS`` runs do so with probability ``POWER`` when each
  does with probability ``POWER ** (1 / POWER_RUNS)``: ``(effect - h sqrt(n/N)) / (s sqrt(n/N))
  >= z``, ``z = Phi^-1(POWER ** (1 / POWER_RUNS))`` (1.61), that is
  ``N = n ((z s + h) / effect) ** 2``, rounded up;
- the rule for the label, fixed before any number was seen: a claim whose ``N`` exceeds the
  ``n`` units its profile gave it is **underpowered at this budget**, and the ledger says so,
  with the units it would need, beside its verdict instead of letting it stand alone.

The effect and spread are the runs' own; with few runs (the quick profile makes one
replication) both are rough, and the pages say how many runs they come from.
"""

Z95 = 1.96
"""The normal quantile of a two-sided 95% interval: a half-width over Z95 is a standard error."""
CALIBRATION_LIMIT = 2.0
"""A key figure whose replication ratio exceeds this is named overdispersed on the ledger."""
POWER_RUNS = 4
"""The replications a verdict should hold in, all of them (the published profile makes 4)."""
POWER = 0.8
"""The probability with which the verdict should hold in all ``POWER_RUNS`` replications."""
UNDERPOWERED = "underpowered at this budget"
"""The label of an empirical claim whose units needed (``POWER``, ``POWER_RUNS``) exceed the
units its profile gave its key figure."""
