"""The generator itself: ziggurat normals and Marsaglia-Tsang gammas have the right laws, and the
numba build and the pure-Python twin give the same bits, rare branches included.

Every check has a fixed seed and a bound set at a tail probability of about 1e-5 of the
statistic's own null distribution (chi-square, Kolmogorov, binomial or normal), so a correct
generator passes and a generator off by more than a few standard errors fails.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from simengine import rng
from simengine._jit import jit

P_FAIL = 1e-5
Z_FAIL = stats.norm.isf(P_FAIL / 2)  # two-sided


@jit
def _normals(seed, n, out):
    sk = rng.stream_key(rng.path_key(seed, 3), 5)
    for i in range(n):
        out[i] = rng.normal_at(sk, i)


@jit
def _gammas(seed, n, shape, out):
    sk = rng.stream_key(rng.path_key(seed, 4), 6)
    for i in range(n):
        out[i] = rng.gamma_at(sk, i, shape)


def test_ziggurat_tables_close_the_layers():
    """256 layers of equal area V tile the density: the top layer ends at x = 0 with f = 1.

    V_ZIG has 12 significant digits, and the 255-step recursion ends 2.3e-11 away from closing;
    1e-9 leaves room for that, while R_ZIG off by 1e-4 (relative) misses by 3.8e-5 and the
    128-layer constants do not reach the top at all.
    """
    x1 = rng.ZIG_W[1] * 2.0 ** 52  # right edge of the top layer
    assert rng.V_ZIG / x1 + math.exp(-0.5 * x1 * x1) == pytest.approx(1.0, abs=1e-9)
    assert np.all(np.diff(np.asarray(rng.ZIG_W[1:])) > 0)          # edges grow with the layer index
    assert np.all(np.diff(np.asarray(rng.ZIG_F[1:])) < 0)
    assert rng.ZIG_W[255] * 2.0 ** 52 == pytest.approx(rng.R_ZIG)


def test_normals_have_the_normal_law():
    n = 4_000_000
    x = np.empty(n)
    _normals(np.uint64(2026), n, x)
    # 1,000 equiprobable cells: chi-square with 999 degrees of freedom
    cells = 1_000
    counts = np.bincount(np.minimum((stats.norm.cdf(x) * cells).astype(np.int64), cells - 1), minlength=cells)
    chi2 = ((counts - n / cells) ** 2 / (n / cells)).sum()
    assert chi2 < stats.chi2.isf(P_FAIL, cells - 1), chi2
    # moments, each against its own standard error
    for k, (mean, var) in {1: (0.0, 1.0), 2: (1.0, 2.0), 3: (0.0, 15.0), 4: (3.0, 96.0)}.items():
        z = ((x ** k).mean() - mean) / math.sqrt(var / n)
        assert abs(z) < Z_FAIL, (k, z)
    # tails, where the ziggurat leaves its rectangles: beyond the base strip and far beyond it
    for c in (2.0, rng.R_ZIG, 4.0, 4.5):
        p = 2 * stats.norm.sf(c)
        z = (np.mean(np.abs(x) > c) - p) / math.sqrt(p * (1 - p) / n)
        assert abs(z) < Z_FAIL, (c, z)
    # symmetric: antithetic paths negate normals
    assert abs((np.sum(x > 0) - n / 2) / math.sqrt(n / 4)) < Z_FAIL


@pytest.mark.parametrize("shape", [0.7, 2.25, 4.8, 19.2])
def test_gammas_have_the_gamma_law(shape):
    """Shapes of the t-copula's chi-square (dof/2) and of beta recoveries (W1: 4.8 and 19.2)."""
    n = 400_000
    g = np.empty(n)
    _gammas(np.uint64(7), n, shape, g)
    d = stats.kstest(g, "gamma", args=(shape,)).statistic
    assert d < stats.kstwo.isf(P_FAIL, n), d
    assert abs((g.mean() - shape) / math.sqrt(shape / n)) < Z_FAIL


TWIN = r"""
import sys
import numpy as np
from simengine import rng
sk = rng.stream_key(rng.path_key(np.uint64(11), np.uint64(12)), np.uint64(5))
x = [rng.normal_at(sk, i) for i in range(int(sys.argv[2]))]
g = [rng.gamma_at(sk, i, s) for i in range(300) for s in (0.7, 4.8)]
np.savez(sys.argv[1], x=np.array(x, dtype=float), g=np.array(g, dtype=float))
"""


def test_generator_equals_its_python_twin(tmp_path):
    """Same bits with and without numba, over enough draws to pass through every rare branch."""
    n = 60_000
    script = tmp_path / "twin.py"
    script.write_text(TWIN)
    out = {}
    for mode, flag in (("numba", "0"), ("python", "1")):
        target = tmp_path / f"{mode}.npz"
        subprocess.run([sys.executable, str(script), str(target), str(n)], check=True, timeout=600,
                       env={**os.environ, "SIMENGINE_DISABLE_NUMBA": flag})
        out[mode] = np.load(target)
    x = out["numba"]["x"]
    assert np.array_equal(x, out["python"]["x"])
    assert np.array_equal(out["numba"]["g"], out["python"]["g"])
    # the sample reaches the branches: draws beyond the base strip (tail sampler) and wedge draws
    assert np.sum(np.abs(x) > rng.R_ZIG) >= 5
    sk = rng.stream_key(rng.path_key(np.uint64(11), np.uint64(12)), np.uint64(5))
    words = np.array([int(rng.word_at(sk, i)) for i in range(2_000)], dtype=np.uint64)
    layer = (words & np.uint64(0xFF)).astype(np.int64)
    outside = ((words >> np.uint64(9)) & np.uint64(rng._MASK52)) >= np.asarray(rng.ZIG_K)[layer]
    assert outside.sum() >= 5  # the first 2,000 draws already leave the rectangles this often
