"""Reduction to the one-factor copula (SPEC §7): with demand, obsolescence and legal risk off, one
payment date and zero coupons, tranche losses are slices of the pool loss, and the default-count
distribution and tranche EL must match quadrature (finite pool) and the large-pool limit.

Tolerances come from Monte Carlo standard errors with fixed seeds: each comparison allows
``Z_TOL`` standard errors, with ``Z_TOL`` set from a family-wise false-alarm rate of 1e-3 over
the comparisons of one test (Bonferroni), so a correct engine fails a test about once in a
thousand seeds and a biased one fails as soon as the bias exceeds a few standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from references import default_count_pmf, granularity_gap, tranche_el_finite, tranche_el_large_pool, tranche_pd_finite
from scipy import stats

import simengine as se

SLICES = {"senior": (0.10, 1.00), "mezzanine": (0.03, 0.10), "equity": (0.0, 0.03)}


def z_tol(comparisons: int, family_alpha: float = 1e-3) -> float:
    return float(stats.norm.isf(family_alpha / (2 * comparisons)))


def homogeneous(n: int, pd_: float, rho: float, copula: str = "gaussian", dof: float = 5.0):
    base = se.load_scenario("scenarios/synthetic_homogeneous.toml")
    tranches = [{"name": name, "balance": (d - a) * n, "interest_deferrable": True}
                for name, (a, d) in SLICES.items()]
    return base.with_overrides({
        "pool.generate.count": n, "pool.generate.pd_annual": pd_, "risk.correlation.global": rho,
        "risk.default.copula": copula, "risk.default.dof": dof, "structure.tranches": tranches,
    })


def check_default_counts(res, n, pmf):
    counts = np.bincount(res.pool_paths["licensee_defaults"].to_numpy(), minlength=n + 1)
    paths = counts.sum()
    # bins with at least 20 expected paths; the rest pooled into a tail bin
    keep = pmf * paths >= 20
    tail_p = pmf[~keep].sum()
    probs = np.append(pmf[keep], tail_p)
    observed = np.append(counts[keep], counts[~keep].sum()) / paths
    se_bins = np.sqrt(probs * (1 - probs) / paths)
    z = np.abs(observed - probs) / se_bins
    assert z.max() < z_tol(len(probs)), (z.max(), np.argmax(z))
    # and the whole distribution at once
    chi2 = float(((observed - probs) ** 2 / probs).sum() * paths)
    assert stats.chi2.sf(chi2, len(probs) - 1) > 1e-3, chi2


def check_tranche_els(res, expected: dict):
    s = res.summary.set_index("tranche")
    tol = z_tol(len(expected))
    for name, el in expected.items():
        got, se_ = s.loc[name, "el"], s.loc[name, "el_se"]
        assert abs(got - el) <= tol * se_, (name, got, el, se_)
        # standalone = enhanced here: no providers
        assert s.loc[name, "standalone_el"] == got


@pytest.mark.parametrize("copula", ["gaussian", "student_t"])
def test_finite_pool_matches_quadrature(copula):
    n, pd_, rho = 100, 0.05, 0.2
    res = se.simulate(homogeneous(n, pd_, rho, copula), paths=40_000, seed=11, progress=False)
    pmf = default_count_pmf(n, pd_, rho, copula=copula)
    check_default_counts(res, n, pmf)
    check_tranche_els(res, {name: tranche_el_finite(n, pd_, rho, a, d, copula=copula)
                            for name, (a, d) in SLICES.items()})
    # tranche PD = P(L > attachment), compared with the Wilson-consistent standard error
    s = res.summary.set_index("tranche")
    for name in ("senior", "mezzanine"):
        want = tranche_pd_finite(n, pd_, rho, SLICES[name][0], copula=copula)
        se_ = np.sqrt(want * (1 - want) / res.paths)
        assert abs(s.loc[name, "pd"] - want) <= z_tol(2) * se_, (name, s.loc[name, "pd"], want)


@pytest.mark.parametrize("copula", ["gaussian", "student_t"])
def test_large_pool_matches_limit(copula):
    """5,000 names: senior and mezzanine EL against the infinitely granular limit (Vasicek for
    Gaussian). The thin first-loss slice [0, 3%] still feels granularity at 5,000 names; the
    finite-pool test above covers it exactly."""
    n, pd_, rho, paths = 5_000, 0.05, 0.2, 8_000
    res = se.simulate(homogeneous(n, pd_, rho, copula), paths=paths, seed=5, progress=False)
    s = res.summary.set_index("tranche")
    expected = {}
    for name in ("senior", "mezzanine"):
        a, d = SLICES[name]
        limit = tranche_el_large_pool(pd_, rho, a, d, copula=copula)
        gap = granularity_gap(n, pd_, rho, a, d, copula=copula)
        # the comparison is only honest if granularity is invisible at this MC precision
        assert abs(gap) < 0.25 * s.loc[name, "el_se"], (name, gap)
        expected[name] = limit
    check_tranche_els(res, expected)


def test_vasicek_closed_form_agrees_with_quadrature():
    """The large-pool quadrature used above equals Vasicek's closed form for the Gaussian copula."""
    from references import vasicek_cdf, vasicek_tranche_pd

    pd_, rho = 0.05, 0.2
    x = np.linspace(1e-4, 1 - 1e-4, 200_001)
    dens = np.gradient(vasicek_cdf(x, pd_, rho), x)
    for a, d in SLICES.values():
        closed = np.trapezoid(dens * np.clip(x - a, 0, d - a), x) / (d - a)
        assert closed == pytest.approx(tranche_el_large_pool(pd_, rho, a, d), rel=1e-3)
    assert vasicek_tranche_pd(pd_, rho, 0.1) == pytest.approx(
        float(stats.norm.cdf((stats.norm.ppf(pd_) - np.sqrt(1 - rho) * stats.norm.ppf(0.1)) / np.sqrt(rho))))


