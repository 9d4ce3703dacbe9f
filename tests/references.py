"""Closed-form and quadrature references for the copula tests (SciPy only, no engine code)."""

from __future__ import annotations

import functools

import numpy as np
from scipy import stats


@functools.cache
def _legendre_unit(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on (0, 1) (cached: an eigenvalue problem of size n)."""
    x, w = np.polynomial.legendre.leggauss(n)
    u, wu = 0.5 * (x + 1.0), 0.5 * w
    u.flags.writeable = wu.flags.writeable = False
    return u, wu


def conditional_pd_grid(pd_: float, rho: float, copula: str = "gaussian", dof: float = 5.0, nodes: int = 400):
    """Conditional default probabilities p and their quadrature weights.

    Gaussian: latent X = sqrt(rho) Z + sqrt(1 - rho) e, default iff X <= Phi^-1(pd), so
    p(z) = Phi((Phi^-1(pd) - sqrt(rho) z) / sqrt(1 - rho)).
    Student-t: X = (sqrt(rho) Z + sqrt(1 - rho) e) sqrt(dof / W), W ~ chi2(dof), default iff
    X <= t^-1(pd), so p(z, w) = Phi((t^-1(pd) sqrt(w / dof) - sqrt(rho) z) / sqrt(1 - rho)).
    """
    u, wu = _legendre_unit(nodes)
    z = stats.norm.ppf(u)
    if copula == "gaussian":
        p = stats.norm.cdf((stats.norm.ppf(pd_) - np.sqrt(rho) * z) / np.sqrt(1 - rho))
        return p, wu
    v, wv = _legendre_unit(nodes)
    chi = stats.chi2.ppf(v, dof)
    c = stats.t.ppf(pd_, dof)
    p = stats.norm.cdf((c * np.sqrt(chi[None, :] / dof) - np.sqrt(rho) * z[:, None]) / np.sqrt(1 - rho))
    return p.ravel(), (wu[:, None] * wv[None, :]).ravel()


def default_count_pmf(n: int, pd_: float, rho: float, copula: str = "gaussian", dof: float = 5.0,
                      nodes: int | None = None) -> np.ndarray:
    """P(K = k), k = 0..n, for a homogeneous pool of n names (finite pool, by quadrature)."""
    nodes = nodes or (400 if copula == "gaussian" else 120)
    p, w = conditional_pd_grid(pd_, rho, copula, dof, nodes)
    k = np.arange(n + 1)[:, None]
    out = np.zeros(n + 1)
    batch = max(1, 4_000_000 // (n + 1))  # bounded memory for large pools
    for s in range(0, len(p), batch):
        out += (stats.binom.pmf(k, n, p[None, s:s + batch]) * w[None, s:s + batch]).sum(axis=1)
    return out


def tranche_el_finite(n: int, pd_: float, rho: float, attach: float, detach: float, **kw) -> float:
    """E[min(max(L - a, 0), d - a)] / (d - a) with L = K / n."""
    pmf = default_count_pmf(n, pd_, rho, **kw)
    loss = np.arange(n + 1) / n
    return float((pmf * np.clip(loss - attach, 0.0, detach - attach)).sum() / (detach - attach))


def tranche_pd_finite(n: int, pd_: float, rho: float, attach: float, **kw) -> float:
    """P(L > a) with L = K / n."""
    pmf = default_count_pmf(n, pd_, rho, **kw)
    return float(pmf[np.arange(n + 1) / n > attach + 1e-12].sum())


def vasicek_cdf(x, pd_: float, rho: float):
    """Large-pool (Vasicek 2002) loss distribution P(L <= x), LGD = 1."""
    x = np.asarray(x, float)
    return stats.norm.cdf((np.sqrt(1 - rho) * stats.norm.ppf(x) - stats.norm.ppf(pd_)) / np.sqrt(rho))


def tranche_el_large_pool(pd_: float, rho: float, attach: float, detach: float, copula: str = "gaussian",
                          dof: float = 5.0, nodes: int | None = None) -> float:
    """Tranche EL when L = p(Z) exactly (infinitely granular pool), by quadrature."""
    p, w = conditional_pd_grid(pd_, rho, copula, dof, nodes or (400 if copula == "gaussian" else 120))
    return float((w * np.clip(p - attach, 0.0, detach - attach)).sum() / (detach - attach))


def vasicek_tranche_pd(pd_: float, rho: float, attach: float) -> float:
    """P(L > a) in the Vasicek large-pool limit."""
    return float(1.0 - vasicek_cdf(attach, pd_, rho))


def granularity_gap(n: int, pd_: float, rho: float, attach: float, detach: float, copula: str = "gaussian",
                    dof: float = 5.0) -> float:
    """Finite-pool minus large-pool tranche EL, with K/n | p approximated by N(p, p(1-p)/n).

    Used only to check that a large-pool comparison is not spoiled by granularity; cheap where
    the exact binomial sum over n = 5,000 names is not.
    """
    p, w = conditional_pd_grid(pd_, rho, copula, dof, 400 if copula == "gaussian" else 120)
    xi, wx = np.polynomial.hermite_e.hermegauss(40)
    wx = wx / wx.sum()
    width = detach - attach
    loss = p[:, None] + np.sqrt(p * (1 - p) / n)[:, None] * xi[None, :]
    finite = (w[:, None] * wx[None, :] * np.clip(np.clip(loss, 0, 1) - attach, 0, width)).sum() / width
    return float(finite - (w * np.clip(p - attach, 0, width)).sum() / width)


def tail_by_z(n: int, pd_: float, rho: float, attach: float, detach: float, copula: str = "gaussian",
              dof: float = 5.0, refine: int = 1) -> tuple[float, float, float]:
    """(P(L > a), E[X], E[X^2]) for the slice X = min((L - a)^+, d - a) / (d - a), L = K / n.

    Finite homogeneous pool; a and d multiples of 1/n. Integrates over the factor z on a dense
    uniform grid (trapezoid on [-12, 12]), and for the Student-t copula over log W on a dense
    grid too, rather than over Legendre nodes in u = Phi(z), which leave the deep tail
    (P ~ 1e-4 and below) coarse. With g(j) the slice payoff at K = j,
    E[g(K)] = sum_j (g(j + 1) - g(j)) P(K > j). ``refine`` multiplies the grid densities (for
    checking that the grid error is negligible).
    """
    z = np.linspace(-12.0, 12.0, refine * (4_000 if copula == "gaussian" else 1_200) + 1)
    wz = stats.norm.pdf(z) * (z[1] - z[0])
    if copula == "gaussian":
        p = stats.norm.cdf((stats.norm.ppf(pd_) - np.sqrt(rho) * z) / np.sqrt(1 - rho))
        weights = wz
    else:
        y = np.linspace(np.log(1e-8), np.log(20.0 * dof + 200.0), refine * 1_200 + 1)
        w = np.exp(y)
        wy = stats.chi2.pdf(w, dof) * w * (y[1] - y[0])
        c = stats.t.ppf(pd_, dof)
        p = stats.norm.cdf((c * np.sqrt(w[None, :] / dof) - np.sqrt(rho) * z[:, None]) / np.sqrt(1 - rho)).ravel()
        weights = (wz[:, None] * wy[None, :]).ravel()
    ka, kd = int(round(attach * n)), int(round(detach * n))
    m = kd - ka
    tail = stats.binom.sf(ka, n, p)
    first, second = 0.0, 0.0
    for j in range(ka, kd):
        pj = float((stats.binom.sf(j, n, p) * weights).sum())
        first += pj / m
        second += pj * ((j + 1 - ka) ** 2 - (j - ka) ** 2) / m ** 2
    return float((tail * weights).sum()), first, second


def guaranteed_tail_by_z(n: int, pd_: float, rho: float, attach: float, detach: float, guarantor_pd: float,
                         guarantor_loading: float) -> tuple[float, float, float]:
    """(P, E[X], E[X^2]) of the slice X = min((L - a)^+, d - a) / (d - a) *where the slice's guarantor
    has defaulted*, L = K / n: the enhanced loss of a slice fully covered by a guarantee, one period.

    Homogeneous one-factor Gaussian pool as in :func:`tail_by_z`; the guarantor defaults iff its
    latent a_g Z + sqrt(1 - a_g^2) e is below Phi^-1(guarantor_pd), so given the factor z the
    pool and the guarantor are independent and the integrand gains the factor
    Phi((Phi^-1(pd_g) - a_g z) / sqrt(1 - a_g^2)).
    """
    z = np.linspace(-12.0, 12.0, 8_001)
    wz = stats.norm.pdf(z) * (z[1] - z[0])
    p = stats.norm.cdf((stats.norm.ppf(pd_) - np.sqrt(rho) * z) / np.sqrt(1 - rho))
    a_g = guarantor_loading
    fails = stats.norm.cdf((stats.norm.ppf(guarantor_pd) - a_g * z) / np.sqrt(1 - a_g * a_g))
    weights = wz * fails
    ka, kd = int(round(attach * n)), int(round(detach * n))
    m = kd - ka
    first, second = 0.0, 0.0
    for j in range(ka, kd):
        pj = float((stats.binom.sf(j, n, p) * weights).sum())
        first += pj / m
        second += pj * ((j + 1 - ka) ** 2 - (j - ka) ** 2) / m ** 2
    return float((stats.binom.sf(ka, n, p) * weights).sum()), first, second
