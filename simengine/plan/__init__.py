"""Compiled plan: a :class:`~simengine.scenario.Scenario` as typed arrays the kernels read.

Nothing here draws random numbers. Periods are 0-based inside the plan (period ``p`` is the
user's period ``p + 1``); "never" is encoded as ``periods`` (one past the legal final).
:mod:`.pool` builds the pool's arrays, :mod:`.waterfall` the structure's, :mod:`.providers` the
provider table both read.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._layout import ledger_width
from ..scenario import Scenario
from .pool import PoolPlan, check_pool_plan, compile_pool
from .providers import ProviderRow, provider_rows
from .waterfall import WaterfallPlan, check_waterfall_plan, compile_waterfall


@dataclass(frozen=True)
class Plan:
    """A scenario compiled for the kernels: the pool, the waterfall and the names behind indices."""

    pool: PoolPlan
    waterfall: WaterfallPlan
    tranche_names: tuple[str, ...]
    trigger_names: tuple[str, ...]
    industries: tuple[str, ...]
    technologies: tuple[str, ...]
    licensee_names: tuple[str, ...]
    ledger_width: int
    # per provider row: its migration scale's labels, best first, then "D" (None: it does not migrate)
    provider_grades: tuple[tuple[str, ...] | None, ...] = ()

    @property
    def periods(self) -> int:
        """Payment periods to the legal final."""
        return self.pool.periods

    @property
    def licences(self) -> int:
        """Licences in the pool."""
        return len(self.pool.licence_royalty)


def check_plan(plan: Plan) -> None:
    """Raise ValueError if ``plan``'s arrays disagree (lengths, indices, periods): the check the
    kernels get instead of bounds checks, before every chunk and ledger call (microseconds)."""
    check_pool_plan(plan.pool)
    check_waterfall_plan(plan.waterfall, len(plan.pool.provider_stream))
    if plan.waterfall.periods != plan.pool.periods:
        raise ValueError(f"plan.waterfall has {plan.waterfall.periods} periods, plan.pool {plan.pool.periods}")


def compile_plan(sc: Scenario) -> Plan:
    """Compile ``sc`` into the arrays the kernels read."""
    providers = provider_rows(sc)
    pool, names = compile_pool(sc, providers)
    waterfall, trigger_names = compile_waterfall(sc, providers, sc.model.deal.periods, sc.model.deal.periods_per_year)
    tranche_names = tuple(t.name for t in sc.model.structure.tranches)
    return Plan(pool=pool, waterfall=waterfall, tranche_names=tranche_names, trigger_names=trigger_names,
                industries=names["industries"], technologies=names["technologies"],
                licensee_names=names["licensees"], ledger_width=ledger_width(len(tranche_names)),
                provider_grades=tuple((*r.migration[0], "D") if r.migration else None for r in providers))


__all__ = ["Plan", "PoolPlan", "ProviderRow", "WaterfallPlan", "check_plan", "compile_plan", "provider_rows"]
