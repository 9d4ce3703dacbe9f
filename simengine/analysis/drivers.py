"""The risk drivers a committee moves: each a scalar with a base value, a range and a variant plan.

A driver's value ``x`` turns into a variant of the prepared run's plan: dotted scenario overrides
(recompiled: :meth:`CommonRandomNumbers.plan`) and/or arrays of the plan replaced. At its base
value every driver gives back the run's own arrays bit for bit, so a zero shock changes nothing.
Values grow in the direction of stress (more defaults, less cash), except that a higher global
correlation can help a junior tranche.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..plan import Plan
from ..plan.pool import hazard
from ..plan.providers import provider_rows
from ..scenario import Scenario

MULTIPLIER_CAP = 50.0  # the largest multiplier a breakeven search tries


class AnalysisInputError(ValueError):
    """An analysis was asked for something the run does not have (a driver, tranche, grade, option):
    the message says what was given and what was expected. The CLI turns it into exit code 2."""


@dataclass(frozen=True)
class Driver:
    """One risk driver of a scenario.

    ``overrides(x)`` gives dotted scenario overrides (None: the run's plan as it is) and
    ``transform(plan, x)`` a plan with arrays replaced (None: none); both are applied in that
    order. ``kind`` is ``"multiplier"`` (base 1, searched on a geometric grid) or ``"level"``
    (searched in steps of ``step``). ``shocks`` are the tornado's default (down, up) moves,
    added to ``base``.
    """

    name: str
    description: str
    kind: str
    base: float
    lo: float
    hi: float
    step: float
    shocks: tuple[float, float]
    overrides: Callable[[float], dict] | None = None
    transform: Callable[[Plan, float], Plan] | None = None

    def clip(self, x: float) -> float:
        """``x`` within the driver's range."""
        return float(min(max(x, self.lo), self.hi))

    def with_range(self, lo: float | None, hi: float | None) -> Driver:
        """The driver searched over [lo, hi] (each within its own range; None keeps it)."""
        lo = self.lo if lo is None else max(self.lo, float(lo))
        hi = self.hi if hi is None else min(self.hi, float(hi))
        if not lo <= self.base <= hi:
            raise AnalysisInputError(f"driver {self.name}: range [{lo:g}, {hi:g}]: expected a range that holds "
                                     f"its base value {self.base:g}")
        return dataclasses.replace(self, lo=lo, hi=hi)


def _pool(plan: Plan, **arrays) -> Plan:
    return dataclasses.replace(plan, pool=plan.pool._replace(**arrays))


def available_drivers(scenario: Scenario) -> tuple[dict[str, Driver], dict[str, str]]:
    """The drivers that act on ``scenario``: ({name: Driver}, {name: why not} for the others).

    Drivers (values in their own units):

    - ``pd_multiplier``: every licensee's annual PD times x (on top of ``risk.default.pd_multiplier``);
    - ``obsolescence_multiplier``: every technology's obsolescence hazard times x;
    - ``royalty_decline``: every royalty (and minimum royalty) cut by the fraction x, from period 1;
    - ``demand_drift``: every industry's log-demand drift lowered by x a year over the whole term
      (reaches running royalties directly, fixed ones through ``demand_hazard_elasticity``);
    - ``correlation``: the global factor's variance share (``risk.correlation.global``) set to x;
    - ``relicense_haircut``: ``risk.default.relicense_haircut`` set to x (licences without their own
      ``recovery``);
    - ``provider_pd_multiplier``: every credit-support provider's annual PD times x.
    """
    m = scenario.model
    risk = m.risk
    out: dict[str, Driver] = {}
    why: dict[str, str] = {}

    pds = [lic.credit_pd_annual for lic in scenario.licences]
    base_mult = risk.default.pd_multiplier
    if not risk.default.enabled:
        why["pd_multiplier"] = "licensee default is off (risk.default.enabled = false)"
    elif max(pds) * base_mult <= 0.0:
        why["pd_multiplier"] = "every licensee PD is 0"
    else:
        hi = min(MULTIPLIER_CAP, (1.0 - 1e-6) / (max(pds) * base_mult))
        out["pd_multiplier"] = Driver(
            "pd_multiplier", "licensee annual PD times x", "multiplier", 1.0, 0.0, hi, 0.0, (-0.5, 1.0),
            overrides=lambda x: {"risk.default.pd_multiplier": base_mult * x})

    if not risk.obsolescence.enabled:
        why["obsolescence_multiplier"] = "obsolescence is off (risk.obsolescence.enabled = false)"
    else:
        def obsolescence(plan: Plan, x: float) -> Plan:
            return _pool(plan, obsolescence_hazard_annual=plan.pool.obsolescence_hazard_annual * x)

        out["obsolescence_multiplier"] = Driver(
            "obsolescence_multiplier", "every technology's obsolescence hazard times x", "multiplier", 1.0, 0.0,
            MULTIPLIER_CAP, 0.0, (-0.5, 1.0), transform=obsolescence)

    def decline(plan: Plan, x: float) -> Plan:
        return _pool(plan, licence_royalty=plan.pool.licence_royalty * (1.0 - x))

    out["royalty_decline"] = Driver(
        "royalty_decline", "every royalty cut by the fraction x from period 1", "level", 0.0, -0.5, 1.0, 0.05,
        (-0.05, 0.05), transform=decline)

    if not risk.demand.enabled:
        why["demand_drift"] = "demand is off (risk.demand.enabled = false)"
    else:
        def drift(plan: Plan, x: float) -> Plan:
            return _pool(plan, demand_drift_annual=plan.pool.demand_drift_annual - x)

        out["demand_drift"] = Driver(
            "demand_drift", "log-demand drift lowered by x a year over the whole term", "level", 0.0, -0.5, 1.0,
            0.05, (-0.05, 0.05), transform=drift)

    corr = risk.correlation
    room = 1.0 - corr.industry - corr.region
    if not risk.default.enabled:
        why["correlation"] = "licensee default is off (risk.default.enabled = false)"
    else:
        out["correlation"] = Driver(
            "correlation", "global factor's variance share (risk.correlation.global) set to x", "level",
            float(corr.global_), 0.0, max(float(corr.global_), room), 0.1, (-0.1, 0.1),
            overrides=lambda x: {"risk.correlation.global": x})

    shared = [lic for lic in scenario.licences if lic.recovery is None]
    if not risk.default.enabled or not shared:
        why["relicense_haircut"] = ("licensee default is off" if not risk.default.enabled
                                    else "every licence has its own recovery")
    else:
        lo, hi = 0.0, 1.0
        sd = risk.default.recovery_stdev
        if risk.default.recovery_model == "beta" and sd > 0:
            # a beta recovery needs sd^2 < mean (1 - mean): the mean 1 - x within the roots
            half = 0.5 * math.sqrt(max(0.0, 1.0 - 4.0 * sd * sd))
            lo, hi = 0.5 - half + 1e-6, 0.5 + half - 1e-6
        base = float(risk.default.relicense_haircut)
        out["relicense_haircut"] = Driver(
            "relicense_haircut", "re-licensing haircut (risk.default.relicense_haircut) set to x", "level",
            base, min(lo, base), max(hi, base), 0.1, (-0.1, 0.1),
            overrides=lambda x: {"risk.default.relicense_haircut": x})

    rows = provider_rows(scenario)
    base_pd = np.array([row.pd_annual for row in rows], float)
    if not rows:
        why["provider_pd_multiplier"] = "no credit-support provider"
    elif base_pd.max() <= 0.0:
        why["provider_pd_multiplier"] = "every provider's PD is 0"
    else:
        def providers(plan: Plan, x: float) -> Plan:
            return _pool(plan, provider_hazard_annual=np.array([hazard(p * x) for p in base_pd], float))

        out["provider_pd_multiplier"] = Driver(
            "provider_pd_multiplier", "every provider's annual PD times x", "multiplier", 1.0, 0.0,
            min(MULTIPLIER_CAP, (1.0 - 1e-6) / base_pd.max()), 0.0, (-0.5, 1.0), transform=providers)
    return out, why


DRIVER_NAMES = ("pd_multiplier", "obsolescence_multiplier", "royalty_decline", "demand_drift", "correlation",
                "relicense_haircut", "provider_pd_multiplier")
TORNADO_DRIVERS = ("pd_multiplier", "obsolescence_multiplier", "royalty_decline", "correlation",
                   "relicense_haircut", "provider_pd_multiplier")


def check_known(names, known, what: str) -> list[str]:
    """``names`` as a list, each one of ``known``; raises AnalysisInputError naming the first unknown one
    (``what``: ``driver``, ``analysis``)."""
    names = list(names)
    for name in names:
        if name not in known:
            raise AnalysisInputError(f"{what} {name!r}: expected one of {', '.join(known)}")
    return names


def check_driver_names(names) -> list[str]:
    """``names`` as a list, each a known driver; raises AnalysisInputError naming the first unknown one."""
    return check_known(names, DRIVER_NAMES, "driver")


def variant_plan(crn, driver: Driver, x: float) -> Plan:
    """The plan of ``driver`` at value ``x`` over ``crn``'s prepared run."""
    plan = crn.plan(driver.overrides(x)) if driver.overrides is not None else crn.spec.plan
    return driver.transform(plan, x) if driver.transform is not None else plan
