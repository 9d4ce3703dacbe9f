"""Concentration, Euler contributions and provider cost (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

import simengine as se
from simengine.analysis.contributions import OTHERS, UNALLOCATED, concentration, contributions
from simengine.analysis.provider_cost import irr_per_period, provider_cost
from simengine.simulation import prepare
from simengine.stats import weighted_quantile_es, weighted_quantiles

GUANGZHOU = "scenarios/guangzhou_patent_2019.toml"


@pytest.fixture(scope="module")
def guangzhou():
    sc = se.load_scenario(GUANGZHOU).with_overrides({"simulation.cashflow_sample_paths": 200})
    return se.simulate(sc, paths=6_000, seed=21, chunk_paths=2_500, progress=False)


def test_concentration_by_hand():
    c = concentration(prepare(se.load_scenario(GUANGZHOU), paths=10).plan).iloc[0]
    royalties = np.array([4.5, 4.2, 3.8, 3.5, 3.2, 3.0, 2.5, 2.2, 1.7, 1.2, 0.3])  # a quarter, 12 quarters each
    share = royalties / royalties.sum()
    assert c["hhi"] == pytest.approx((share ** 2).sum())
    assert c["top1_share"] == pytest.approx(4.5 / 30.1) and c["top5_share"] == pytest.approx(19.2 / 30.1)
    diffs = np.abs(royalties[:, None] - royalties[None, :]).sum()
    assert c["gini"] == pytest.approx(diffs / (2 * len(royalties) ** 2 * royalties.mean()))
    assert c["largest_licensee"].startswith("SME-01") and c["licensees"] == 11


def test_contributions_sum_to_el_and_es(guangzhou):
    table = contributions(guangzhou.spec, top=11, level=0.99)
    s = guangzhou.summary.set_index("tranche")
    w = guangzhou.weights
    for (tranche, basis), g in table.groupby(["tranche", "basis"]):
        prefix = "" if basis == "enhanced" else "standalone_"
        el = s.loc[tranche, prefix + "el"]
        assert g["el"].iloc[0] == el  # the same paths and weights as the run
        assert g["el_contribution"].sum() == pytest.approx(el, rel=1e-12, abs=1e-15)
        loss = guangzhou.tranche_losses
        loss = loss.loc[loss.tranche == tranche, prefix + "loss_fraction"].to_numpy()
        es = weighted_quantile_es(loss, w, [0.99])[0][1]
        assert g["es"].iloc[0] == pytest.approx(es, rel=1e-12)
        assert g["es_contribution"].sum() == pytest.approx(es, rel=1e-12, abs=1e-15)
        # fixed royalties: every licensee's shortfall is >= 0, so every contribution is, and with
        # every licensee listed nothing is left to "others"; the pool never collects above plan
        assert (g["el_contribution"] >= 0).all() and (g["es_contribution"] >= 0).all()
        rest = g.set_index("licensee").loc[[OTHERS, UNALLOCATED], "el_contribution"]
        assert np.abs(rest.to_numpy()).max() <= 1e-12 * max(el, 1e-300)
    sub = table[(table.tranche == "subordinated") & (table.basis == "enhanced")]
    assert sub["el_contribution"].gt(0).sum() == 11 and sub["contribution_rank"].min() == 1


def test_listing_fewer_licensees_moves_only_the_rest(guangzhou):
    """A listed licensee's contribution does not depend on how many are listed; the others
    take exactly what the unlisted ones took."""
    full = contributions(guangzhou.spec, paths=3_000, top=11).set_index(["tranche", "basis", "licensee"])
    few = contributions(guangzhou.spec, paths=3_000, top=3).set_index(["tranche", "basis", "licensee"])
    key = ("subordinated", "standalone")
    listed = few.loc[key].index.difference([OTHERS, UNALLOCATED])
    assert len(listed) == 3
    np.testing.assert_allclose(few.loc[key].loc[listed, "el_contribution"],
                               full.loc[key].loc[listed, "el_contribution"], rtol=1e-12)
    unlisted = full.loc[key].index.difference(list(listed) + [OTHERS, UNALLOCATED])
    assert few.loc[key].loc[OTHERS, "el_contribution"] == pytest.approx(
        full.loc[key].loc[unlisted, "el_contribution"].sum(), rel=1e-9)


def test_zero_pd_licensees_contribute_nothing():
    """Only two licensees can default (legal risk off): everyone else's contribution is exactly 0."""
    sc = se.load_scenario(GUANGZHOU)
    over = {f"pool.licences.{i}.pd_annual": 0.0 for i in range(2, 11)}
    over.update({"risk.legal.enabled": False, "pool.licences.0.pd_annual": 0.2, "pool.licences.1.pd_annual": 0.2})
    spec = prepare(sc.with_overrides(over), paths=2_000, seed=2)
    table = contributions(spec, top=11)
    g = table[(table.tranche == "subordinated") & (table.basis == "standalone")].set_index("licensee")
    assert g["el"].iloc[0] > 0
    movers = [n for n in g.index if n.startswith(("SME-01", "SME-02"))]
    assert g.drop(index=movers)["el_contribution"].abs().max() == 0.0
    assert g.loc[movers, "el_contribution"].sum() == pytest.approx(g["el"].iloc[0], rel=1e-12)


