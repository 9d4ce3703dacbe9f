"""Channel attribution: how much of each tranche's EL comes through obsolescence and demand."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..engine import RunSpec
from .crn import BASES, CommonRandomNumbers

# the paths re-run: a tenth of the run's (three variants then cost 30% of the simulation), at
# least 10,000 (or every path of a smaller run), at most 50,000; stated in attribution_paths
ATTRIBUTION_PATHS = 50_000
ATTRIBUTION_MIN_PATHS = 10_000
ATTRIBUTION_SHARE = 10
ATTRIBUTION_RULE = (f"the first min(paths, max({ATTRIBUTION_MIN_PATHS}, paths // {ATTRIBUTION_SHARE}), "
                    f"{ATTRIBUTION_PATHS}) paths (even with antithetic pairs)")
VARIANTS = {
    "no_obsolescence": {"risk.obsolescence.enabled": False},
    "no_demand": {"risk.demand.enabled": False},
    "credit_only": {"risk.obsolescence.enabled": False, "risk.demand.enabled": False},
}


def attribution_sample(paths: int, antithetic: bool, asked: int | None = None) -> int:
    """How many of a run's ``paths`` the channel attribution re-runs: ``asked`` (at most
    ``paths``) where given, else :data:`ATTRIBUTION_RULE`; rounded down to whole antithetic pairs."""
    n = min(paths, asked if asked is not None else max(ATTRIBUTION_MIN_PATHS, paths // ATTRIBUTION_SHARE),
            paths if asked is not None else ATTRIBUTION_PATHS)
    return max(n - n % 2, min(paths, 2)) if antithetic else n


def check_attribution_paths(asked, paths: int | None = None, name: str = "attribution_paths") -> None:
    """Refuse an ``attribution_paths`` (called ``name`` in the message) that is not a whole number
    from 1 to the run's ``paths`` (for a run with a path cap, the cap; None: not yet known):
    raises ValueError."""
    if isinstance(asked, bool) or not isinstance(asked, (int, np.integer)) or asked < 1:
        raise ValueError(f"{name} {asked!r}: expected a whole number >= 1")
    if paths is not None and asked > paths:
        raise ValueError(f"{name} {asked:,}: more than the run's {paths:,} paths; expected at most {paths:,}")


def attribution_choice(paths: int, antithetic: bool, asked: int | None = None) -> dict:
    """The provenance's ``channel_attribution``: the paths re-run (:func:`attribution_sample`) and why."""
    n = attribution_sample(paths, antithetic, asked)
    if asked is None:
        rule = ATTRIBUTION_RULE
    elif n == asked:
        rule = "asked for"
    else:  # a target-RSE run that stopped short of it, or an odd count with antithetic pairs
        why = f"the run stopped at {paths:,} paths" if asked > paths else "whole antithetic pairs"
        rule = f"asked for {asked:,}; {why}"
    return {"paths": n, "rule": rule}


def channel_attribution(spec: RunSpec, paths: int, full: Callable[[int], np.ndarray] | None = None,
                        attribution_paths: int | None = None) -> pd.DataFrame:
    """EL of every tranche and basis with obsolescence off, demand off and both off.

    The first :func:`attribution_sample` paths of the run's ``paths`` (``attribution_paths``
    where given) are re-run under common random numbers
    (:class:`CommonRandomNumbers`), so the differences are paired and their standard errors are
    those of per-path differences. ``via_obsolescence`` = EL(full) - EL(obsolescence off): the
    hazard multiplier on fixed royalties and the severity on running ones; ``via_demand`` likewise;
    ``interaction`` is what is left over the credit-only EL. A driver already off is not re-run.
    ``full(n)``, where given, returns the run's own weighted losses of its first ``n`` paths in the
    layout of :meth:`CommonRandomNumbers.weighted` (read from its spool: the same bits), so the
    full scenario is not simulated a second time.

    Returns one row per (tranche, basis): el, el_se, el_credit_only, el_credit_only_se,
    via_obsolescence, via_obsolescence_se, via_demand, via_demand_se, interaction,
    attribution_paths.
    """
    crn = CommonRandomNumbers(spec, attribution_sample(paths, spec.sampling.antithetic, attribution_paths))
    risk = spec.scenario.model.risk
    on = {"risk.obsolescence.enabled": risk.obsolescence.enabled, "risk.demand.enabled": risk.demand.enabled}
    loss = {"full": full(crn.paths) if full is not None else crn.weighted("loss_fraction")}
    for name, overrides in VARIANTS.items():
        effective = {k: v for k, v in overrides.items() if on[k]}  # switching off what is off changes nothing
        same = next((other for other, o in (("full", {}), *VARIANTS.items())
                     if other in loss and {k: v for k, v in o.items() if on[k]} == effective), None)
        loss[name] = loss[same] if same is not None else crn.weighted("loss_fraction", effective)
    rows = []
    for k, tranche in enumerate(spec.plan.tranche_names):
        for b, basis in BASES:
            full = loss["full"][:, b, k]
            row = {"tranche": tranche, "basis": basis, "attribution_paths": crn.paths}
            row["el"], row["el_se"] = crn.mean_se(full)
            row["el_credit_only"], row["el_credit_only_se"] = crn.mean_se(loss["credit_only"][:, b, k])
            row["via_obsolescence"], row["via_obsolescence_se"] = crn.mean_se(full - loss["no_obsolescence"][:, b, k])
            row["via_demand"], row["via_demand_se"] = crn.mean_se(full - loss["no_demand"][:, b, k])
            row["interaction"] = row["el"] - row["el_credit_only"] - row["via_obsolescence"] - row["via_demand"]
            rows.append(row)
    return pd.DataFrame(rows)
