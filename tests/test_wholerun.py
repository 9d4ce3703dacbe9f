"""The whole run (issue 17): the shortcuts that keep statistics, attribution and writing cheap give
the same bits as the long way round, and the run says what it chose and what each phase cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import simengine as se
from simengine._progress import PhaseClock
from simengine.analysis.attribution import (
    ATTRIBUTION_MIN_PATHS,
    ATTRIBUTION_PATHS,
    ATTRIBUTION_RULE,
    ATTRIBUTION_SHARE,
    attribution_choice,
    attribution_sample,
)
from simengine.analysis.crn import CommonRandomNumbers
from simengine.engine import ledgers
from simengine.stats import (
    _unit_cdf_search,  # its contract is np.searchsorted's
    batch_orders,
    batch_se,
    exceedance,
    exceedance_at,
    normal_ppf,
    stable_order,
    t_ppf,
    unit_weights,
    weighted_mean_se,
    weighted_means,
    weighted_quantile_es,
    weighted_quantiles,
    weighted_quantiles_columns,
    worst_path,
)

REPO = Path(__file__).resolve().parents[1]
GZ = str(REPO / "scenarios" / "guangzhou_patent_2019.toml")


def samples(seed: int):
    """Loss-like samples: atoms at 0 and 1, ties, continuous values, NaN-free, with weights."""
    rng = np.random.default_rng(seed)
    for n in (1, 2, 7, 40, 1_001):
        atoms = rng.choice([0.0, 0.0, 0.25, 1.0], size=n)
        yield atoms, np.ones(n)
        yield np.where(rng.random(n) < 0.3, rng.random(n), 0.0), rng.lognormal(0.0, 0.5, n)


def test_one_sort_gives_the_bits_of_many():
    for i, (x, w) in enumerate(samples(1)):
        order = stable_order(x)
        assert weighted_quantiles(x, w, [0.5, 0.99], order) == weighted_quantiles(x, w, [0.5, 0.99])
        assert weighted_quantile_es(x, w, (0.95, 0.999), order) == weighted_quantile_es(x, w, (0.95, 0.999))
        for a, b in zip(exceedance(x, w, order), exceedance(x, w)):
            assert a.tobytes() == b.tobytes()

        def tail(xx, ww, order=None):
            return np.array(weighted_quantile_es(xx, ww, (0.9,), order)[0])

        for pairs in (False, True):
            got = batch_se(tail, (x, w), pairs=pairs, order=order)
            assert got.tobytes() == batch_se(tail, (x, w), pairs=pairs).tobytes(), i
        for size, batches in ((len(x), 1), (max(1, len(x) // 20), 20), (max(1, len(x) // 3), 2), (1, 2)):
            for b, got in enumerate(batch_orders(order, size, batches)):
                assert np.array_equal(got, np.argsort(x[b * size:(b + 1) * size], kind="stable")), (i, size, b)


def test_the_quantile_functions_are_scipy_stats_bit_for_bit():
    from scipy import stats as sps

    rng = np.random.default_rng(10)
    q = np.concatenate([[0.0, 5e-324, 1e-300, 1e-20, 1e-10, 0.1, 0.5, 0.9, 1 - 1e-10, 1 - 2.0 ** -53, 1.0,
                         -0.1, 1.1, np.nan], rng.random(10_000), -np.expm1(-rng.lognormal(0, 3, 10_000))])
    assert normal_ppf(q).tobytes() == sps.norm.ppf(q).tobytes()
    assert np.float64(normal_ppf(0.5)).tobytes() == np.float64(sps.norm.ppf(0.5)).tobytes()  # 0.0, not -0.0
    for dof in (0.5, 1.0, 3.0, 5.5, 30.0, 1000.0):
        assert t_ppf(q, dof).tobytes() == sps.t(dof).ppf(q).tobytes(), dof


def test_the_worst_path_is_the_first_of_the_lexsort():
    rng = np.random.default_rng(9)
    for n in (1, 2, 50, 5_000):
        for _ in range(20):
            keys = [rng.choice([0.0, -0.0, 0.5, 1.0, np.nan], size=n, p=[0.4, 0.1, 0.2, 0.2, 0.1]) for _ in range(3)]
            if rng.random() < 0.2:
                keys[0][:] = np.nan
            order = np.lexsort((np.arange(n), -keys[2], -keys[1], -keys[0]))
            assert worst_path(*keys) == int(order[0])


def test_the_stable_order_is_numpys_stable_argsort():
    rng = np.random.default_rng(8)
    for n in (1, 1_023, 1_024, 5_000, 200_001):
        x = rng.random(n)
        for share_zero in (0.0, 0.3, 0.8, 0.999, 1.0):
            y = np.where(rng.random(n) < share_zero, rng.choice([0.0, -0.0], size=n), x)
            y[rng.random(n) < 0.01] = rng.choice([np.nan, -np.inf, np.inf, -0.5, 1.0])
            for v in (y, np.round(y, 2), -y):
                assert np.array_equal(stable_order(v), np.argsort(v, kind="stable")), (n, share_zero)


# the general formulas of simengine.stats, written out: the unit-weight shortcuts must give their bits
def reference_quantiles(x, w, levels):
    order = np.argsort(x, kind="stable")
    cdf = np.cumsum(w[order]) / w.sum()
    return [float(x[order][min(int(np.searchsorted(cdf, a - 1e-12)), len(x) - 1)]) for a in levels]


def reference_quantile_es(x, w, levels):
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order] / w.sum()
    cdf = np.cumsum(ws)
    out = []
    for a in levels:
        var = float(xs[min(int(np.searchsorted(cdf, a - 1e-12)), len(xs) - 1)])
        above = xs > var
        beyond, mass = float((ws[above] * xs[above]).sum()), float(ws[above].sum())
        out.append((var, (beyond + var * max(1.0 - a - mass, 0.0)) / (1.0 - a)))
    return out


def reference_exceedance(x, w, points):
    order = np.argsort(x, kind="stable")
    ws, n = w[order], len(x)
    tail = np.concatenate([np.cumsum(ws[::-1])[::-1], [0.0]])
    tail2 = np.concatenate([np.cumsum((ws * ws)[::-1])[::-1], [0.0]])
    k = np.searchsorted(x[order], points, side="right")
    prob = tail[k] / n
    return prob, np.sqrt(np.maximum(tail2[k] / n - prob * prob, 0.0) / max(n - 1, 1))


def reference_mean_se(x, w, pairs):
    wx = x * w
    mean = wx.mean()
    if pairs and len(wx) % 2 == 0:
        wx = 0.5 * (wx[0::2] + wx[1::2])
    return float(mean), float(wx.std(ddof=1) / np.sqrt(len(wx))) if len(wx) > 1 else np.nan


def same(a, b) -> bool:
    """The same float64 bits (NaN included)."""
    return np.array(a, dtype=np.float64).tobytes() == np.array(b, dtype=np.float64).tobytes()


def unit_samples(seed: int):
    """Unit-weight samples with what a shortcut could get wrong: ties, atoms at the quantile
    levels, signed zeros, NaN (sorted last, above nothing), one path, odd and even sizes."""
    rng = np.random.default_rng(seed)
    for n in (1, 2, 3, 20, 999, 1_000, 20_001, 100_000):  # from ~1e5 the running sum of 1/n drifts from (i+1)/n
        x = np.where(rng.random(n) < 0.4, rng.random(n), rng.choice([0.0, -0.0, 0.25, 1.0], size=n))
        yield x
        y = x.copy()
        y[rng.random(n) < 0.02] = np.nan
        yield y
        yield np.round(rng.normal(size=n), 1)  # negative values, many ties
        yield rng.random(n)  # no ties: a quantile one order statistic off shows


def test_unit_weight_shortcuts_give_the_bits_of_the_general_formulas():
    levels = (0.001, 0.05, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999)
    for i, x in enumerate(unit_samples(5)):
        w = np.ones(len(x))
        assert unit_weights(w) and not unit_weights(np.append(w[:-1], 1.0 + 2e-16) if len(w) > 1 else w * 2)
        assert same(weighted_quantiles(x, w, levels), reference_quantiles(x, w, levels)), i
        got, ref = weighted_quantile_es(x, w, levels), reference_quantile_es(x, w, levels)
        assert same(got, ref), i
        points = np.unique(np.concatenate([x[~np.isnan(x)][:50], [-1.0, 0.0, 0.5, 2.0]]))
        for a, b in zip(exceedance_at(x, w, points), reference_exceedance(x, w, points)):
            assert a.tobytes() == b.tobytes(), i
        for pairs in (False, True):
            assert same(weighted_mean_se(x, w, pairs), reference_mean_se(x, w, pairs)), (i, pairs)
    for n in (1, 3, 10, 1_000, 99_991):  # the bisection is np.searchsorted on the rounded quotients
        cdf = np.arange(1, n + 1) / float(n)
        for t in np.concatenate([cdf[:: max(1, n // 50)], [0.0, 0.95 - 1e-12, 1.0, 2.0]]):
            for target in (np.nextafter(t, -1), t, np.nextafter(t, 2)):
                assert _unit_cdf_search(n, float(target)) == int(np.searchsorted(cdf, target)), (n, target)
    # the reused mean holds for weighted paths and (m, n) rows too
    rng = np.random.default_rng(6)
    x, w = rng.random((3, 1_001)), rng.lognormal(size=1_001)
    mean, se = weighted_mean_se(x, w)
    for r in range(3):
        assert same([mean[r], se[r]], reference_mean_se(x[r], w, False)), r


def test_exceedance_points_are_np_unique_even_with_signed_zeros():
    x = np.array([0.0, -0.0, 0.5, 0.0, 0.5, 1.0])
    w = np.ones(len(x))
    assert exceedance(x, w)[0].tobytes() == np.unique(x).tobytes()


def test_quantiles_of_every_column_at_once_equal_one_at_a_time():
    rng = np.random.default_rng(2)
    values = np.where(rng.random((500, 12)) < 0.5, 0.0, rng.random((500, 12)))
    w = rng.lognormal(size=500)
    levels = (0.05, 0.5, 0.95)
    want = np.array([weighted_quantiles(values[:, j], w, levels) for j in range(12)]).T
    assert weighted_quantiles_columns(values, w, levels).tobytes() == want.tobytes()


@pytest.mark.parametrize("weight", [1.0, 0.37])
def test_equal_weight_quantiles_by_partition_equal_the_sort(weight):
    """Equal weights take the partition path: ties, constant columns, NaN and a column holding -0.0
    (which must fall back to the sort) give the one-column helper's bits."""
    rng = np.random.default_rng(3)
    n = 1001
    values = np.round(rng.normal(size=(n, 8)), 1)  # many ties
    values[:, 1] = 2.5  # constant
    values[::7, 2] = np.nan
    values[:, 3] = np.where(np.random.default_rng(0).random(n) < 0.5, 0.0, -0.0)  # a partition picks other zeros
    values[:, 4] = np.where(rng.random(n) < 0.9, 0.0, rng.random(n))
    w = np.full(n, weight)
    levels = (0.05, 0.5, 0.95)
    want = np.array([weighted_quantiles(values[:, j], w, levels) for j in range(8)]).T
    assert weighted_quantiles_columns(values, w, levels).tobytes() == want.tobytes()


