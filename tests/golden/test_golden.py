"""Golden outputs: a refactor keeps the bits.

Small runs of the shipped scenarios (Guangzhou, W1, the synthetic pool) under every sampling
measure (plain, importance, antithetic, importance + antithetic) and both copulas (Gaussian and
Student-t) are written with ``to_parquet`` and read back; the sha256 of every output table's
data is compared with ``digests.json``, recorded on the tree before the house moved (issue 11).
Timings and provenance are not data and are left out.

An intended change of bits re-records the file (``python tests/golden/test_golden.py --record``)
and says so in CHANGELOG, with the reference tests re-run.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import simengine as se

HERE = Path(__file__).parent
DIGESTS = HERE / "digests.json"
SCENARIOS = {"guangzhou": "scenarios/guangzhou_patent_2019.toml", "w1": "scenarios/w1_workload.toml",
             "synthetic": "scenarios/synthetic_homogeneous.toml"}
SAMPLING = ("none", "importance", "antithetic", "importance+antithetic")
COPULAS = {"gaussian": {}, "student_t": {"risk.default.copula": "student_t", "risk.default.dof": 5.0}}
TABLES = ("summary", "pool_summary", "channel_attribution", "cashflows", "worst_paths", "loss_exceedance",
          "tranche_losses", "pool_paths", "rating_levels")
PATHS, CHUNK, SEED = 1_000, 400, 11  # uneven chunks on purpose
CASES = [(s, v, c) for s in SCENARIOS for v in SAMPLING for c in COPULAS]
# switched off, an option keeps the bits of the record before it: these cases run with it off and
# are compared with the digests recorded before the option existed (kept under the suffixed key)
SWITCHED_OFF = {"shift_providers_off": {"simulation.importance.shift_providers": False}}
OFF_CASES = [(s, v, c, off) for off in SWITCHED_OFF for s in ("guangzhou", "w1") for v in SAMPLING
             if "importance" in v for c in COPULAS]


def table_digest(path: Path) -> str:
    """sha256 over column names, types and values of a Parquet file (not its metadata)."""
    table = pq.read_table(path)
    h = hashlib.sha256()
    for name, column in zip(table.column_names, table.columns):
        h.update(name.encode())
        h.update(str(column.type).encode())
        t = column.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            h.update(np.ascontiguousarray(column.to_numpy()).tobytes())
        else:  # strings, dictionaries, lists, nulls: their canonical text
            h.update(json.dumps(column.to_pylist(), default=repr).encode())
    return h.hexdigest()


def run_case(scenario: str, sampling: str, copula: str, out: Path, extra: dict | None = None) -> dict[str, str]:
    sc = se.load_scenario(SCENARIOS[scenario]).with_overrides(
        {**COPULAS[copula], "simulation.importance.pilot_paths": 1_000, "simulation.cashflow_sample_paths": 300,
         **(extra or {})})
    res = se.simulate(sc, paths=PATHS, seed=SEED, chunk_paths=CHUNK, progress=False, variance_reduction=sampling)
    res.to_parquet(out)
    return {t: table_digest(out / f"{t}.parquet") for t in TABLES}


@pytest.mark.parametrize("scenario,sampling,copula", CASES, ids=["-".join(c) for c in CASES])
def test_outputs_keep_their_bits(scenario, sampling, copula, tmp_path):
    want = json.loads(DIGESTS.read_text())["-".join((scenario, sampling, copula))]
    got = run_case(scenario, sampling, copula, tmp_path / "run")
    assert set(want) == set(TABLES)
    changed = [t for t in TABLES if got[t] != want[t]]
    assert not changed, f"tables whose bits changed: {changed}"


@pytest.mark.parametrize("scenario,sampling,copula,off", OFF_CASES, ids=["-".join(c) for c in OFF_CASES])
def test_switched_off_keeps_the_bits_from_before(scenario, sampling, copula, off, tmp_path):
    want = json.loads(DIGESTS.read_text())["-".join((scenario, sampling, copula, off))]
    got = run_case(scenario, sampling, copula, tmp_path / "run", SWITCHED_OFF[off])
    changed = [t for t in TABLES if got[t] != want[t]]
    assert not changed, f"tables whose bits changed: {changed}"


if __name__ == "__main__" and sys.argv[1] == "--record" and set(sys.argv[2:]) <= {"--switched-off"}:
    # --switched-off re-records the switched-off cases too: only for a change every case shares (a
    # new summary column), after checking that their failures are that change alone
    import os
    import tempfile

    os.chdir(HERE.parents[1])
    record = {key: value for key, value in json.loads(DIGESTS.read_text()).items()
              if key.endswith(tuple(SWITCHED_OFF))}  # kept: they hold the bits from before the option
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            record["-".join(case)] = run_case(*case, Path(tmp) / "-".join(case))
            print("-".join(case), "recorded")
        if "--switched-off" in sys.argv:
            for *case, off in OFF_CASES:
                key = "-".join((*case, off))
                record[key] = run_case(*case, Path(tmp) / key, SWITCHED_OFF[off])
                print(key, "recorded")
    DIGESTS.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
