"""Special functions the kernels need, accurate in the far tails (tested against SciPy)."""

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
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1.0) / (a + b + 2.0):
        return 1.0 - betainc_cf(b, a, 1.0 - x)
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
def upper_tail_t(x, dof):
    """1 - F_t(x) for Student's t with ``dof`` degrees of freedom."""
    tail = 0.5 * betainc_cf(0.5 * dof, 0.5, dof / (dof + x * x))
    return tail if x > 0.0 else 1.0 - tail
