"""Small deals computed by hand, shared by the waterfall tests."""

from __future__ import annotations


def quiet_risk() -> dict:
    """Licensee default on (with PD 0 in these deals), every other random driver off."""
    return {"default": {"enabled": True}, "obsolescence": {"enabled": False},
            "demand": {"enabled": False}, "legal": {"enabled": False}}


def obsolescence_cut_deal(name: str, trap_metric: str, **structure) -> dict:
    """One running licence of 100,000 a quarter, cut to half by its technology's obsolescence at
    period 3 (no volatility); a bullet senior S 300,000 at 8% and a deferrable junior J 100,000; a
    trap trigger on ``trap_metric`` below 10; ``structure`` adds providers and the like."""
    return {
        "deal": {"name": name, "periods_per_year": 4, "term_years": 1.0},
        "pool": {"licences": [{"id": "R", "royalty": 100_000.0, "royalty_type": "running", "pd_annual": 0.0,
                               "technology": "tech"}]},
        "risk": {**quiet_risk(),
                 "obsolescence": {"enabled": True, "technologies": {"tech": {"period": 3, "severity": 0.5}}},
                 "demand": {"enabled": True, "volatility_annual": 0.0}},
        "structure": {
            "tranches": [{"name": "S", "balance": 300_000.0, "coupon": 0.08, "amortisation": "bullet"},
                         {"name": "J", "balance": 100_000.0, "interest_deferrable": True}],
            "triggers": [{"name": trap_metric, "metric": trap_metric, "threshold": 10.0, "effect": "trap"}],
            **structure},
    }