def test_attribution_sample_rule():
    assert attribution_sample(1_000, False) == 1_000  # a small run: every path
    assert attribution_sample(ATTRIBUTION_MIN_PATHS * 3, False) == ATTRIBUTION_MIN_PATHS
    assert attribution_sample(ATTRIBUTION_PATHS * ATTRIBUTION_SHARE // 2, False) == ATTRIBUTION_PATHS // 2
    assert attribution_sample(10 ** 8, False) == ATTRIBUTION_PATHS
    assert attribution_sample(10 ** 8, False, asked=123) == 123
    assert attribution_sample(500, False, asked=10 ** 6) == 500
    assert attribution_sample(1_000, True, asked=301) == 300  # whole antithetic pairs


def test_attribution_choice_says_when_the_count_asked_for_was_not_run():
    assert attribution_choice(30_000, False) == {"paths": ATTRIBUTION_MIN_PATHS, "rule": ATTRIBUTION_RULE}
    assert attribution_choice(1_000, False, 400) == {"paths": 400, "rule": "asked for"}
    assert attribution_choice(500, False, 3_000) == {"paths": 500,
                                                     "rule": "asked for 3,000; the run stopped at 500 paths"}
    assert attribution_choice(1_000, True, 301) == {"paths": 300, "rule": "asked for 301; whole antithetic pairs"}


@pytest.mark.parametrize("value, says", [
    ("0", "'0': expected a whole number >= 1"), ("-5", "'-5': expected a whole number >= 1"),
    ("1.5", "'1.5': expected a whole number"), ("many", "'many': expected a whole number"),
    ("1_001", "--attribution-paths 1,001: more than the run's 1,000 paths; expected at most 1,000"),
])
def test_bad_attribution_paths_is_bad_input_and_writes_nothing(tmp_path, value, says):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "simengine", "run", GZ, "--paths", "1000", "--out", str(out),
                        f"--attribution-paths={value}", "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", [0, -1, 2.0, True, "10"])