def test_draw_quantiles_match_tranche_losses(guangzhou):
    cost = provider_cost(guangzhou.spec).set_index(["item", "statistic"])
    tl = guangzhou.tranche_losses
    w = guangzhou.weights
    levels = (0.5, 0.9, 0.95, 0.99, 0.999)
    for kind in ("commitment", "guarantee"):
        per_path = tl.groupby("path", sort=True)[f"{kind}_draw_amount"].sum().to_numpy()
        direct = weighted_quantiles(per_path, w, levels)
        for level, q in zip(("q50", "q90", "q95", "q99", "q999"), direct):
            assert cost.loc[(f"{kind}_draw_amount", level), "value"] == q
        assert cost.loc[(f"{kind}_draw_amount", "mean"), "value"] == pytest.approx((w * per_path).mean(), rel=1e-12)
        assert cost.loc[(f"{kind}_draw_amount", "p_positive"), "value"] == pytest.approx((w * (per_path > 0)).mean())
    assert cost.loc[("commitment_draw_amount", "p_positive"), "value"] > 0  # the test sees draws


def test_undiscounted_pv_equals_amount_and_drawn_years_add_up():
    """With a zero discount rate the ledger-timed PV of draws and residual equals their amounts
    (the ledgers and the per-tranche draw columns agree path by path)."""
    sc = se.load_scenario(GUANGZHOU).with_overrides({"deal.discount_rate": 0.0})
    cost = provider_cost(prepare(sc, paths=3_000, seed=8))
    for item in ("commitment_draw", "guarantee_draw", "residual"):
        amount = cost.loc[cost.item == f"{item}_amount", "value"].to_numpy()
        pv = cost.loc[cost.item == f"{item}_pv_amount", "value"].to_numpy()
        np.testing.assert_allclose(pv, amount, rtol=1e-9, atol=1e-6)
    p_any = cost.loc[(cost.item == "commitment_draw_amount") & (cost.statistic == "p_positive"), "value"].iloc[0]
    by_year = cost.loc[cost.item == "commitment_drawn", "value"]
    assert by_year.max() <= p_any <= by_year.sum() + 1e-12


def test_irr_by_hand():
    flows = np.array([[-100.0, 110.0, 0.0], [-100.0, 0.0, 121.0], [-100.0, 0.0, 0.0], [100.0, 10.0, 0.0],
                      [-100.0, 50.0, 60.5]])
    irr = irr_per_period(flows)
    np.testing.assert_allclose(irr[[0, 1]], [0.1, 0.1], rtol=1e-9)
    assert irr[2] == -1.0 and np.isnan(irr[3])
    assert 50 / (1 + irr[4]) + 60.5 / (1 + irr[4]) ** 2 == pytest.approx(100.0)
