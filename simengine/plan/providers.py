"""Credit-enhancement providers as rows of one table (kind, credit, loading, cap, covered tranches).

The kernels loop over rows, so a deal may have any number of providers; a row's kind (an index
into :data:`simengine._layout.PROVIDER_KINDS`) names the output columns its draws go to. Rows are
in kind order, which is the order providers are asked to cover a shortfall.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .._layout import PROVIDER_KINDS
from ..ratings import provider_grade
from ..scenario import Scenario

# the scenario section of each provider kind (structure.<section>)
KIND_SECTIONS = {"commitment": "payment_commitment", "guarantee": "guarantee"}


class ProviderRow(NamedTuple):
    """One provider: ``kind`` indexes PROVIDER_KINDS; ``stream`` addresses its latent draw."""

    kind: int
    stream: int
    pd_annual: float
    loading: float
    cap_amount: float  # inf: no cap
    covers: tuple[str, ...]
    grade: str = ""  # S&P letter grade at closing (simengine.ratings.provider_grade)


def provider_rows(sc: Scenario) -> list[ProviderRow]:
    """The scenario's providers, in the order they are asked.

    A provider's random stream index is its kind's index, so that a deal's commitment provider
    draws the same latent variable with or without a guarantor beside it.
    """
    rows = []
    for kind, name in enumerate(PROVIDER_KINDS):
        p = getattr(sc.model.structure, KIND_SECTIONS[name])
        if p is None:
            continue
        cap = p.cap_amount if p.cap_amount is not None else math.inf
        rows.append(ProviderRow(kind, kind, p.credit_pd_annual, float(p.loading), float(cap), tuple(p.covers),
                                provider_grade(p.credit_pd_annual, p.rating)))
    return rows