def test_pool_loss_is_default_fraction():
    """One period, no recovery: the pool loss on each path is exactly defaults / count."""
    res = se.simulate(homogeneous(100, 0.05, 0.2), paths=2_000, seed=2, progress=False)
    pp = res.pool_paths
    np.testing.assert_allclose(pp["pool_loss_fraction"], pp["licensee_defaults"] / 100, atol=1e-12)
    tl = res.tranche_losses
    loss = pp["licensee_defaults"].to_numpy() / 100
    for name, (a, d) in SLICES.items():
        got = tl.loc[tl["tranche"] == name, "loss_fraction"].to_numpy()
        np.testing.assert_allclose(got, np.clip(loss - a, 0, d - a) / (d - a), atol=1e-12)


@pytest.mark.parametrize("copula", ["gaussian", "student_t"])
def test_deep_tail_reference_agrees_with_quadrature(copula):
    """``tail_by_z`` (the reference of the importance-sampling tests) equals the Legendre
    quadrature where that is accurate (a 13% event), and its deep-tail values do not move when
    its grids are refined (so their grid error is far below any Monte Carlo error used)."""
    from references import tail_by_z

    pd_ref, el_ref, _ = tail_by_z(100, 0.05, 0.2, 0.10, 1.0, copula=copula)
    assert pd_ref == pytest.approx(tranche_pd_finite(100, 0.05, 0.2, 0.10, copula=copula), rel=1e-4)
    assert el_ref == pytest.approx(tranche_el_finite(100, 0.05, 0.2, 0.10, 1.0, copula=copula), rel=1e-3)
    a = 0.50 if copula == "gaussian" else 0.74  # the slices of tests/test_importance.py
    n = 1_000 if copula == "gaussian" else 500
    deep = tail_by_z(n, 0.05, 0.2, a, a + 0.02, copula=copula)
    np.testing.assert_allclose(tail_by_z(n, 0.05, 0.2, a, a + 0.02, copula=copula, refine=2), deep, rtol=1e-6)
