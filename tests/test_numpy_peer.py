"""The benchmark's NumPy peer runs the reference workloads and refuses what it does not model.

Its agreement with the engine is a Monte Carlo comparison at 100,000+ paths
(``benchmarks/peer_agreement.py``), too slow for the suite; here only the feature gate.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from simengine import load_scenario
from simengine.plan import compile_plan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy_peer  # noqa: E402


@pytest.fixture(scope="module")
def w1_plan():
    return compile_plan(load_scenario(ROOT / "scenarios" / "w1_workload.toml"))


@pytest.mark.parametrize("name", ["w1_workload.toml", "w2_workload.toml", "guangzhou_patent_2019.toml"])
def test_reference_workloads_supported(name):
    numpy_peer.check_supported(compile_plan(load_scenario(ROOT / "scenarios" / name)))


def _with(plan, part, **fields):
    return dataclasses.replace(plan, **{part: getattr(plan, part)._replace(**fields)})


@pytest.mark.parametrize("part, fields, words", [
    ("waterfall", {"call_fraction": 0.1}, "clean-up call"),
    ("waterfall", {"trigger_effect": np.array([2, 3])}, "early amortisation"),
    ("waterfall", {"trigger_metric": np.array([0, 3])}, "oc metric"),
    ("waterfall", {"provider_reimbursed": np.array([True, False])}, "reimbursed"),
    ("waterfall", {"tranche_mode": np.array([0, 0, 2])}, "amortisation"),
    ("pool", {"licensee_forced_any": True}, "forced licensee default"),
    ("pool", {"recovery_loading": 0.3}, "systematic recoveries"),
    ("pool", {"provider_migrates": np.array([0, 1])}, "migration"),
])
def test_unsupported_features_refused(w1_plan, part, fields, words):
    with pytest.raises(NotImplementedError, match=words):
        numpy_peer.check_supported(_with(w1_plan, part, **fields))


def test_accelerated_steps_checked(w1_plan):
    wp = w1_plan.waterfall
    swapped = wp.steps_accelerated.copy()
    swapped[[1, 2]] = swapped[[2, 1]]  # principal before interest
    with pytest.raises(NotImplementedError, match="accelerated"):
        numpy_peer.check_supported(_with(w1_plan, "waterfall", steps_accelerated=swapped))
