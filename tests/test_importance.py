"""Importance sampling and antithetics (issue 4): rare senior losses against quadrature, agreement
with plain Monte Carlo where it has many hits, weights that touch statistics only, determinism.

The references are finite-pool quadratures (tests/references.py ``tail_by_z``), exact for the
homogeneous one-period pool up to grid error far below the Monte Carlo error. Tolerances are
``z_tol`` standard errors (Bonferroni over the comparisons of a test, family-wise 1e-3).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from references import tail_by_z
from test_determinism import frames_identical
from test_reference import z_tol

import simengine as se
from simengine import _layout as k
from simengine._layout import ledger_columns
from simengine.engine import Sampling, ledgers, run_chunk
from simengine.plan import compile_plan
from simengine.rng import S_CHI2, S_GLOBAL, gamma_at, normal_at, path_key, stream_key

N_NAMES, PD, RHO = 1_000, 0.05, 0.2
# listed top down: the first tranche is paid first. The thin "senior" slice [50%, 52%] has
# P(L > 50%) = 1.2e-4 (Vasicek's large-pool value 1.18e-4).
SLICES = {"super_senior": (0.52, 1.0), "senior": (0.50, 0.52), "mezzanine": (0.10, 0.50), "equity": (0.0, 0.10)}
PATHS = 100_000


def thin_senior_pool(n=N_NAMES, pd_=PD, rho=RHO, slices=SLICES, copula="gaussian", dof=5.0):
    base = se.load_scenario("scenarios/synthetic_homogeneous.toml")
    tranches = [{"name": name, "balance": (d - a) * n, "interest_deferrable": True} for name, (a, d) in slices.items()]
    return base.with_overrides({"pool.generate.count": n, "pool.generate.pd_annual": pd_,
                                "risk.correlation.global": rho, "risk.default.copula": copula,
                                "risk.default.dof": dof, "structure.tranches": tranches})


@pytest.fixture(scope="module")
def runs():
    sc = thin_senior_pool()
    return {
        "plain": se.simulate(sc, paths=PATHS, seed=21, progress=False),
        "is_senior": se.simulate(sc, paths=PATHS, seed=3, variance_reduction="importance", tranche="senior",
                                 progress=False),
        "is_mezzanine": se.simulate(sc, paths=PATHS, seed=5, variance_reduction="importance",
                                    tranche="mezzanine", progress=False),
    }


def test_thin_senior_slice_matches_quadrature_with_a_third_of_plain_error(runs):
    res = runs["is_senior"]
    assert res.sampling.global_shift < -1.0  # the pilot moved towards the loss region
    a, d = SLICES["senior"]
    pd_ref, el_ref, el2_ref = tail_by_z(N_NAMES, PD, RHO, a, d)
    s = res.summary.set_index("tranche").loc["senior"]
    tol = z_tol(2)
    assert abs(s["pd"] - pd_ref) <= tol * s["pd_se"], (s["pd"], pd_ref, s["pd_se"])
    assert abs(s["el"] - el_ref) <= tol * s["el_se"], (s["el"], el_ref, s["el_se"])
    # plain Monte Carlo's relative errors at the same path count, from the exact moments
    plain_pd_rse = math.sqrt(pd_ref * (1 - pd_ref) / PATHS) / pd_ref
    plain_el_rse = math.sqrt((el2_ref - el_ref ** 2) / PATHS) / el_ref
    assert s["pd_se"] / s["pd"] <= plain_pd_rse / 3, (s["pd_se"] / s["pd"], plain_pd_rse)
    assert s["el_se"] / s["el"] <= plain_el_rse / 3, (s["el_se"] / s["el"], plain_el_rse)
    # the reported variance-reduction factor is plain variance over this run's, both estimated
    # here; a third of plain MC's relative error is a ninth of its variance
    assert s["pd_vr"] == pytest.approx(s["pd"] * (1 - s["pd"]) / (PATHS - 1) / s["pd_se"] ** 2)
    assert s["pd_vr"] >= 9.0


def test_plain_monte_carlo_sees_the_thin_slice_as_noise(runs):
    """The reason for the above: plain MC at 100,000 paths has ~12 hits and a 29% relative error."""
    s = runs["plain"].summary.set_index("tranche").loc["senior"]
    pd_ref = tail_by_z(N_NAMES, PD, RHO, *SLICES["senior"])[0]
    assert abs(s["pd"] - pd_ref) <= z_tol(1) * math.sqrt(pd_ref * (1 - pd_ref) / PATHS)
    assert s["pd_vr"] == pytest.approx(1.0, rel=1e-9)  # plain MC: the factor is 1 by construction
    assert s["ess_kish"] == PATHS


@pytest.mark.parametrize("run", ["is_mezzanine", "is_senior"])
def test_mezzanine_importance_and_plain_agree(runs, run):
    """Where plain MC has many hits (PD 13%), the weighted estimates agree with it and with the
    quadrature within the combined standard errors; also for the measure aimed at the senior."""
    plain = runs["plain"].summary.set_index("tranche").loc["mezzanine"]
    other = runs[run].summary.set_index("tranche").loc["mezzanine"]
    a, d = SLICES["mezzanine"]
    pd_ref, el_ref, _ = tail_by_z(N_NAMES, PD, RHO, a, d)
    tol = z_tol(4)
    for stat in ("pd", "el"):
        combined = math.hypot(plain[f"{stat}_se"], other[f"{stat}_se"])
        assert abs(plain[stat] - other[stat]) <= tol * combined, (stat, plain[stat], other[stat], combined)
    assert abs(other["pd"] - pd_ref) <= tol * other["pd_se"]
    assert abs(other["el"] - el_ref) <= tol * other["el_se"]


def test_weights_are_positive_and_average_to_one(runs):
    """E[w] = 1 under the sampling measure. The weight of a mean shift mu is lognormal with
    Var[w] = exp(mu^2) - 1 exactly, so the tolerance uses that, not the sample SE (which a few
    huge weights make unreliable for strong shifts: the reason the summary also states Kish's ESS)."""
    for name in ("is_senior", "is_mezzanine"):
        res = runs[name]
        w = res.weights
        mu = res.sampling.global_shift
        assert (w > 0).all() and np.isfinite(w).all()
        exact_se = math.sqrt(math.expm1(mu * mu) / len(w))
        assert abs(w.mean() - 1.0) <= z_tol(2) * exact_se, (name, w.mean(), exact_se)
        s = res.summary.iloc[0]
        assert s["weight_mean"] == pytest.approx(w.mean())
        assert s["ess_kish"] < PATHS  # unequal weights: fewer effective paths, stated in the summary
    # a moderate shift makes this a sharp check (the mezzanine's mu is about -1.3: SE ~ 0.006)
    assert abs(runs["is_mezzanine"].sampling.global_shift) < 2.0


def test_exceedance_curve_is_weighted_and_banded(runs):
    """The weighted exceedance of the mezzanine loss matches the quadrature at its kinks; the
    band is the curve's 95% interval (Parquet table and plot use the same numbers)."""
    res = runs["is_senior"]
    table = res.exceedance_table
    mezz = table[(table["tranche"] == "mezzanine") & (table["basis"] == "enhanced")]
    a, d = SLICES["mezzanine"]
    for frac in (0.0, 0.25, 0.5):
        x = frac
        row = mezz[mezz["loss_fraction"] <= x + 1e-12].iloc[-1]  # P(L > x) is flat from one observed loss to the next
        # mezzanine loss > x  <=>  pool loss > a + x (d - a)
        want = tail_by_z(N_NAMES, PD, RHO, a + x * (d - a), d)[0]
        assert abs(row["probability"] - want) <= z_tol(3) * row["se"], (x, row["probability"], want, row["se"])
        assert row["lower"] <= row["probability"] <= row["upper"]
    pd_mezz = res.summary.set_index("tranche").loc["mezzanine", "pd"]
    assert mezz.iloc[0]["probability"] == pytest.approx(pd_mezz, rel=1e-9)  # P(L > 0) is the PD


def _expected_weight(seed, path, T, sampling, dof, copula_t):
    """The likelihood ratio recomputed from the addressed draws, independently of the kernel."""
    # uint64 throughout: a Python int key would type as int64 and mix to float in numba
    key = np.uint64(path_key(np.uint64(seed), np.uint64(path >> 1 if sampling.antithetic else path)))
    sign = -1.0 if sampling.antithetic and path & 1 else 1.0
    sk = np.uint64(stream_key(key, np.uint64(S_GLOBAL)))
    z = sum(sign * normal_at(sk, t) for t in range(T)) / math.sqrt(T) + sampling.global_shift
    mu = sampling.global_shift
    log_w = -mu * z + 0.5 * mu * mu
    if copula_t:
        g = gamma_at(np.uint64(stream_key(key, np.uint64(S_CHI2))), 0, 0.5 * dof)
        s = sampling.chi2_scale
        log_w += 0.5 * dof * math.log(s) + g * (1.0 - s)
    return math.exp(log_w), z


def test_weights_only_touch_statistics():
    """Under importance sampling a path's cash flows come from the same waterfall as any other
    path's: the chunk's tranche results equal the waterfall re-run on the path's own ledger,
    and the weight equals the likelihood ratio recomputed from the addressed draws."""
    gz = se.load_scenario("scenarios/guangzhou_patent_2019.toml").with_overrides(
        {"risk.default.copula": "student_t", "risk.default.dof": 4.0})
    plan = compile_plan(gz)
    sampling = Sampling(-1.7, 0.6, True)
    seed, first, n = 8, 500, 64
    out = run_chunk(plan, seed, first, n, sampling)
    led, collections = ledgers(plan, seed, np.arange(first, first + n), sampling)
    for i in range(n):
        w, z = _expected_weight(seed, first + i, plan.periods, sampling, 4.0, True)
        assert out.weights[i] == pytest.approx(w, rel=1e-12)
        assert out.pool[i, k.P_Z_GLOBAL] == pytest.approx(z, abs=1e-12)
    # the ledger's cash flows (the waterfall re-run path by path) give the chunk's tranche results
    np.testing.assert_allclose(collections.sum(axis=1), out.pool[:, k.P_COLLECTIONS], rtol=1e-12)
    balance = {owner: c for owner, item, c in ledger_columns(plan.tranche_names) if item == "balance_amount"}
    for j, tranche in enumerate(plan.tranche_names):
        final_balance = led[:, -1, balance[tranche]]
        orig = plan.waterfall.tranche_balance[j]
        lost = np.where(final_balance > 1e-9 * orig, final_balance, 0.0) / orig
        np.testing.assert_allclose(lost, out.tranche[:, k.BASIS_ENHANCED, j, k.T_LOSS], rtol=1e-12, atol=1e-15)
    # and the measure did change the drivers: this is not plain sampling in disguise
    _, plain_collections = ledgers(plan, seed, np.arange(first, first + n))
    assert not np.array_equal(plain_collections, collections)


def test_antithetic_pairs_negate_the_normals():
    """Paths 2m and 2m+1 share an address; the odd path's global factor is the even one's negated."""
    plan = compile_plan(se.load_scenario("scenarios/guangzhou_patent_2019.toml"))
    out = run_chunk(plan, 4, 0, 200, Sampling(0.0, 1.0, True))
    z = out.pool[:, k.P_Z_GLOBAL]
    np.testing.assert_allclose(z[1::2], -z[0::2], rtol=0, atol=1e-12)
    shifted = run_chunk(plan, 4, 0, 200, Sampling(-1.0, 1.0, True)).pool[:, k.P_Z_GLOBAL]
    np.testing.assert_allclose(shifted[0::2] + shifted[1::2], -2.0, atol=1e-12)  # mirrored about the mean


def test_antithetic_standard_error_uses_pairs(runs):
    """A pair's two paths are dependent: the SE must come from the n/2 pair means. With
    antithetics on a monotone payoff the pairs are negatively correlated, so the pair SE is
    below the (wrong) independent-path formula, and the EL still matches the quadrature."""
    sc = thin_senior_pool()
    res = se.simulate(sc, paths=40_000, seed=9, variance_reduction="antithetic", progress=False)
    s = res.summary.set_index("tranche").loc["equity"]
    loss = res.tranche_losses
    x = loss.loc[loss["tranche"] == "equity", "loss_fraction"].to_numpy()
    naive = x.std(ddof=1) / math.sqrt(len(x))
    pair = (0.5 * (x[0::2] + x[1::2])).std(ddof=1) / math.sqrt(len(x) / 2)
    assert s["el_se"] == pytest.approx(pair, rel=1e-9)
    assert s["el_se"] < naive
    a, d = SLICES["equity"]
    el_ref = tail_by_z(N_NAMES, PD, RHO, a, d)[1]
    assert abs(s["el"] - el_ref) <= z_tol(1) * s["el_se"], (s["el"], el_ref, s["el_se"])


def test_student_t_chi_square_shift_matches_quadrature():
    """Student-t copula: the pilot also scales the chi-square mixing variable (s < 1), and the
    thin senior slice's PD matches the two-dimensional quadrature with a smaller error than plain."""
    n, slices = 500, {"super_senior": (0.76, 1.0), "senior": (0.74, 0.76), "rest": (0.0, 0.74)}
    sc = thin_senior_pool(n=n, slices=slices, copula="student_t", dof=5.0)
    paths = 50_000
    res = se.simulate(sc, paths=paths, seed=13, variance_reduction="importance", tranche="senior", progress=False)
    assert res.sampling.chi2_scale < 1.0
    pd_ref, el_ref, _ = tail_by_z(n, PD, RHO, 0.74, 0.76, copula="student_t", dof=5.0)
    s = res.summary.set_index("tranche").loc["senior"]
    assert abs(s["pd"] - pd_ref) <= z_tol(2) * s["pd_se"], (s["pd"], pd_ref, s["pd_se"])
    assert abs(s["el"] - el_ref) <= z_tol(2) * s["el_se"], (s["el"], el_ref, s["el_se"])
    assert s["pd_se"] / s["pd"] <= math.sqrt((1 - pd_ref) / (paths * pd_ref)) / 3


def test_importance_sampling_keeps_determinism():
    """Same seed, same bits with the pilot-chosen measure and antithetics, for any thread count or chunk size."""
    sc = se.load_scenario("scenarios/guangzhou_patent_2019.toml").with_overrides(
        {"simulation.variance_reduction": "importance+antithetic"})
    a = se.simulate(sc, paths=3_000, seed=99, chunk_paths=700, threads=1, progress=False)
    b = se.simulate(sc, paths=3_000, seed=99, chunk_paths=1_000, threads=2, progress=False)
    assert a.sampling == b.sampling and a.sampling.global_shift != 0.0
    for name in ("tranche_losses", "pool_paths", "summary", "cashflows"):
        frames_identical(getattr(a, name), getattr(b, name))


def test_target_rse_adds_chunks_until_reached(tmp_path):
    """`simengine run --target-rse 0.02 --tranche senior` stops at the first chunk where the senior
    PD's relative standard error is at most 2% (about 12,000 importance-sampled paths here, where
    plain MC would need 2 million), and says so; a cap that comes first is reported."""
    sc_file = tmp_path / "thin.toml"
    sc_file.write_text((Path("scenarios/synthetic_homogeneous.toml").read_text()
                        .replace("count = 100", "count = 1000")
                        .split("# slices")[0]) + "\n".join(
        f'[[structure.tranches]]\nname = "{name}"\nbalance = {(d - a) * 1000:.1f}\ninterest_deferrable = true\n'
        for name, (a, d) in SLICES.items()) + '\n[simulation]\nseed = 1\nvariance_reduction = "importance"\n')
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "simengine", "run", str(sc_file), "--target-rse", "0.02", "--tranche", "senior",
           "--chunk-paths", "1000", "--max-paths", "50000", "--out", str(out), "--no-plot", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "reached after" in done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    target = manifest["target"]
    assert target["reached"] and target["rse"] <= 0.02 and not target["path_cap_hit"]
    assert 1000 < target["paths"] == manifest["paths"] < 50_000 and target["paths"] % 1000 == 0
    # one chunk fewer would not have reached it: the run stopped at the first chunk that did
    w = pq.read_table(out / "tranche_losses.parquet").to_pandas()
    senior = w[w["tranche"] == "senior"]
    head = senior.iloc[: target["paths"] - 1000]
    x = head["weight"].to_numpy() * head["defaulted"].to_numpy()
    rse_before = x.std(ddof=1) / math.sqrt(len(x)) / x.mean() if x.mean() > 0 else math.inf
    assert rse_before > 0.02
    summary = pq.read_table(out / "summary.parquet").to_pandas().set_index("tranche")
    assert summary.loc["senior", "pd_se"] / summary.loc["senior", "pd"] == pytest.approx(target["rse"])

    capped = tmp_path / "capped"
    cmd_cap = [c if c != "0.02" else "0.001" for c in cmd]
    cmd_cap[cmd_cap.index(str(out))] = str(capped)
    cmd_cap[cmd_cap.index("50000")] = "3000"
    done = subprocess.run(cmd_cap, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "NOT reached: path cap 3,000 hit" in done.stdout
    t = json.loads((capped / "manifest.json").read_text())["target"]
    assert t["path_cap_hit"] and not t["reached"] and t["paths"] == 3000


def test_target_rse_rejects_paths(tmp_path):
    done = subprocess.run([sys.executable, "-m", "simengine", "run", "scenarios/synthetic_homogeneous.toml",
                           "--target-rse", "0.1", "--paths", "1000", "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--max-paths" in done.stderr
    assert not (tmp_path / "x").exists()


def test_bad_importance_tranche_is_bad_input(tmp_path):
    done = subprocess.run([sys.executable, "-m", "simengine", "run", "scenarios/synthetic_homogeneous.toml",
                           "--variance-reduction", "importance", "--tranche", "senor", "--paths", "1000",
                           "--out", str(tmp_path / "x")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "simulation.importance.tranche = 'senor'" in done.stderr and "did you mean 'senior'" in done.stderr


@pytest.mark.parametrize("sampling", [Sampling(-1.8, 1.0, False), Sampling(0.0, 1.0, True), Sampling(-1.8, 1.0, True)],
                         ids=["importance", "antithetic", "both"])
def test_reported_standard_errors_are_honest(sampling):
    """Over 40 independent seeds the z-scores (estimate - quadrature) / reported SE have mean
    square 1: sum z^2 ~ chi2(40), checked against its 0.05% and 99.95% quantiles. For a tail
    event the two paths of a pair are nearly uncorrelated, so here the pair formula matters
    little (test_antithetic_standard_error_uses_pairs checks it where it does); the weights
    matter. The slice is hit on ~2.4% of plain paths
    (~100 hits a run): with a handful of hits an estimated SE is itself too noisy for z-scores
    (one run with few hits gave z = -6.9 at P = 0.5%, 4,000 paths; fine at 40,000)."""
    from scipy import stats

    from simengine.stats import weighted_mean_se

    n, (a, d), paths, seeds = 200, (0.20, 0.25), 4_000, 40
    sc = thin_senior_pool(n=n, slices={"top": (d, 1.0), "slice": (a, d), "rest": (0.0, a)})
    plan = compile_plan(sc)
    pd_ref, el_ref, _ = tail_by_z(n, PD, RHO, a, d)
    z = {"pd": [], "el": []}
    for seed in range(seeds):
        out = run_chunk(plan, 1_000 + seed, 0, paths, sampling)
        w = out.weights
        for stat, x, ref in (("pd", out.tranche[:, k.BASIS_ENHANCED, 1, k.T_DEFAULTED], pd_ref),
                             ("el", out.tranche[:, k.BASIS_ENHANCED, 1, k.T_LOSS], el_ref)):
            est, se = weighted_mean_se(x, w, sampling.antithetic)
            z[stat].append((est - ref) / se)
    lo, hi = stats.chi2.ppf([0.0005, 0.9995], seeds)
    for stat, values in z.items():
        ss = float(np.sum(np.square(values)))
        assert lo <= ss <= hi, (stat, ss, lo, hi)


def test_exceedance_points_are_exact_on_the_grid_too():
    """P(L > x) at each reported point is the weighted count above it, whether the curve is at
    the distinct losses (few) or on the equally spaced grid (many)."""
    from simengine.stats import CURVE_POINTS, exceedance

    rng = np.random.default_rng(3)
    for values in (rng.integers(0, 20, 5_000) / 20.0, rng.random(5_000)):
        w = rng.lognormal(0.0, 1.0, values.size)
        x, prob, se = exceedance(values, w)
        assert len(x) <= CURVE_POINTS
        brute = np.array([(w * (values > xi)).sum() / values.size for xi in x])
        np.testing.assert_allclose(prob, brute, rtol=1e-12, atol=1e-15)
        wx = w[:, None] * (values[:, None] > x[None, :])
        np.testing.assert_allclose(se, wx.std(axis=0, ddof=1) / math.sqrt(values.size), rtol=1e-6)
