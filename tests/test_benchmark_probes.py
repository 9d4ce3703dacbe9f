"""The benchmark's scalar-math floor counts the C-library calls the pool kernel makes.

``benchmarks/results`` quote the floor as what no scalar kernel keeping glibc's bits can beat, so
its counts must be the kernel's: here the kernel's own body runs as plain Python
(``SIMENGINE_DISABLE_NUMBA=1``) with its ``math`` module replaced by one that counts calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import collections, json, math, sys
import numpy as np
sys.path.insert(0, sys.argv[2])
import probes
from simengine import load_scenario
from simengine._kernels import pool
from simengine.plan import compile_plan

plan = compile_plan(load_scenario(sys.argv[1]))
calls = collections.Counter()


class Counting:
    def __getattr__(self, name):
        fn = getattr(math, name)
        if not callable(fn):
            return fn

        def counted(*args):
            calls[name] += 1
            return fn(*args)
        return counted


pool.math = Counting()
paths = 3
collections_total = np.empty(paths)
probes.build()["pool_only"](plan, 7, paths, collections_total)
counts = probes.libm_counts(plan, 0.0)
print(json.dumps({"exp_per_path": calls["exp"] / paths, "probe_exp": counts["exp"],
                  "log_per_path": calls["log"] / paths, "probe_obsolescence": counts["obsolescence"]}))
"""


def test_scalar_math_floor_counts_the_kernels_exp_and_log(tmp_path):
    """W1, every industry with running royalties and a demand elasticity: the probe's ``exp`` count
    per path equals the calls of ``math.exp`` in ``pool_block`` (the gamma variates of the beta
    recoveries call theirs in ``rng``, timed by the probe as gamma variates)."""
    script = tmp_path / "count.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "SIMENGINE_DISABLE_NUMBA": "1"}
    out = subprocess.run([sys.executable, str(script), str(ROOT / "scenarios" / "w1_workload.toml"),
                          str(ROOT / "benchmarks")], check=True, env=env, capture_output=True, text=True,
                         timeout=600)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    # 40 periods x (10 industries with running royalties + 10 with an elasticity), and the weight
    assert got["probe_exp"] == 801
    assert got["exp_per_path"] == got["probe_exp"]
    # one log per drawn technology's obsolescence time (W1: 8 technologies)
    assert got["probe_obsolescence"] == 8
    assert got["log_per_path"] == got["probe_obsolescence"]