def test_simulate_refuses_a_bad_attribution_count_before_simulating(value):
    with pytest.raises(ValueError, match="attribution_paths .*expected a whole number >= 1"):
        se.simulate(GZ, paths=1_000, attribution_paths=value, progress=False)


@pytest.fixture(scope="module")
def small_run():
    sc = se.load_scenario(GZ).with_overrides({"simulation.cashflow_sample_paths": 900})  # one block
    return se.simulate(sc, paths=1_200, seed=9, chunk_paths=500, progress=False,
                       variance_reduction="importance+antithetic")


def test_attribution_reads_the_full_run_from_the_spool_with_the_bits_of_a_rerun(small_run):
    n = attribution_sample(small_run.paths, True)
    rerun = CommonRandomNumbers(small_run.spec, n).weighted("loss_fraction")
    assert small_run.columns.weighted_losses(n).tobytes() == rerun.tobytes()


def test_threaded_statistics_and_spool_reads_equal_one_thread(small_run):
    """The threaded paths are taken whatever the machine's cores: means, errors and column reads."""
    from simengine.engine import SpooledColumns

    w = small_run.weights
    cols = [small_run._matrix("loss_fraction")[:, k] for k in range(2)] + [small_run._matrix("defaulted")[:, 0]]
    one = weighted_means(cols, w, True, threads=1)
    many = weighted_means(cols, w, True, threads=3)
    assert np.array(one).tobytes() == np.array(many).tobytes()
    names = ["loss_fraction", "defaulted", "wal_years", "first_shortfall_period"]  # float, bool, float, nullable int
    a = SpooledColumns(small_run.spool, len(small_run.columns.parts), 2)
    b = SpooledColumns(small_run.spool, len(small_run.columns.parts), 2)
    a.prefetch("tranche_losses", names, threads=3)
    for name in names:
        x, y = a.column("tranche_losses", name), b.column("tranche_losses", name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name


def test_threaded_ledgers_equal_one_block(small_run):
    paths = np.arange(2_500, dtype=np.int64)  # three blocks of BLOCK_PATHS, two of them on the pool
    one = ledgers(small_run.plan, small_run.seed, paths, small_run.sampling)[0]
    many = ledgers(small_run.plan, small_run.seed, paths, small_run.sampling, threads=3)[0]
    assert one.tobytes() == many.tobytes()


def test_run_folder_states_phases_choice_and_row_groups(small_run, tmp_path):
    out = small_run.to_parquet(tmp_path / "run")
    manifest = json.loads((out / "manifest.json").read_text())
    phases = manifest["timings"]["phases"]
    assert set(phases) == {"read_spool", "summary", "channel_attribution", "cashflows_ledgers", "cashflows",
                           "worst_paths", "worst_paths_ledgers", "exceedance", "rating_levels", "pool_summary",
                           "write_tables", "write_path_tables"}  # every phase after the simulation; no plot here
    assert all(p["wall_seconds"] > 0 and p["cpu_seconds"] >= 0 for p in phases.values()), phases
    assert manifest["channel_attribution"] == {"paths": 1_200, "rule": ATTRIBUTION_RULE}
    assert "paths // 10" in ATTRIBUTION_RULE
    meta = pq.ParquetFile(out / "tranche_losses.parquet").metadata
    assert meta.num_row_groups == 1  # three chunks (500, 500, 200 paths), coalesced
    encodings = {meta.row_group(0).column(j).path_in_schema: meta.row_group(0).column(j).encodings
                 for j in range(meta.num_columns)}
    assert "DELTA_BINARY_PACKED" in encodings["path"]
    assert not any("DICTIONARY" in e for e in encodings["loss_fraction"])


def test_phase_clock_counts_nested_phases_once():
    clock = PhaseClock()
    start = time.perf_counter()
    with clock("outer"):
        time.sleep(0.02)
        with clock("inner"):
            time.sleep(0.05)
    total = time.perf_counter() - start
    s = clock.seconds
    assert s["inner"]["wall_seconds"] >= 0.05 and s["outer"]["wall_seconds"] >= 0.02
    assert s["outer"]["wall_seconds"] + s["inner"]["wall_seconds"] <= total  # the inner phase counted once


@pytest.mark.parametrize("damage", ["cut", "emptied", "removed"])
def test_a_damaged_spool_part_is_computed_again_on_resume(tmp_path, caplog, damage):
    """A finished chunk whose Arrow part does not read back whole (a crash of the machine after the
    rename, a file removed) is recomputed on resume, not read into a traceback or mixed in."""
    spool = tmp_path / "spool"
    first = se.simulate(GZ, paths=1_000, chunk_paths=250, seed=3, progress=False, spool_dir=spool)
    want = first.summary.copy()
    del first
    part = spool / "tranche_losses" / "part-000001.arrow"
    if damage == "cut":
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    elif damage == "emptied":
        part.write_bytes(b"")
    else:
        part.unlink()
    again = se.simulate(GZ, paths=1_000, chunk_paths=250, seed=3, progress=False, spool_dir=spool)
    assert (again.timings["chunks_computed"], again.timings["chunks_resumed"]) == (1, 3)
    assert again.summary.equals(want)  # exact values, NaN where NaN
    assert any("chunk 1's spooled part tranche_losses/part-000001.arrow" in r.getMessage() for r in caplog.records)


def test_a_cold_compile_loads_the_waterfall_kernel_its_helper_compiled(tmp_path):
    """warm_up on an empty numba cache: its helper process compiles waterfall_path for the types of
    chunks.waterfall_compile_args while this process compiles the pool kernel, and this process
    then loads it from the cache (a cache hit for the very signature the path kernel calls). If
    the types drifted apart, the helper's work would go unused and the cold compile would
    silently take ~4 s longer. A fresh process and cache: about 12 s."""
    script = tmp_path / "cold.py"
    script.write_text(
        "import numba, simengine as se\n"
        "from simengine._kernels import chunk as kernels\n"
        "from simengine.engine import warm_up\n"
        "from simengine.engine.chunks import waterfall_compile_args\n"
        "from simengine.plan import compile_plan\n"
        "plan = compile_plan(se.load_scenario('scenarios/w1_workload.toml'))\n"
        "warm_up(plan)\n"
        "wanted = tuple(numba.typeof(a) for a in waterfall_compile_args(plan))\n"
        "assert [tuple(s) for s in kernels.waterfall_path.signatures] == [wanted]\n"
        "assert kernels.waterfall_path.stats.cache_hits[wanted] == 1, kernels.waterfall_path.stats\n"
        "print('ok')\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
