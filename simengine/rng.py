"""Addressed random numbers: every draw is a pure function of (seed, path, stream, index).

A path's key is ``mix(mix(seed) ^ path * GOLDEN)``; a stream's key is ``mix(path_key ^ stream *
STREAM)``; draw ``i`` of a stream is ``mix(stream_key + (i + 1) * GOLDEN)`` (SplitMix64's output
function over a counter). No state is carried between draws, so results cannot depend on the
thread, the chunk or the worker that computes a path, and changing one model input (a PD, say)
leaves every other draw unchanged: common random numbers for free.

Two implementations with identical bits: uint64 arithmetic for numba, masked Python ints for the
pure-Python twins (NumPy scalar arithmetic would warn on the intended wrap-around).
"""

from __future__ import annotations

import math

from ._jit import DISABLED, jit

# stream ids
S_GLOBAL, S_FACTOR, S_CHI2, S_DEMAND, S_OBSOLESCENCE, S_LICENSEE, S_INVALIDATION, S_RECOVERY, S_PROVIDER = range(9)

_GOLDEN = 0x9E3779B97F4A7C15
_STREAM = 0xD1B54A32D192ED03
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_MASK = (1 << 64) - 1
_TWO_M53 = 2.0 ** -53

if DISABLED:
    def mix64(z):
        z &= _MASK
        z = ((z ^ (z >> 30)) * _M1) & _MASK
        z = ((z ^ (z >> 27)) * _M2) & _MASK
        return z ^ (z >> 31)

    def path_key(seed, path):
        return mix64(mix64(int(seed)) ^ ((int(path) * _GOLDEN) & _MASK))

    def stream_key(key, stream):
        return mix64(key ^ ((int(stream) * _STREAM) & _MASK))

    def uniform_at(skey, i):
        z = mix64(skey + ((int(i) + 1) * _GOLDEN))
        return ((z >> 11) + 0.5) * _TWO_M53
else:
    import numpy as np

    G64 = np.uint64(_GOLDEN)
    S64 = np.uint64(_STREAM)
    M1 = np.uint64(_M1)
    M2 = np.uint64(_M2)
    R30, R27, R31, R11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)

    @jit
    def mix64(z):
        z = (z ^ (z >> R30)) * M1
        z = (z ^ (z >> R27)) * M2
        return z ^ (z >> R31)

    @jit
    def path_key(seed, path):
        return mix64(mix64(np.uint64(seed)) ^ (np.uint64(path) * G64))

    @jit
    def stream_key(key, stream):
        return mix64(key ^ (np.uint64(stream) * S64))

    @jit
    def uniform_at(skey, i):
        z = mix64(skey + (np.uint64(i) + np.uint64(1)) * G64)
        return (float(z >> R11) + 0.5) * _TWO_M53


@jit
def ndtri(p):
    """Inverse standard normal CDF (Wichura 1988, AS241 PPND16; ~1e-16 relative accuracy)."""
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        num = (((((((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) * r
                   + 45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r
                 + 133.14166789178437745) * r + 3.387132872796366608)
        den = (((((((5226.495278852545925 * r + 28729.085735721942674) * r + 39307.89580009271061) * r
                   + 21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r
                 + 42.313330701600911252) * r + 1.0)
        return q * num / den
    r = p if q < 0.0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        num = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r + 0.24178072517745061177) * r
                   + 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r
                 + 4.6303378461565452959) * r + 1.42343711074968357734)
        den = (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r
                   + 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r
                 + 2.05319162663775882187) * r + 1.0)
    else:
        r -= 5.0
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r
                   + 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r
                 + 5.4637849111641143699) * r + 6.6579046435011037772)
        den = (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r
                   + 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r
                 + 0.59983220655588793769) * r + 1.0)
    x = num / den
    return -x if q < 0.0 else x


@jit
def normal_at(skey, i):
    return ndtri(uniform_at(skey, i))


@jit
def gamma_at(skey, i, shape):
    """Gamma(shape, 1) by Marsaglia & Tsang (2000); attempts use indices ``64*i .. 64*i+63``."""
    boost = 1.0
    a = shape
    if a < 1.0:
        boost = uniform_at(skey, 64 * i + 63) ** (1.0 / a)
        a += 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    for j in range(31):
        x = normal_at(skey, 64 * i + 2 * j)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = uniform_at(skey, 64 * i + 2 * j + 1)
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v * boost
    return d * boost  # 31 rejections in a row: probability < 1e-40
