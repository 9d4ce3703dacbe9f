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
# Ziggurat for the standard normal (Marsaglia & Tsang 2000): 256 layers of area V_ZIG, base strip
# edge R_ZIG (NumPy's Generator uses the same). One 64-bit word gives the layer (bits 0-7), the
# sign (bit 8) and a 52-bit abscissa (bits 9-60); ~99% of draws need nothing else, where an
# inverse-CDF normal costs a rational function, a division and, in the tails, a log and a sqrt.
R_ZIG = 3.6541528853610088
V_ZIG = 0.00492867323399
_M52 = 2.0 ** 52
_MASK52 = (1 << 52) - 1
_ZIG_KEY = 0x6A09E667F3BCC909  # the rare branches draw from their own stream of the same key

if DISABLED:
    def mix64(z):
        """SplitMix64's finaliser: a bijection of 64-bit words."""
        z &= _MASK
        z = ((z ^ (z >> 30)) * _M1) & _MASK
        z = ((z ^ (z >> 27)) * _M2) & _MASK
        return z ^ (z >> 31)

    def path_key(seed, path):
        """The key of one path: a pure function of (seed, path)."""
        return mix64(mix64(int(seed)) ^ ((int(path) * _GOLDEN) & _MASK))

    def stream_key(key, stream):
        """The key of one random stream of a path."""
        return mix64(key ^ ((int(stream) * _STREAM) & _MASK))

    def word_at(skey, i):
        """The ``i``-th 64-bit word of a stream."""
        return mix64(skey + ((int(i) + 1) * _GOLDEN))

    def uniform_at(skey, i):
        """The ``i``-th uniform of a stream, in (0, 1) (53 bits)."""
        return ((word_at(skey, i) >> 11) + 0.5) * _TWO_M53

    ZERO, ONE, MASK8, MASK52, R8, R9, ZIG_KEY64 = 0, 1, 0xFF, _MASK52, 8, 9, _ZIG_KEY
    i64 = int
else:
    import numpy as np

    G64 = np.uint64(_GOLDEN)
    S64 = np.uint64(_STREAM)
    M1 = np.uint64(_M1)
    M2 = np.uint64(_M2)
    R30, R27, R31, R11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
    ZERO, ONE, MASK8, MASK52 = np.uint64(0), np.uint64(1), np.uint64(0xFF), np.uint64(_MASK52)
    R8, R9, ZIG_KEY64 = np.uint64(8), np.uint64(9), np.uint64(_ZIG_KEY)
    i64 = np.int64

    @jit
    def mix64(z):
        """SplitMix64's finaliser: a bijection of 64-bit words."""
        z = (z ^ (z >> R30)) * M1
        z = (z ^ (z >> R27)) * M2
        return z ^ (z >> R31)

    @jit
    def path_key(seed, path):
        """The key of one path: a pure function of (seed, path)."""
        return mix64(mix64(np.uint64(seed)) ^ (np.uint64(path) * G64))

    @jit
    def stream_key(key, stream):
        """The key of one random stream of a path."""
        return mix64(key ^ (np.uint64(stream) * S64))

    @jit
    def word_at(skey, i):
        """The ``i``-th 64-bit word of a stream."""
        return mix64(skey + (np.uint64(i) + np.uint64(1)) * G64)

    @jit
    def uniform_at(skey, i):
        """The ``i``-th uniform of a stream, in (0, 1) (53 bits)."""
        return (float(word_at(skey, i) >> R11) + 0.5) * _TWO_M53


def _ziggurat_tables():
    """Layer tables: k (acceptance bound in 2^-52 units of the layer), w (width per unit), f (density)."""
    import numpy as np

    k = np.zeros(256, np.uint64)
    w = np.zeros(256)
    f = np.zeros(256)
    dn = tn = R_ZIG
    q = V_ZIG / math.exp(-0.5 * dn * dn)
    k[0] = int(dn / q * _M52)
    w[0] = q / _M52
    w[255] = dn / _M52
    f[0] = 1.0
    f[255] = math.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = math.sqrt(-2.0 * math.log(V_ZIG / dn + math.exp(-0.5 * dn * dn)))
        k[i + 1] = int(dn / tn * _M52)
        tn = dn
        f[i] = math.exp(-0.5 * dn * dn)
        w[i] = dn / _M52
    return k, w, f


ZIG_K, ZIG_W, ZIG_F = _ziggurat_tables()
if DISABLED:  # plain Python numbers, the same values
    ZIG_K, ZIG_W, ZIG_F = [int(v) for v in ZIG_K], [float(v) for v in ZIG_W], [float(v) for v in ZIG_F]


@jit
def normal_at(skey, i):
    """Standard normal draw ``i`` of stream ``skey`` (ziggurat; symmetric, so ``-normal_at`` is one too)."""
    z = word_at(skey, i)
    idx = z & MASK8
    rabs = (z >> R9) & MASK52
    if rabs < ZIG_K[idx]:
        x = float(i64(rabs)) * ZIG_W[idx]
        return -x if (z >> R8) & ONE else x
    return _normal_slow(skey, i, z)


@jit
def _normal_slow(skey, i, z):
    """The ~1% of draws outside the layers' rectangles: base-strip tail, wedges, retries.

    Further words and uniforms come from the stream ``mix64(skey ^ ZIG_KEY)`` at indices
    ``64*i .. 64*i+63``, so the draw stays a pure function of (skey, i).
    """
    sk2 = mix64(skey ^ ZIG_KEY64)
    base = 64 * i64(i)
    j = 0
    while j < 62:
        idx = z & MASK8
        rabs = (z >> R9) & MASK52
        x = float(i64(rabs)) * ZIG_W[idx]
        if (z >> R8) & ONE:
            x = -x
        if rabs < ZIG_K[idx]:
            return x
        if idx == ZERO:  # layer 0: beyond R_ZIG, Marsaglia's exponential tail sampler
            while j < 62:
                xx = -math.log1p(-uniform_at(sk2, base + j)) / R_ZIG
                yy = -math.log1p(-uniform_at(sk2, base + j + 1))
                j += 2
                if yy + yy > xx * xx:
                    return -(R_ZIG + xx) if x < 0.0 else R_ZIG + xx
            return -R_ZIG if x < 0.0 else R_ZIG  # 31 rejections in a row: probability < 1e-30
        if ZIG_F[idx] + uniform_at(sk2, base + j) * (ZIG_F[idx - ONE] - ZIG_F[idx]) < math.exp(-0.5 * x * x):
            return x
        z = word_at(sk2, base + j + 1)
        j += 2
    return 0.0  # 31 failed attempts in a row: probability < 1e-60


@jit(inline="always")
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
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2:  # the paper's squeeze: inside the acceptance region, no logs
            return d * v * boost
        if math.log(u) < 0.5 * x2 + d - d * v + d * math.log(v):
            return d * v * boost
    return d * boost  # 31 rejections in a row: probability < 1e-40
