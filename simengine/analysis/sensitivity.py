"""Tornado sensitivities: each driver moved down and up, the change in every tranche's EL and PD
with paired standard errors (common random numbers on the run's paths, its measure frozen).

One base run, then one run per (driver, shock): the plan is reused where a driver only replaces
arrays, recompiled (not re-jitted) where it overrides scenario keys, and no pilot is run again.
"""

from __future__ import annotations

import logging
import time

import pandas as pd

from ..engine import RunSpec
from .crn import BASES, CommonRandomNumbers
from .drivers import TORNADO_DRIVERS, AnalysisInputError, available_drivers, check_driver_names, variant_plan

log = logging.getLogger("simengine")


# (w · loss, w · defaulted) per path, each ndarray(float64), shape (paths, 2, tranches)
WEIGHTED = ("loss_fraction", "defaulted")


def sensitivity(spec: RunSpec, drivers=None, shocks: dict | None = None, paths: int | None = None) -> pd.DataFrame:
    """The tornado: every tranche's EL and PD with each driver moved down and up.

    Parameters
    ----------
    spec : RunSpec
        The prepared base run (its sampling measure is frozen: no new pilot).
    drivers : iterable of str, optional
        Default: :data:`simengine.analysis.drivers.TORNADO_DRIVERS` that act on the scenario (a
        driver named here that does not act on it is an error).
    shocks : dict, optional
        ``{driver: (down, up)}``, signed moves added to the driver's base value and clipped to its
        range (default: each driver's own: multipliers -0.5 and +1, i.e. 0.5x and 2x; correlation
        and haircut -0.1 and +0.1; royalty decline and demand drift -0.05 and +0.05).
        A shock of 0 re-runs the base plan: the change is exactly 0.
    paths : int, optional
        Paths re-run (the first ones of the run; default the run's).

    Returns
    -------
    pandas.DataFrame
        One row per (driver, side, tranche, basis): shock, value (clipped), base_value, el_base,
        el, el_change (variant - base) and pd likewise, each with its standard error (the change's
        paired), ``paths``, ``seconds`` (the variant's run). ``frame.attrs["timings"]`` holds the
        base run's and the total seconds.
    """
    available, why = available_drivers(spec.scenario)
    if drivers is None:
        names = [n for n in TORNADO_DRIVERS if n in available]
        for n in TORNADO_DRIVERS:
            if n not in available:
                log.info("sensitivity: %s left out (%s)", n, why[n])
    else:
        names = check_driver_names(drivers)
        for n in names:
            if n not in available:
                raise AnalysisInputError(f"driver {n!r} does not act on this scenario: {why[n]}")
    shocks = dict(shocks or {})
    for n, pair in shocks.items():
        check_driver_names([n])
        if len(pair) != 2:
            raise AnalysisInputError(f"shocks of {n!r}: expected (down, up), got {pair!r}")
    crn = CommonRandomNumbers(spec, paths if paths is not None else spec.paths)
    t0 = time.perf_counter()
    base_loss, base_def = crn.weighted_columns(WEIGHTED).columns
    base_seconds = time.perf_counter() - t0
    rows = []
    for name in names:
        d = available[name]
        down, up = shocks.get(name, d.shocks)
        for side, shock in (("down", float(down)), ("up", float(up))):
            value = d.clip(d.base + shock)
            t1 = time.perf_counter()
            loss, defaulted = crn.weighted_columns(WEIGHTED, plan=variant_plan(crn, d, value)).columns
            seconds = time.perf_counter() - t1
            for k, tranche in enumerate(spec.plan.tranche_names):
                for b, basis in BASES:
                    el = crn.paired(base_loss[:, b, k], loss[:, b, k])
                    pd_ = crn.paired(base_def[:, b, k], defaulted[:, b, k])
                    rows.append({
                        "driver": name, "side": side, "shock": shock, "value": value, "base_value": d.base,
                        "clipped": value != d.base + shock, "tranche": tranche, "basis": basis,
                        "el_base": el.base, "el_base_se": el.base_se, "el": el.variant, "el_se": el.variant_se,
                        "el_change": el.difference, "el_change_se": el.difference_se,
                        "pd_base": pd_.base, "pd_base_se": pd_.base_se, "pd": pd_.variant, "pd_se": pd_.variant_se,
                        "pd_change": pd_.difference, "pd_change_se": pd_.difference_se,
                        "paths": crn.paths, "seconds": seconds,
                    })
    frame = pd.DataFrame(rows)
    frame.attrs["timings"] = {"base_seconds": base_seconds, "total_seconds": time.perf_counter() - t0,
                              "variants": 2 * len(names), "paths": crn.paths}
    return frame
