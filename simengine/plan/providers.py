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

from .._layout import ASK_ORDER, K_LIQUIDITY, N_PROVIDER_KINDS, PROVIDER_KINDS
from ..scenario import Scenario

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
        rows.append(ProviderRow(kind, stream, p.credit_pd_annual, float(p.loading), float(cap), tuple(p.covers),
                                name, bool(p.reimbursed or kind == K_LIQUIDITY), float(p.claim_rate)))
    return rows
