"""Credit-enhancement providers as rows of one table (kind, credit, loading, cap, covered tranches).

The kernels loop over rows, so a deal may have any number of providers; a row's kind (an index
into :data:`simengine._layout.PROVIDER_KINDS`) names the output columns its draws go to. Rows are
in :data:`simengine._layout.ASK_ORDER` of their kinds (the liquidity facility first, then
commitments, then guarantees; the scenario's sections before its ``[[structure.providers]]`` rows
of the same kind), which is the order providers are asked to cover a shortfall.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._layout import ASK_ORDER, K_LIQUIDITY, N_PROVIDER_KINDS, PROVIDER_KINDS
from ..ratings import provider_grade
from ..scenario import Scenario
from ..stats import normal_ppf

# the scenario section of each provider kind (structure.<section>); a section's provider is named
# by its section in reimburse steps
KIND_SECTIONS = {"commitment": "payment_commitment", "guarantee": "guarantee", "liquidity": "liquidity_facility"}


class ProviderRow(NamedTuple):
    """One provider: ``kind`` indexes PROVIDER_KINDS; ``stream`` addresses its latent draw."""

    kind: int
    stream: int
    pd_annual: float
    loading: float
    cap_amount: float  # inf: no cap
    covers: tuple[str, ...]
    name: str = ""
    grade: str = ""  # S&P letter grade at closing (simengine.ratings.provider_grade)
    migration: tuple | None = None  # (grades best first, one-year rows: grades then default, initial index)
    reimbursed: bool = False  # draws become a claim repaid by the waterfall's reimburse steps
    claim_rate: float = 0.0  # annual interest on the claim

    @property
    def is_liquidity(self) -> bool:
        """A liquidity facility: advances fees and interest, always reimbursed, its limit revolving."""
        return self.kind == K_LIQUIDITY


def provider_rows(sc: Scenario) -> list[ProviderRow]:
    """The scenario's providers, in the order they are asked.

    A section provider's random stream index is its kind's index, so that a deal's commitment
    provider draws the same latent variable with or without a guarantor beside it; the i-th row of
    ``[[structure.providers]]`` draws at stream ``N_PROVIDER_KINDS + i``.
    """
    st = sc.model.structure
    found = []
    for kind, name in enumerate(PROVIDER_KINDS):
        p = getattr(st, KIND_SECTIONS[name])
        if p is not None:
            found.append((ASK_ORDER.index(name), 0, kind, kind, KIND_SECTIONS[name], p))
    for i, p in enumerate(st.providers):
        kind = PROVIDER_KINDS.index(p.kind)
        found.append((ASK_ORDER.index(p.kind), 1 + i, kind, N_PROVIDER_KINDS + i, p.name, p))
    rows = []
    for _, _, kind, stream, name, p in sorted(found, key=lambda x: (x[0], x[1])):
        cap = p.cap_amount if p.cap_amount is not None else math.inf
        migration = None
        if getattr(p, "migration", None) is not None:
            grades, probs = p.migration.table()
            migration = (grades, probs, p.migration.initial_grade(p.rating))
        rows.append(ProviderRow(kind, stream, p.credit_pd_annual, float(p.loading), float(cap), tuple(p.covers),
                                name=name, grade=provider_grade(p.credit_pd_annual, getattr(p, "rating", None)),
                                migration=migration, reimbursed=bool(p.reimbursed or kind == K_LIQUIDITY),
                                claim_rate=float(p.claim_rate)))
    return rows


def migration_arrays(providers: list[ProviderRow], periods_per_year: int) -> dict:
    """The providers' migration model as :class:`~simengine.plan.PoolPlan` arrays.

    A migrating row's latent variable for year y is ``a·Z_y + sqrt(1 - a²)·e_y`` (``Z_y`` the
    year's global shocks, scaled to N(0, 1)); from grade g it moves to the worst state s with
    latent below ``migration_threshold[j, g, s] = Φ⁻¹(P(next state ≥ s | g))`` (states best
    first, default last), so each row of the one-year matrix is reproduced exactly.

    Returns provider_migrates (int64, (providers,): 1 if the row migrates), provider_initial_grade
    (int64), migration_states (int64: grades + 1, the last default), migration_threshold (float64,
    (providers, G, G + 1), padded with -inf), migration_default_pd (float64, (providers, G):
    one-year default probability from each grade) and periods_per_year.
    """
    n = len(providers)
    width = max([len(r.migration[0]) for r in providers if r.migration is not None], default=1)
    migrates = np.zeros(n, np.int64)
    initial = np.zeros(n, np.int64)
    states = np.ones(n, np.int64)
    threshold = np.full((n, width, width + 1), -np.inf)
    default_pd = np.zeros((n, width))
    for j, row in enumerate(providers):
        if row.migration is None:
            continue
        grades, probs, start = row.migration
        p = np.asarray(probs, float)
        p = p / p.sum(axis=1, keepdims=True)
        g = len(grades)
        migrates[j], initial[j], states[j] = 1, start, g + 1
        at_least = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]  # P(next state >= s | g), s = 0..g
        with np.errstate(divide="ignore"):
            threshold[j, :g, :g + 1] = normal_ppf(np.clip(at_least, 0.0, 1.0))
        threshold[j, :g, 0] = np.inf
        default_pd[j, :g] = p[:, -1]
    return {"provider_migrates": migrates, "provider_initial_grade": initial, "migration_states": states,
            "migration_threshold": threshold, "migration_default_pd": default_pd,
            "periods_per_year": int(periods_per_year)}
