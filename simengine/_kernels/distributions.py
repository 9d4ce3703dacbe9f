"""Special functions the kernels need, accurate in the far tails (tested against SciPy: beta
quantiles in test_fidelity_enhancements, the Student-t tail in test_properties)."""

from __future__ import annotations

import math

from .._jit import jit

SQRT1_2 = 0.7071067811865476


@jit
def upper_tail_normal(x):
    """1 - Phi(x), accurate in the far tail."""
    return 0.5 * math.erfc(x * SQRT1_2)


@jit
def betainc_cf(a, b, x):
    """Regularized incomplete beta I_x(a, b) by Lentz's continued fraction (Numerical Recipes 6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - betainc_cf(b, a, 1.0 - x)
    return betainc_fraction(a, b, x, math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))


@jit
def betainc_fraction(a, b, x, log_norm):
    """I_x(a, b) for 0 < x <= (a + 1) / (a + b + 2), given log(1 / B(a, b)) = ``log_norm``."""
    front = math.exp(log_norm + a * math.log(x) + b * math.log1p(-x))
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    if abs(d) < tiny:
        d = tiny
    d = 1.0 / d
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0))
        d = 1.0 + aa * d
        if abs(d) < tiny:
            d = tiny
        c = 1.0 + aa / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return front * h / a


@jit
def t_tail_norms(dof):
    """log(1 / B(a, b)) of the Student-t tail's incomplete beta, a = dof / 2 and b = 1/2, in the
    order each branch of :func:`betainc_cf` subtracts (for the same bits): constants of ``dof``,
    computed once a path instead of three ``lgamma`` calls per defaulting licensee."""
    a = 0.5 * dof
    b = 0.5
    return (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b),
            math.lgamma(b + a) - math.lgamma(b) - math.lgamma(a))


T_CLOSED_DOF = 30.0  # integer dof up to this: the closed form (its sum has dof / 2 terms)
T_CLOSED_X = 4.0  # |x| up to this: the closed form's cancellation costs at most ~1e-12 relative


@jit
def upper_tail_t_integer(x, n):
    """1 - F_t(x) for Student's t with an integer ``n`` >= 1 degrees of freedom, by the closed form
    (Abramowitz & Stegun 26.7.3-4): with F(t) = 1 - Q(-t), s = t / sqrt(n + t^2), c2 = n / (n + t^2),
    odd n: F(t) = 1/2 + (atan(t / sqrt(n)) + s sqrt(c2) sum_k a_k c2^k) / pi, a_0 = 1,
    a_k = a_(k-1) 2k / (2k + 1), k < (n - 1) / 2; even n: F(t) = 1/2 + s / 2 sum_k b_k c2^k, b_0 = 1,
    b_k = b_(k-1) (2k - 1) / (2k), k < n / 2. One ``atan`` instead of a continued fraction; in the
    lower tail the two parts of F nearly cancel, so callers keep |x| <= :data:`T_CLOSED_X`."""
    t = -x  # 1 - F(x) = F(-x)
    r = n + t * t
    s = t / math.sqrt(r)
    c2 = n / r
    total = 0.0
    term = 1.0
    if n % 2 == 1:
        for k in range((n - 1) // 2):
            total += term
            term *= c2 * (2.0 * k + 2.0) / (2.0 * k + 3.0)
        return 0.5 + (math.atan(t / math.sqrt(n)) + s * math.sqrt(c2) * total) / math.pi
    for k in range(n // 2):
        total += term
        term *= c2 * (2.0 * k + 1.0) / (2.0 * k + 2.0)
    return 0.5 + 0.5 * s * total


@jit
def upper_tail_t_normed(x, dof, norm_ab, norm_ba):
    """1 - F_t(x) for Student's t with ``dof`` degrees of freedom, given :func:`t_tail_norms`: the
    closed form for integer ``dof`` <= :data:`T_CLOSED_DOF` and |x| <= :data:`T_CLOSED_X` (the
    bulk, where a defaulting licensee's latent lies), else ``0.5 * betainc_cf(dof / 2, 1 / 2,
    dof / (dof + x^2))`` (the far tails, any dof)."""
    if dof <= T_CLOSED_DOF and dof == math.floor(dof) and abs(x) <= T_CLOSED_X:
        return upper_tail_t_integer(x, int(dof))
    a = 0.5 * dof
    b = 0.5
    y = dof / (dof + x * x)
    if y <= 0.0:
        i = 0.0
    elif y >= 1.0:
        i = 1.0
    elif y > (a + 1.0) / (a + b + 2.0):  # then 1 - y lies below betainc_cf's split for (b, a): no second swap
        i = 1.0 - betainc_fraction(b, a, 1.0 - y, norm_ba)
    else:
        i = betainc_fraction(a, b, y, norm_ab)
    tail = 0.5 * i
    return tail if x > 0.0 else 1.0 - tail


@jit
def upper_tail_t(x, dof):
    """1 - F_t(x) for Student's t with ``dof`` degrees of freedom."""
    norm_ab, norm_ba = t_tail_norms(dof)
    return upper_tail_t_normed(x, dof, norm_ab, norm_ba)


@jit
def log_gamma(x):
    """The log of Gamma(x) for x > 0 (Lanczos, g = 7, n = 9; relative error about 1e-15).

    Written out rather than ``math.lgamma``, which numba takes from the C library and Python
    computes its own way: this one gives the same bits compiled and as the Python twin."""
    shift = 0.0
    if x < 0.5:
        shift = math.log(x)
        x += 1.0
    x -= 1.0
    s = (0.99999999999980993 + 676.5203681218851 / (x + 1.0) - 1259.1392167224028 / (x + 2.0)
         + 771.32342877765313 / (x + 3.0) - 176.61502916214059 / (x + 4.0) + 12.507343278686905 / (x + 5.0)
         - 0.13857109526572012 / (x + 6.0) + 9.9843695780195716e-6 / (x + 7.0) + 1.5056327351493116e-7 / (x + 8.0))
    t = x + 7.5
    return 0.91893853320467274 + (x + 0.5) * math.log(t) - t + math.log(s) - shift


@jit
def beta_quantile(u, a, b):
    """The ``u`` quantile of the Beta(a, b) distribution: I_x(a, b) = u solved by Newton steps kept
    inside a shrinking bracket (bisection where a step would leave it), to about 1e-13 in x."""
    if u <= 0.0:
        return 0.0
    if u >= 1.0:
        return 1.0
    lo = 0.0
    hi = 1.0
    x = a / (a + b)  # the mean: a start inside the bulk
    log_norm = log_gamma(a + b) - log_gamma(a) - log_gamma(b)
    split = (a + 1.0) / (a + b + 2.0)
    for _ in range(100):
        if x <= split:
            f = betainc_fraction(a, b, x, log_norm) - u
        else:
            f = (1.0 - betainc_fraction(b, a, 1.0 - x, log_norm)) - u
        if f == 0.0:
            return x
        if f > 0.0:
            hi = x
        else:
            lo = x
        density = math.exp(log_norm + (a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x))
        step = f / density if density > 0.0 else 0.0
        nxt = x - step
        if not (lo < nxt < hi) or density <= 0.0:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - x) <= 1e-14 * max(x, 1e-300) or hi - lo <= 1e-15:
            return nxt
        x = nxt
    return x
