"""Reproducible benchmarks of simengine (SPEC §8): ``python benchmarks/run.py [--quick]``.

Measures, on this machine and in one run:

- W1 (scenarios/w1_workload.toml, 100,000 paths) and W3 (the Guangzhou deal, 1,000,000 paths):
  warm wall time of the kernel alone (``simengine.engine.run_chunk`` over chunks) and end to end
  (``simengine.simulate``, which also spools the per-path Parquet parts), throughput in paths/s
  and licence-periods/s, peak resident memory of the section;
- the NumPy peer (benchmarks/numpy_peer.py) on W1 and W3 in the same run, on every core (one
  worker process per core, started before the clock), its time ratio to the engine and the agreement of their tranche EL and PD (z = diff / sqrt(se1^2 + se2^2));
- W2 (5,000 licences, 1,000,000 paths) end to end in a subprocess, with that process's peak RSS
  (and the same at 100,000 paths, to show that memory is set by the chunk, not by the paths);
- scaling series: paths, licences, periods and numba threads;
- the random-number floor: a numba kernel (below) that draws, with the engine's own addressed
  generator, as many normals and uniforms per path as the model does, and nothing else;
- cold compile time (empty NUMBA_CACHE_DIR, in a subprocess) and the cached start of a whole
  ``simengine run`` process;
- a profile of where the W1 kernel time goes (ablations of each risk driver, pool without
  waterfall, cost of the primitives).

Writes ``benchmarks/results/<YYYY-MM-DD>-<hostname>.json`` and ``.md`` (``-quick`` appended with
``--quick``). See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import hashlib
import json
import math
import os
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

W1 = ROOT / "scenarios" / "w1_workload.toml"
W2 = ROOT / "scenarios" / "w2_workload.toml"
W3 = ROOT / "scenarios" / "guangzhou_patent_2019.toml"
SEED = 20240611


# ------------------------------------------------------------------------------------ helpers
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _status_kb(field: str, pid: str = "self") -> int | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss(pids=("self",)) -> bool:
    """Reset the VmHWM of these processes (Linux: write 5 to /proc/PID/clear_refs); False if not possible."""
    try:
        for pid in pids:
            with open(f"/proc/{pid}/clear_refs", "w") as fh:
                fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb(pids=("self",)) -> float:
    """Peak RSS since the last reset (VmHWM), summed over processes; ru_maxrss where unavailable."""
    total = 0
    for pid in pids:
        kb = _status_kb("VmHWM", pid)
        if kb is None and pid == "self":
            kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        total += kb or 0
    return total / 1024.0


def rss_mb() -> float:
    kb = _status_kb("VmRSS")
    return (kb or 0) / 1024.0


def timing(runs: list[float]) -> dict:
    return {"reps": len(runs), "median_s": statistics.median(runs), "min_s": min(runs), "max_s": max(runs),
            "runs_s": [round(r, 4) for r in runs]}


def throughput(t: dict, paths: int, licences: int, periods: int) -> dict:
    med = t["median_s"]
    return {"paths_per_s": paths / med, "licence_periods_per_s": paths * licences * periods / med}


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


class Section:
    """Context: resets the peak-RSS mark, records load, wall time and errors of one section."""

    def __init__(self, report: dict, name: str):
        self.report, self.name = report, name
        self.entry = report.setdefault("sections", {}).setdefault(name, {})

    def __enter__(self):
        gc.collect()
        self.entry["peak_rss_reset"] = reset_peak_rss()
        self.entry["rss_start_mb"] = round(rss_mb(), 1)
        self.entry["loadavg_start"] = loadavg()
        self.t0 = time.perf_counter()
        log(f"section {self.name} ...")
        return self.entry

    def __exit__(self, exc_type, exc, tb):
        self.entry["section_wall_s"] = round(time.perf_counter() - self.t0, 2)
        self.entry["peak_rss_mb"] = round(peak_rss_mb(), 1)
        self.entry["loadavg_end"] = loadavg()
        if exc is not None:
            self.entry["error"] = "".join(traceback.format_exception_only(exc_type, exc)).strip()
            self.entry["traceback"] = traceback.format_exc()
            log(f"section {self.name} FAILED: {self.entry['error']}")
            return not isinstance(exc, KeyboardInterrupt)
        log(f"section {self.name} done in {self.entry['section_wall_s']:.1f}s")
        return False


# ------------------------------------------------------------------------------ machine info
def _kernels_sha() -> str | None:
    kernels = ROOT / "simengine" / "kernels.py"
    return hashlib.sha256(kernels.read_bytes()).hexdigest() if kernels.exists() else None


def machine_info() -> dict:
    import numba
    import scipy

    import simengine

    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu,
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "simengine": simengine.__version__,
        "numba_num_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_threading_layer_config": numba.config.THREADING_LAYER,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty_simengine": git("status", "--porcelain", "simengine"),
        "kernels_py_sha256": _kernels_sha(),
    }


# ---------------------------------------------------------------------------- numba kernels
def _build_kernels():
    """The floor and profile kernels (compiled on first use, in this process)."""
    from simengine import kernels as K
    from simengine._jit import jit, parallel_jit, prange
    from simengine.rng import normal_at, path_key, stream_key, uniform_at

    @parallel_jit
    def rng_floor(seed, n_paths, normals, uniforms, out):
        """Draw ``normals[s]`` normals and ``uniforms[s]`` uniforms of stream s for every path.

        normals, uniforms : ndarray(int64), shape (streams,); out : ndarray(float64), shape (n_paths,)
        """
        for i in prange(n_paths):
            key = path_key(seed, i)
            acc = 0.0
            for s in range(normals.shape[0]):
                sk = stream_key(key, s)
                for j in range(normals[s]):
                    acc += normal_at(sk, j)
                for j in range(uniforms[s]):
                    acc += uniform_at(sk, normals[s] + j)
            out[i] = acc

    @parallel_jit
    def pool_only(pp, seed, n, n_factors, collections_total, recovery_draws):
        """kernels.pool_path for paths 0..n-1 (no waterfall), parallel over blocks as the engine.

        collections_total : ndarray(float64), shape (n,)   out
        recovery_draws : ndarray(float64), shape (n,)      out: licences that draw a beta recovery
        """
        T = pp.periods
        block = K.BLOCK_PATHS
        n_blocks = (n + block - 1) // block
        n_lic = pp.licence_royalty.shape[0]
        for b in prange(n_blocks):
            scratch = K.pool_scratch(pp, n_factors)
            obs_period = scratch[5]
            licensee_period = scratch[6]
            collections = np.empty(T)
            cdr = np.empty(T)
            provider_period = np.empty(2, np.int64)
            for i in range(b * block, min(n, (b + 1) * block)):
                K.pool_path(pp, seed, i, 0.0, 1.0, False, scratch, collections, cdr, provider_period)
                total = 0.0
                for t in range(T):
                    total += collections[t]
                collections_total[i] = total
                draws = 0.0
                if pp.recovery_beta:
                    # as pool_path: a defaulted licence draws only if re-licensing can pay; invalidation
                    # is not replayed here, so this is an upper bound (about 4% of W1's licences)
                    for q in range(n_lic):
                        rec = pp.licence_recovery[q]
                        tau = licensee_period[pp.licence_licensee[q]]
                        r_start = max(tau + pp.relicense_lag, pp.licence_start[q])
                        r_stop = min(pp.licence_last[q] + 1, obs_period[pp.licence_technology[q]])
                        if tau <= pp.licence_last[q] and 0.0 < rec < 1.0 and r_start < r_stop:
                            draws += 1.0
                recovery_draws[i] = draws

    # primitives, one thread, inputs that depend on the draw (no constant folding)
    @jit
    def prim_uniform(n):
        k = path_key(1, 2)
        s = 0.0
        for i in range(n):
            s += uniform_at(k, i)
        return s

    @jit
    def prim_normal(n):
        k = path_key(1, 2)
        s = 0.0
        for i in range(n):
            s += normal_at(k, i)
        return s

    @jit
    def prim_licensee_transform(n):
        # as the kernel: latent -> copula uniform (erfc) -> exposure (log1p)
        k = path_key(1, 2)
        s = 0.0
        for i in range(n):
            u = K.upper_tail_normal(-normal_at(k, i))
            s += -math.log1p(-u)
        return s

    @jit
    def prim_invalidation(n):
        k = path_key(1, 2)
        s = 0.0
        for i in range(n):
            s += K.first_period_exceeding(-math.log1p(-uniform_at(k, i)), 0.005, 0.25, 40)
        return s

    @jit
    def prim_exp(n):
        k = path_key(1, 2)
        s = 0.0
        for i in range(n):
            s += math.exp(uniform_at(k, i) - 0.5)
        return s

    return {"rng_floor": rng_floor, "pool_only": pool_only, "prim_uniform": prim_uniform,
            "prim_normal": prim_normal, "prim_licensee_transform": prim_licensee_transform,
            "prim_invalidation": prim_invalidation, "prim_exp": prim_exp}


def _gamma_kernel():
    from simengine._jit import jit
    from simengine.rng import gamma_at, path_key

    @jit
    def prim_gamma(n, shape):
        k = path_key(1, 2)
        s = 0.0
        for i in range(n):
            s += gamma_at(k, i, shape)
        return s

    return prim_gamma


# ----------------------------------------------------------------------------------- engine
def scenario(path):
    import simengine as se

    return se.load_scenario(path)


def compile_plan(sc):
    from simengine.plan import compile_plan as cp

    return cp(sc)


def set_threads(n):
    import numba

    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))


def max_threads() -> int:
    import numba

    return numba.config.NUMBA_NUM_THREADS


def time_kernel(plan, paths: int, reps: int, chunk: int, seed: int = SEED) -> dict:
    """Wall time of run_chunk over chunks of ``chunk`` paths (kernel + output allocation only)."""
    from simengine.engine import run_chunk, warm_up

    warm_up(plan)
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for first in range(0, paths, chunk):
            run_chunk(plan, seed, first, min(chunk, paths - first))
        runs.append(time.perf_counter() - t0)
    return timing(runs)


def time_simulate(sc, paths: int, reps: int, threads: int, seed: int = SEED):
    """Wall time of simengine.simulate (kernel + Parquet spooling), one seed per repetition.

    Returns (timing, stats, summary_seconds): stats are the per-tranche EL / PD and pool means of
    all repetitions pooled (independent seeds, so their standard errors combine);
    summary_seconds is the time of ``result.summary`` on the last repetition.
    """
    import simengine as se

    runs, kernel, stats, summary_s = [], [], [], None
    for r in range(reps):
        t0 = time.perf_counter()
        res = se.simulate(sc, paths=paths, seed=seed + r, threads=threads, progress=False)
        runs.append(time.perf_counter() - t0)
        kernel.append(res.timings.get("kernel_seconds", float("nan")))
        stats.append(engine_stats(res))
        if r == reps - 1:
            t0 = time.perf_counter()
            res.summary  # noqa: B018 (statistics of SPEC §6, timed once)
            summary_s = time.perf_counter() - t0
        del res
        gc.collect()
    out = timing(runs)
    out["kernel_seconds_reported_by_simulate"] = [round(k, 4) for k in kernel]
    out["seeds"] = [seed + r for r in range(reps)]
    return out, pool_stats(stats), summary_s


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan


def engine_stats(res) -> dict:
    """Per-tranche EL and PD (both bases) with standard errors, and pool means, from a result's
    per-path tables (``tranche_losses``, ``pool_paths``); weights are all one (plain Monte Carlo)."""
    names = list(res.plan.tranche_names)
    tl = res.tranche_losses
    tranche = tl["tranche"].astype(str).to_numpy()
    w = tl["weight"].to_numpy(float)
    out = {"tranche_names": names, "paths": res.paths}
    for basis, prefix in (("enhanced", ""), ("standalone", "standalone_")):
        loss = tl[prefix + "loss_fraction"].to_numpy(float) * w
        dflt = tl[prefix + "defaulted"].to_numpy(float) * w
        b = {"el": [], "el_se": [], "pd": [], "pd_se": []}
        for name in names:
            m = tranche == name
            for key, x in (("el", loss[m]), ("pd", dflt[m])):
                mean, se = _mean_se(x)
                b[key].append(mean)
                b[key + "_se"].append(se)
        out[basis] = b
    del tl
    pp = res.pool_paths
    pool = {}
    for name, col in (("defaults", "licensee_defaults"), ("obsolete", "obsolete_technologies"),
                      ("invalidated", "invalidations"), ("collections", "collections_amount")):
        if col in pp:
            mean, se = _mean_se(pp[col].to_numpy(float))
            pool[name] = {"mean": [mean], "se": [se]}
    out["pool"] = pool
    return out


def pool_stats(stats: list[dict]) -> dict:
    """Pool statistics of independent equal-size runs: mean of means, se = sqrt(sum se^2) / runs."""
    if len(stats) == 1:
        return stats[0]
    r = len(stats)
    out = {"tranche_names": stats[0]["tranche_names"], "runs": r}
    for basis in ("enhanced", "standalone"):
        out[basis] = {}
        for m in ("el", "pd"):
            out[basis][m] = list(np.mean([s[basis][m] for s in stats], axis=0))
            out[basis][m + "_se"] = list(np.sqrt(np.sum(np.square([s[basis][m + "_se"] for s in stats]), axis=0)) / r)
    out["pool"] = {}
    for m in stats[0].get("pool", {}):
        out["pool"][m] = {"mean": list(np.mean([s["pool"][m]["mean"] for s in stats], axis=0)),
                          "se": list(np.sqrt(np.sum(np.square([s["pool"][m]["se"] for s in stats]), axis=0)) / r)}
    return out


def agreement(engine: dict, peer: dict) -> dict:
    """z-scores (engine - peer) / sqrt(se_e^2 + se_p^2) for EL and PD per tranche and basis."""
    rows = []
    for basis in ("enhanced", "standalone"):
        for k, name in enumerate(engine["tranche_names"]):
            for m in ("el", "pd"):
                e, es = engine[basis][m][k], engine[basis][m + "_se"][k]
                p, ps = peer[basis][m][k], peer[basis][m + "_se"][k]
                se = math.sqrt(es * es + ps * ps)
                rows.append({"basis": basis, "tranche": name, "metric": m, "engine": e, "engine_se": es,
                             "peer": p, "peer_se": ps, "z": (e - p) / se if se > 0 else (0.0 if e == p else math.inf)})
    for m in ("defaults", "obsolete", "invalidated", "collections"):
        if m in engine.get("pool", {}) and m in peer.get("pool", {}):
            e, es = engine["pool"][m]["mean"][0], engine["pool"][m]["se"][0]
            p, ps = peer["pool"][m]["mean"][0], peer["pool"][m]["se"][0]
            se = math.sqrt(es * es + ps * ps)
            rows.append({"basis": "pool", "tranche": "-", "metric": m, "engine": e, "engine_se": es, "peer": p,
                         "peer_se": ps, "z": (e - p) / se if se > 0 else 0.0})
    zs = [abs(r["z"]) for r in rows if math.isfinite(r["z"])]
    return {"rows": rows, "max_abs_z": max(zs) if zs else None,
            "n_abs_z_over_3": sum(z > 3 for z in zs), "n": len(zs)}


def tune_peer_chunk(plan, workers, candidates, paths_per_try: int) -> tuple[int, dict]:
    """Pick the peer's chunk size as a competent user would: try a few, keep the fastest."""
    import numpy_peer

    tried = {}
    for c in candidates:
        n = max(paths_per_try, 2 * c * workers.workers)
        t0 = time.perf_counter()
        numpy_peer.simulate(plan, n, 12345, c, workers)
        tried[c] = (time.perf_counter() - t0) / n * 1e6
    best = min(tried, key=tried.get)
    return best, {str(k): round(v, 2) for k, v in tried.items()}


def time_peer(plan, paths: int, reps: int, chunk: int, seed: int = SEED + 1000, tune=None):
    """The NumPy peer on every core: worker processes started (and warmed) before the clock, the
    chunk size tuned, then one seed per repetition; statistics pooled over repetitions.

    Returns (timing + chunk, tuning, peak RSS of the parent plus workers, start-up seconds), stats.
    """
    import numpy_peer

    t0 = time.perf_counter()
    workers = numpy_peer.Workers(plan, max_threads())
    startup = time.perf_counter() - t0
    try:
        chunk, tried = tune_peer_chunk(plan, workers, *tune) if tune else (chunk, {})
        gc.collect()
        pids = ["self", *workers.pids()]
        reset_peak_rss(pids)
        runs, stats = [], []
        for r in range(reps):
            t0 = time.perf_counter()
            res = numpy_peer.simulate(plan, paths, seed + r, chunk, workers)
            runs.append(time.perf_counter() - t0)
            stats.append(res)
        peak = peak_rss_mb(pids)
    finally:
        workers.close()
    out = timing(runs)
    out.update({"seeds": [seed + r for r in range(reps)], "workers": workers.workers, "chunk_paths": chunk,
                "chunk_tuning_us_per_path": tried, "peak_rss_mb": round(peak, 1),
                "worker_startup_s": round(startup, 2)})
    return out, pool_stats(stats)


# ---------------------------------------------------------------------------------- RNG floor
def rng_counts(plan, mean_recovery_draws: float):
    """Normals and uniforms per path, by stream, that kernels.pool_path draws (per simengine.rng)."""
    from simengine import rng as R

    pp = plan.pool
    T = pp.periods
    normals = np.zeros(9, np.int64)
    uniforms = np.zeros(9, np.int64)
    normals[R.S_GLOBAL] = T
    n_f = pp.factor_root.shape[0]
    normals[R.S_FACTOR] = (n_f - 1) if pp.factor_identity else n_f * (n_f - 1) // 2
    if pp.copula_t:
        normals[R.S_CHI2], uniforms[R.S_CHI2] = 1, 1
    if pp.demand_on:
        normals[R.S_DEMAND] = int((pp.demand_vol_annual > 0).sum()) * T
    if pp.obsolescence_on:
        normals[R.S_OBSOLESCENCE] = int(((pp.obsolescence_hazard_annual > 0) & (pp.obsolescence_forced_period < 0)).sum())
    if pp.default_on:
        normals[R.S_LICENSEE] = len(pp.licensee_hazard_annual)
    uniforms[R.S_INVALIDATION] = int((pp.licence_invalidation_hazard_annual > 0).sum())
    # two gamma variates per beta recovery; Marsaglia-Tsang takes one normal and one uniform per
    # attempt and accepts > 95% of attempts for shapes >= 1: count one attempt each
    g = int(round(2 * mean_recovery_draws))
    normals[R.S_RECOVERY], uniforms[R.S_RECOVERY] = g, g
    normals[R.S_PROVIDER] = int(pp.provider_on.sum())
    return normals, uniforms


def time_floor(kern, normals, uniforms, paths: int, reps: int) -> dict:
    out = np.empty(paths)
    kern(np.int64(1), 64, normals, uniforms, np.empty(64))  # compile / load
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        kern(np.int64(SEED), paths, normals, uniforms, out)
        runs.append(time.perf_counter() - t0)
    return timing(runs)


# ----------------------------------------------------------------------------- subprocesses
def _worker_simulate(args) -> None:
    """Child process: load a scenario, warm up, time simulate(); print JSON with peak RSS."""
    t0 = time.perf_counter()
    import simengine as se
    from simengine.engine import warm_up

    sc = se.load_scenario(args.scenario)
    plan = compile_plan(sc)
    t1 = time.perf_counter()
    compile_s = warm_up(plan)
    rss_before = rss_mb()
    runs, kernel_runs = [], []
    for r in range(args.reps):  # one seed per repetition; the peak is over all of them
        t2 = time.perf_counter()
        res = se.simulate(sc, paths=args.paths, seed=SEED + r, threads=args.threads, progress=False)
        runs.append(time.perf_counter() - t2)
        if res.timings.get("kernel_seconds"):
            kernel_runs.append(res.timings["kernel_seconds"])
        del res
        gc.collect()
    out = {"paths": args.paths, "licences": plan.licences, "periods": plan.periods, "load_and_plan_s": t1 - t0,
           "warm_up_s": compile_s, "simulate_runs_s": runs, "kernel_runs_s": kernel_runs,
           "rss_before_simulate_mb": rss_before,
           "peak_rss_mb": peak_rss_mb(), "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "threads": args.threads, "kernels_py_sha256": _kernels_sha()}
    print("RESULT " + json.dumps(out))


def _worker_compile(args) -> None:
    """Child process: import, build the plan and warm up (compile or load the cache); print JSON."""
    t0 = time.perf_counter()
    import simengine as se
    from simengine.engine import warm_up

    t1 = time.perf_counter()
    plan = compile_plan(se.load_scenario(args.scenario))
    t2 = time.perf_counter()
    c = warm_up(plan)
    t3 = time.perf_counter()
    print("RESULT " + json.dumps({"import_s": t1 - t0, "plan_s": t2 - t1, "warm_up_s": c, "total_in_process_s": t3 - t0}))


def run_child(argv: list[str], env: dict | None = None, timeout: float = 3600) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child {argv} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    out["process_wall_s"] = wall
    out["ru_maxrss_children_mb_so_far"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


# ------------------------------------------------------------------------------------- plans
def w1_variant(sc, overrides: dict):
    return sc.with_overrides(overrides)


def periods_variant(sc, periods: int):
    """W1 with ``periods`` quarters: term and expiry cliffs scaled to the new term."""
    expiry = sc.raw["pool"]["generate"].get("expiry_period")
    over = {"deal.term_years": periods / 4.0}
    if isinstance(expiry, list):
        over["pool.generate.expiry_period"] = [max(1, min(periods, round(e * periods / 40))) for e in expiry]
    return sc.with_overrides(over)


# --------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="simengine benchmarks (SPEC §8)")
    ap.add_argument("--quick", action="store_true", help="reduced sizes and repetitions (< 2 minutes)")
    ap.add_argument("--out", default=str(HERE / "results"), help="folder for the JSON and Markdown results")
    ap.add_argument("--tag", default="", help="appended to the result file names (e.g. profile)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip (w1,w3,w2,scaling,floor,compile,profile)")
    ap.add_argument("--worker-simulate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker-compile", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scenario", help=argparse.SUPPRESS)
    ap.add_argument("--paths", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--reps", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker_simulate:
        _worker_simulate(args)
        return 0
    if args.worker_compile:
        _worker_compile(args)
        return 0

    quick = args.quick
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    sections = {"w1", "w3", "w2", "scaling", "floor", "compile", "profile"}
    if skip - sections:
        ap.error(f"--skip {args.skip!r}: unknown section(s) {', '.join(sorted(skip - sections))}; "
                 f"expected a comma-separated subset of {', '.join(sorted(sections))}")
    started = time.perf_counter()
    now = _dt.datetime.now()
    report: dict = {"date": now.isoformat(timespec="seconds"), "mode": "quick" if quick else "full",
                    "command": " ".join([Path(sys.executable).name, *sys.argv]), "seed": SEED}
    report["machine"] = machine_info()
    report["machine"]["loadavg_at_start"] = loadavg()
    log(f"machine: {report['machine']['cpu_model']}, {report['machine']['logical_cpus']} cpus")

    # sizes: (full, quick)
    Q = lambda full, small: small if quick else full  # noqa: E731
    threads_all = max_threads()
    set_threads(threads_all)
    kernels = _build_kernels()
    sc1 = scenario(W1)
    plan1 = compile_plan(sc1)
    chunk = sc1.model.simulation.chunk_paths
    results: dict = {}
    report["results"] = results

    # ---------------------------------------------------------------- W1 (+ peer, agreement)
    if "w1" not in skip:
        with Section(report, "w1") as sec:
            paths = Q(100_000, 5_000)
            e = {"scenario": str(W1.relative_to(ROOT)), "paths": paths, "licences": plan1.licences,
                 "periods": plan1.periods, "threads": threads_all, "chunk_paths": chunk}
            e["kernel"] = time_kernel(plan1, paths, Q(5, 2), chunk)
            e["kernel"].update(throughput(e["kernel"], paths, plan1.licences, plan1.periods))
            e["engine_peak_rss_mb"] = round(peak_rss_mb(), 1)
            log(f"W1 kernel median {e['kernel']['median_s']:.2f}s")
            reset_peak_rss()
            e["end_to_end"], eng, e["summary_seconds"] = time_simulate(sc1, paths, Q(5, 2), threads_all)
            e["end_to_end"].update(throughput(e["end_to_end"], paths, plan1.licences, plan1.periods))
            e["end_to_end_peak_rss_mb"] = round(peak_rss_mb(), 1)
            log(f"W1 simulate median {e['end_to_end']['median_s']:.2f}s")
            # kernel at one thread: the per-core figure
            set_threads(1)
            e["kernel_1_thread"] = time_kernel(plan1, paths, Q(3, 1), chunk)
            e["kernel_1_thread"].update(throughput(e["kernel_1_thread"], paths, plan1.licences, plan1.periods))
            set_threads(threads_all)
            log(f"W1 kernel 1 thread median {e['kernel_1_thread']['median_s']:.2f}s")
            p_t, p_res = time_peer(plan1, paths, Q(5, 1), 0, tune=([512, 1024, 2048, 4096], Q(16384, 4096)))
            p_t.update(throughput(p_t, paths, plan1.licences, plan1.periods))
            e["numpy_peer"] = p_t
            e["ratio_peer_over_engine_kernel"] = p_t["median_s"] / e["kernel"]["median_s"]
            e["ratio_peer_over_engine_kernel_1_thread"] = p_t["median_s"] / e["kernel_1_thread"]["median_s"]
            e["ratio_peer_over_engine_end_to_end"] = p_t["median_s"] / e["end_to_end"]["median_s"]
            e["agreement"] = agreement(eng, p_res)
            e["engine_stats"] = eng
            log(f"W1 peer median {p_t['median_s']:.2f}s; max |z| {e['agreement']['max_abs_z']:.2f}")
            results["W1"] = e
            sec["workload"] = "W1"

    # ---------------------------------------------------------------- W3 Guangzhou
    if "w3" not in skip:
        with Section(report, "w3") as sec:
            sc3 = scenario(W3)
            plan3 = compile_plan(sc3)
            paths = Q(1_000_000, 50_000)
            chunk3 = sc3.model.simulation.chunk_paths
            e = {"scenario": str(W3.relative_to(ROOT)), "paths": paths, "licences": plan3.licences,
                 "periods": plan3.periods, "threads": threads_all, "chunk_paths": chunk3}
            e["kernel"] = time_kernel(plan3, paths, Q(5, 2), chunk3)
            e["kernel"].update(throughput(e["kernel"], paths, plan3.licences, plan3.periods))
            e["engine_peak_rss_mb"] = round(peak_rss_mb(), 1)
            reset_peak_rss()
            e["end_to_end"], eng, e["summary_seconds"] = time_simulate(sc3, paths, Q(5, 2), threads_all)
            e["end_to_end"].update(throughput(e["end_to_end"], paths, plan3.licences, plan3.periods))
            e["end_to_end_peak_rss_mb"] = round(peak_rss_mb(), 1)
            set_threads(1)
            e["kernel_1_thread"] = time_kernel(plan3, paths, Q(2, 1), chunk3)
            e["kernel_1_thread"].update(throughput(e["kernel_1_thread"], paths, plan3.licences, plan3.periods))
            set_threads(threads_all)
            p_t, p_res = time_peer(plan3, paths, Q(5, 1), 0, tune=([1024, 2048, 8192, 32768], Q(131072, 32768)))
            p_t.update(throughput(p_t, paths, plan3.licences, plan3.periods))
            e["numpy_peer"] = p_t
            e["ratio_peer_over_engine_kernel"] = p_t["median_s"] / e["kernel"]["median_s"]
            e["ratio_peer_over_engine_kernel_1_thread"] = p_t["median_s"] / e["kernel_1_thread"]["median_s"]
            e["ratio_peer_over_engine_end_to_end"] = p_t["median_s"] / e["end_to_end"]["median_s"]
            e["agreement"] = agreement(eng, p_res)
            e["engine_stats"] = eng
            log(f"W3 kernel {e['kernel']['median_s']:.2f}s, peer {p_t['median_s']:.2f}s, "
                f"max |z| {e['agreement']['max_abs_z']:.2f}")
            results["W3"] = e

    # ---------------------------------------------------------------- RNG floor
    if "floor" not in skip:
        with Section(report, "floor") as sec:
            floor = {}
            targets = [("W1", plan1, Q(100_000, 5_000))]
            if "W3" in results or "w3" not in skip:
                targets.append(("W3", compile_plan(scenario(W3)), Q(1_000_000, 50_000)))
            for name, plan, paths in targets:
                n_probe = Q(20_000, 2_000)
                coll = np.empty(n_probe)
                draws = np.empty(n_probe)
                kernels["pool_only"](plan.pool, np.int64(SEED), n_probe, plan.pool.factor_root.shape[0], coll, draws)
                normals, uniforms = rng_counts(plan, float(draws.mean()))
                f = {"paths": paths, "normals_per_path": int(normals.sum()), "uniforms_per_path": int(uniforms.sum()),
                     "normals_by_stream": normals.tolist(), "uniforms_by_stream": uniforms.tolist(),
                     "mean_beta_recoveries_per_path": float(draws.mean())}
                for th in sorted({threads_all, 1}, reverse=True):
                    set_threads(th)
                    t = time_floor(kernels["rng_floor"], normals, uniforms, paths, Q(5, 2))
                    t.update(throughput(t, paths, plan.licences, plan.periods))
                    f[f"threads_{th}"] = t
                set_threads(threads_all)
                r = results.get(name)
                if r:
                    f["engine_kernel_over_floor"] = r["kernel"]["median_s"] / f[f"threads_{threads_all}"]["median_s"]
                    f["engine_kernel_over_floor_1_thread"] = r["kernel_1_thread"]["median_s"] / f["threads_1"]["median_s"]
                    r["rng_floor"] = f
                floor[name] = f
                log(f"{name} floor {f[f'threads_{threads_all}']['median_s']:.3f}s")
            report["rng_floor"] = floor

    # ---------------------------------------------------------------- W2 in a subprocess
    if "w2" not in skip:
        with Section(report, "w2") as sec:
            sc2 = scenario(W2)
            plan2 = compile_plan(sc2)
            e = {"scenario": str(W2.relative_to(ROOT)), "licences": plan2.licences, "periods": plan2.periods,
                 "threads": threads_all, "chunk_paths": sc2.model.simulation.chunk_paths, "runs": []}
            for paths in Q([100_000, 1_000_000], [2_000, 10_000]):
                log(f"W2 {paths:,} paths in a subprocess ...")
                child = run_child(["--worker-simulate", "--scenario", str(W2), "--paths", str(paths),
                                   "--threads", str(threads_all), "--reps", str(Q(5, 1))])
                t = timing(child["simulate_runs_s"])
                child["simulate_s"] = t["median_s"]
                child["end_to_end"] = {**t, **throughput(t, paths, plan2.licences, plan2.periods)}
                if child["kernel_runs_s"]:
                    k = timing(child["kernel_runs_s"])
                    child["kernel"] = {**k, **throughput(k, paths, plan2.licences, plan2.periods)}
                e["runs"].append(child)
                log(f"W2 {paths:,}: {child['simulate_s']:.1f}s, peak RSS {child['peak_rss_mb']:.0f} MB")
            big = e["runs"][-1]
            e.update({"paths": big["paths"], "end_to_end": big["end_to_end"], "kernel": big.get("kernel"),
                      "peak_rss_mb": big["peak_rss_mb"],
                      "peak_rss_ratio_1e6_over_1e5": big["peak_rss_mb"] / e["runs"][0]["peak_rss_mb"]})
            results["W2"] = e

    # ---------------------------------------------------------------- scaling
    if "scaling" not in skip:
        with Section(report, "scaling") as sec:
            scaling = {"paths": [], "licences": [], "periods": [], "threads": []}
            n_fixed = Q(20_000, 2_000)
            for paths in Q([10_000, 30_000, 100_000, 300_000, 1_000_000], [1_000, 10_000]):
                t = time_kernel(plan1, paths, Q(5, 1), chunk)
                scaling["paths"].append({"paths": paths, "licences": plan1.licences, "periods": plan1.periods,
                                         **t, **throughput(t, paths, plan1.licences, plan1.periods)})
                log(f"scaling paths {paths}: {t['median_s']:.2f}s")
            for lic in Q([50, 150, 500, 1500, 5000], [50, 500]):
                sc = sc1.with_overrides({"pool.generate.count": lic})
                p = compile_plan(sc)
                t = time_kernel(p, n_fixed, Q(5, 1), chunk)
                scaling["licences"].append({"paths": n_fixed, "licences": lic, "periods": p.periods,
                                            "royalty_groups": len(p.pool.group_running), **t,
                                            **throughput(t, n_fixed, lic, p.periods)})
                log(f"scaling licences {lic}: {t['median_s']:.2f}s")
            for T in Q([4, 12, 40, 120], [4, 40]):
                sc = periods_variant(sc1, T)
                p = compile_plan(sc)
                t = time_kernel(p, n_fixed, Q(5, 1), chunk)
                scaling["periods"].append({"paths": n_fixed, "licences": p.licences, "periods": T, **t,
                                           **throughput(t, n_fixed, p.licences, T)})
                log(f"scaling periods {T}: {t['median_s']:.2f}s")
            n_thr = Q(100_000, 5_000)
            for th in sorted({1, 2, threads_all}):
                if th > threads_all:
                    continue
                set_threads(th)
                t = time_kernel(plan1, n_thr, Q(5, 1), chunk)
                scaling["threads"].append({"threads": th, "paths": n_thr, **t,
                                           **throughput(t, n_thr, plan1.licences, plan1.periods)})
                log(f"scaling threads {th}: {t['median_s']:.2f}s")
            set_threads(threads_all)
            base = scaling["threads"][0]["median_s"]
            for row in scaling["threads"]:
                row["speedup"] = base / row["median_s"]
                row["efficiency"] = row["speedup"] / row["threads"]
            try:
                import numba

                report["machine"]["numba_threading_layer"] = numba.threading_layer()
            except Exception as exc:  # noqa: BLE001
                report["machine"]["numba_threading_layer"] = f"unknown ({exc})"
            report["scaling"] = scaling

    # ---------------------------------------------------------------- profile of the W1 kernel
    if "profile" not in skip:
        with Section(report, "profile") as sec:
            prof = {"paths": Q(10_000, 1_000), "threads": 1, "variants": [], "primitives_ns": {},
                    "statistic": "minimum over repetitions, variants timed round-robin"}
            set_threads(1)
            n = prof["paths"]
            reps = Q(7, 1)
            off = {"risk.demand.enabled": False, "risk.obsolescence.enabled": False, "risk.legal.enabled": False,
                   "risk.default.recovery_model": "fixed", "pool.generate.royalty_type": "fixed"}
            variants = [
                ("full W1", {}),
                ("demand off", {"risk.demand.enabled": False}),
                ("obsolescence off", {"risk.obsolescence.enabled": False}),
                ("legal (invalidation, expiry) off", {"risk.legal.enabled": False}),
                ("fixed recovery (no beta draws)", {"risk.default.recovery_model": "fixed"}),
                ("all royalties fixed (1 royalty group)", {"pool.generate.royalty_type": "fixed"}),
                ("licensee default off", {"risk.default.enabled": False}),
                ("copula only (all of the above off but default)", off),
            ]
            # all variants compiled first, then timed round-robin (one repetition of each in turn),
            # so that a change of machine load hits every variant alike; the minimum is the headline
            built = []
            for label, over in variants:
                p = compile_plan(w1_variant(sc1, over) if over else sc1)
                time_kernel(p, 64, 1, chunk)
                built.append((label, over, p))
            coll = np.empty(n)
            draws = np.empty(n)
            kernels["pool_only"](plan1.pool, np.int64(SEED), 64, plan1.pool.factor_root.shape[0], coll[:64], draws[:64])
            k_runs = {label: [] for label, _, _ in built}
            p_runs = {label: [] for label, _, _ in built}
            for _ in range(reps):
                for label, over, p in built:
                    k_runs[label].append(time_kernel(p, n, 1, chunk)["median_s"])
                    t0 = time.perf_counter()
                    kernels["pool_only"](p.pool, np.int64(SEED), n, p.pool.factor_root.shape[0], coll, draws)
                    p_runs[label].append(time.perf_counter() - t0)
            for label, over, p in built:
                t, tp = timing(k_runs[label]), timing(p_runs[label])
                prof["variants"].append({"variant": label, "overrides": over,
                                         "royalty_groups": len(p.pool.group_running),
                                         "us_per_path": t["min_s"] / n * 1e6,
                                         "us_per_path_median": t["median_s"] / n * 1e6,
                                         "pool_only_us_per_path": tp["min_s"] / n * 1e6,
                                         "pool_only_us_per_path_median": tp["median_s"] / n * 1e6,
                                         "kernel": t, "pool_only": tp})
                log(f"profile {label}: {t['min_s'] / n * 1e6:.1f} us/path (pool {tp['min_s'] / n * 1e6:.1f})")
            full = prof["variants"][0]["us_per_path"]
            for v in prof["variants"]:
                v["saving_us_per_path"] = full - v["us_per_path"]
                v["saving_fraction"] = (full - v["us_per_path"]) / full
            prof["waterfall_us_per_path"] = full - prof["variants"][0]["pool_only_us_per_path"]
            # W3: kernel and pool alone
            p3 = compile_plan(scenario(W3))
            n3 = Q(100_000, 10_000)
            t = time_kernel(p3, n3, reps, 50_000)
            t["median_s"] = t["min_s"]  # headline: minimum, as for W1
            coll = np.empty(n3)
            draws = np.empty(n3)
            runs = []
            for _ in range(reps + 1):
                t0 = time.perf_counter()
                kernels["pool_only"](p3.pool, np.int64(SEED), n3, p3.pool.factor_root.shape[0], coll, draws)
                runs.append(time.perf_counter() - t0)
            tp = timing(runs[1:])
            tp["median_s"] = tp["min_s"]
            prof["W3"] = {"paths": n3, "us_per_path": t["median_s"] / n3 * 1e6,
                          "pool_only_us_per_path": tp["median_s"] / n3 * 1e6,
                          "waterfall_us_per_path": (t["median_s"] - tp["median_s"]) / n3 * 1e6}
            # primitives
            m = Q(5_000_000, 500_000)
            prims = {"uniform_at": (kernels["prim_uniform"], ()), "normal_at": (kernels["prim_normal"], ()),
                     "normal_at + erfc + log1p (licensee latent -> exposure)": (kernels["prim_licensee_transform"], ()),
                     "uniform_at + log1p + ceil (invalidation period)": (kernels["prim_invalidation"], ()),
                     "uniform_at + exp": (kernels["prim_exp"], ())}
            gamma = _gamma_kernel()
            prims["gamma_at(shape 3)"] = (gamma, (3.0,))
            prims["gamma_at(shape 12)"] = (gamma, (12.0,))
            for name, (fn, extra) in prims.items():
                fn(10, *extra)
                k = m // 10 if name.startswith("gamma") else m
                t0 = time.perf_counter()
                fn(k, *extra)
                prof["primitives_ns"][name] = (time.perf_counter() - t0) / k * 1e9
            set_threads(threads_all)
            pp = plan1.pool
            prof["counts_per_path_W1"] = {
                "licensees": int(len(pp.licensee_hazard_annual)), "licences": int(len(pp.licence_royalty)),
                "periods": int(pp.periods), "industries": int(len(pp.demand_drift_annual)),
                "royalty_groups": int(len(pp.group_running)), "running_groups": int(pp.group_running.sum()),
                "group_periods_in_collections_loop": int(len(pp.group_running)) * int(pp.periods),
                "exp_calls_in_demand": (int(pp.industry_running.sum()) + int((pp.demand_elasticity != 0).sum()))
                                       * int(pp.periods),
            }
            report["profile"] = prof

    # ---------------------------------------------------------------- compile: cold and cached
    if "compile" not in skip:
        with Section(report, "compile") as sec:
            comp = {}
            with tempfile.TemporaryDirectory(prefix="simengine-bench-numba-") as cache:
                if quick:  # no cold compile: the package's own cache, filled by the sections above
                    env = dict(os.environ)
                    comp["cold"] = None
                    comp["cache"] = "package default"
                else:
                    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
                    comp["cache"] = "fresh NUMBA_CACHE_DIR"
                    log("cold compile (empty NUMBA_CACHE_DIR) ...")
                    comp["cold"] = run_child(["--worker-compile", "--scenario", str(W3)], env=env)
                    log(f"cold compile {comp['cold']['warm_up_s']:.1f}s")
                comp["cached"] = run_child(["--worker-compile", "--scenario", str(W3)], env=env)
                with tempfile.TemporaryDirectory(prefix="simengine-bench-run-") as out:
                    cli = [sys.executable, "-m", "simengine", "run", str(W3), "--paths", "10000", "--out",
                           str(Path(out) / "run"), "--no-plot", "--quiet"]
                    walls = []
                    for _ in range(2):
                        t0 = time.perf_counter()
                        proc = subprocess.run(cli, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
                        walls.append(time.perf_counter() - t0)
                        if proc.returncode != 0:
                            raise RuntimeError(f"simengine run failed: {proc.stderr[-2000:]}")
                comp["cli_run_process_s"] = {"first_invocation": walls[0], "second_invocation": walls[1],
                                             "command": "simengine run scenarios/guangzhou_patent_2019.toml "
                                                        "--paths 10000 --no-plot --quiet"}
                log(f"cached start: simengine run {walls[1]:.2f}s")
            report["compile"] = comp

    report["machine"]["loadavg_at_end"] = loadavg()
    report["machine"]["kernels_py_sha256_at_end"] = _kernels_sha()
    report["machine"]["kernels_py_changed_during_run"] = _kernels_sha() != report["machine"]["kernels_py_sha256"]
    report["total_wall_s"] = time.perf_counter() - started
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    host = re.sub(r"[^A-Za-z0-9._-]+", "_", socket.gethostname())[:40] or "host"
    stem = f"{now:%Y-%m-%d}-{host}" + ("-quick" if quick else "") + (f"-{args.tag}" if args.tag else "")
    for suffix, text in ((".json", json.dumps(report, indent=1, default=_json_default)), (".md", markdown(report))):
        tmp = out_dir / f".{stem}{suffix}.partial"
        tmp.write_text(text)
        tmp.replace(out_dir / f"{stem}{suffix}")
    log(f"wrote {out_dir / stem}.json and .md in {report['total_wall_s']:.0f}s")
    return 0


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


# ----------------------------------------------------------------------------------- markdown
def _f(x, nd=2):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:,.{nd}f}"


def _si(x):
    if x is None:
        return "–"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f} {unit}"
    return f"{x:.0f}"


def _t(t):
    if not t:
        return "–"
    if t.get("reps", 1) > 1:
        return f"{t['median_s']:.3f} [{t['min_s']:.3f}–{t['max_s']:.3f}] ×{t['reps']}"
    return f"{t['median_s']:.3f} ×1"


def _cost_fit(rows: list[dict], key: str) -> str:
    """Least-squares line of wall µs/path against licences or periods, and what it says about the cost."""
    x = np.array([row[key] for row in rows], float)
    y = np.array([row["median_s"] / row["paths"] * 1e6 for row in rows])
    slope, intercept = np.polyfit(x, y, 1)
    r2 = 1.0 - np.sum((y - (intercept + slope * x)) ** 2) / np.sum((y - y.mean()) ** 2)
    if key == "licences":
        return (f"Fit (wall µs/path, all threads): {intercept:.2f} + {slope * 1e3:.1f} ns × licences "
                f"(R² {r2:.3f}, {rows[0]['periods']} periods): linear in licences.")
    per = slope * 1e3 / rows[0]["licences"]
    return (f"Fit (wall µs/path, all threads): {intercept:.2f} + {slope * 1e3:.0f} ns × periods (R² {r2:.3f}, "
            f"{rows[0]['licences']} licences): an extra period costs {per:.2f} ns per licence, less than one "
            "random draw (see the primitives below), so nothing runs per licence and period; the period term "
            "is the industries' and royalty groups' per-period work.")


def markdown(r: dict) -> str:
    m = r["machine"]
    L = [f"# simengine benchmarks — {r['date']} ({r['mode']})", "",
         f"Machine: {m['cpu_model']}, {m['logical_cpus']} logical CPUs ({m['cpus_available']} available), "
         f"{m['memory_gb']} GB; Python {m['python']}, NumPy {m['numpy']}, SciPy {m['scipy']}, numba {m['numba']} "
         f"(threading layer {m.get('numba_threading_layer', m['numba_threading_layer_config'])}, "
         f"{m['numba_num_threads']} threads); simengine {m['simengine']} at {str(m['git_commit'])[:10]}"
         + (" (simengine/ has uncommitted changes)" if m.get("git_dirty_simengine") else "") + ".",
         f"Load average at start {m.get('loadavg_at_start')}, at end {m.get('loadavg_at_end')} "
         "(anything above 0 means other processes shared the CPUs). Total run {:.0f} s.".format(r.get("total_wall_s", 0))
         + ("\n\n**simengine/kernels.py changed while this run was in progress; subprocess sections may have "
            "run the newer code.**" if m.get("kernels_py_changed_during_run") else ""),
         "", "Times in seconds: median [min–max] ×repetitions. Kernel = `run_chunk` over chunks; end to end = "
         "`simengine.simulate` (kernel + Parquet spooling). Throughput from the median.", ""]
    res = r.get("results", {})
    L += ["## Reference workloads", "",
          "| workload | licences × periods | paths | threads | kernel (s) | end to end (s) | paths/s (kernel) | "
          "licence-periods/s (kernel) | peak RSS (MB) | NumPy peer (s) | peer / engine | engine / RNG floor |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("W1", "W2", "W3"):
        e = res.get(name)
        if not e:
            continue
        k = e.get("kernel") or {}
        peer = e.get("numpy_peer")
        floor = e.get("rng_floor", {})
        rss = e.get("engine_peak_rss_mb", e.get("peak_rss_mb"))
        L.append(f"| {name} | {e['licences']} × {e['periods']} | {e['paths']:,} | {e['threads']} | {_t(k)} | "
                 f"{_t(e.get('end_to_end'))} | {_si(k.get('paths_per_s'))} | {_si(k.get('licence_periods_per_s'))} | "
                 f"{_f(rss, 0)} | {_t(peer)} | "
                 + (f"{e['ratio_peer_over_engine_kernel']:.1f}×" if peer else "–")
                 + " | " + (f"{floor['engine_kernel_over_floor']:.1f}×" if floor.get("engine_kernel_over_floor") else "–")
                 + " |")
    for name in ("W1", "W3"):
        e = res.get(name)
        if e and e.get("kernel_1_thread"):
            L.append(f"\n{name} kernel on 1 thread: {_t(e['kernel_1_thread'])} s "
                     f"({_si(e['kernel_1_thread']['licence_periods_per_s'])} licence-periods/s). "
                     f"NumPy peer on {e['numpy_peer'].get('workers', 1)} worker processes (started in "
                     f"{e['numpy_peer'].get('worker_startup_s', 0):.1f} s, before the clock), chunk "
                     f"{e['numpy_peer']['chunk_paths']} paths (tuned: {e['numpy_peer']['chunk_tuning_us_per_path']} "
                     f"µs/path), peak RSS of parent + workers {_f(e['numpy_peer']['peak_rss_mb'], 0)} MB. "
                     "Summary statistics from the spool: "
                     f"{e['summary_seconds']:.2f} s.")
    if "W2" in res:
        w2 = res["W2"]
        L += ["", "W2 runs (each path count in its own process, repetitions with their own seeds; peak RSS = "
              "that process's VmHWM over all of them):", "",
              "| paths | simulate (s) | kernel (s) | licence-periods/s | RSS before simulate (MB) | peak RSS (MB) |",
              "|---|---|---|---|---|---|"]
        for c in w2["runs"]:
            L.append(f"| {c['paths']:,} | {_t(c['end_to_end'])} | {_t(c.get('kernel'))} | "
                     f"{_si(c['end_to_end']['licence_periods_per_s'])} | {c['rss_before_simulate_mb']:.0f} | "
                     f"{c['peak_rss_mb']:.0f} |")
    for name in ("W1", "W3"):
        e = res.get(name)
        if not e or "agreement" not in e:
            continue
        a = e["agreement"]
        runs_e = e["end_to_end"]["reps"]
        runs_p = e["numpy_peer"]["reps"]
        L += ["", f"## Agreement engine vs NumPy peer, {name} (engine {runs_e} × {e['paths']:,} paths, peer "
              f"{runs_p} × {e['paths']:,} paths, independent seeds)",
              "", f"max |z| = {a['max_abs_z']:.2f} over {a['n']} statistics; |z| > 3: {a['n_abs_z_over_3']}.", "",
              "| basis | tranche | metric | engine | ± se | peer | ± se | z |", "|---|---|---|---|---|---|---|---|"]
        for row in a["rows"]:
            L.append(f"| {row['basis']} | {row['tranche']} | {row['metric']} | {row['engine']:.6g} | "
                     f"{row['engine_se']:.2g} | {row['peer']:.6g} | {row['peer_se']:.2g} | {row['z']:+.2f} |")
    if "rng_floor" in r:
        L += ["", "## Random-number floor", "",
              "A numba kernel that only draws, with `simengine.rng`, the normals and uniforms a path of the model needs.", "",
              "| workload | normals/path | uniforms/path | paths | threads | floor (s) | engine kernel / floor |",
              "|---|---|---|---|---|---|---|"]
        for name, f in r["rng_floor"].items():
            for key, t in f.items():
                if key.startswith("threads_"):
                    th = int(key.split("_")[1])
                    ratio = (f.get("engine_kernel_over_floor_1_thread") if th == 1 else f.get("engine_kernel_over_floor"))
                    L.append(f"| {name} | {f['normals_per_path']} | {f['uniforms_per_path']} | {f['paths']:,} | {th} | "
                             f"{_t(t)} | {_f(ratio, 1)}× |")
    if "scaling" in r:
        s = r["scaling"]
        L += ["", "## Scaling (W1, kernel only)", ""]
        for key, label in (("paths", "paths"), ("licences", "licences"), ("periods", "periods")):
            L += [f"| {label} | time (s) | paths/s | licence-periods/s |", "|---|---|---|---|"]
            for row in s[key]:
                L.append(f"| {row[key]:,} | {_t(row)} | {_si(row['paths_per_s'])} | {_si(row['licence_periods_per_s'])} |")
            if key in ("licences", "periods") and len(s[key]) >= 3:
                L += ["", _cost_fit(s[key], key)]
            L.append("")
        L += ["| threads | time (s) | licence-periods/s | speed-up | efficiency |", "|---|---|---|---|---|"]
        for row in s["threads"]:
            L.append(f"| {row['threads']} | {_t(row)} | {_si(row['licence_periods_per_s'])} | {row['speedup']:.2f}× | "
                     f"{row['efficiency']:.0%} |")
    if "profile" in r:
        p = r["profile"]
        L += ["", f"## Where the W1 kernel time goes (1 thread, {p['paths']:,} paths, minimum of "
              f"{p['variants'][0]['kernel']['reps']} round-robin repetitions)", "",
              "| variant | royalty groups | µs/path | of which pool_path | saving vs full |", "|---|---|---|---|---|"]
        for v in p["variants"]:
            L.append(f"| {v['variant']} | {v['royalty_groups']} | {v['us_per_path']:.1f} | {v['pool_only_us_per_path']:.1f} | "
                     f"{v['saving_us_per_path']:+.1f} ({v['saving_fraction']:.0%}) |")
        L += ["", f"Waterfall (both bases) ≈ {p['waterfall_us_per_path']:.1f} µs/path (full minus pool only)."]
        if p.get("W3"):
            w = p["W3"]
            L += ["", f"W3 on 1 thread ({w['paths']:,} paths): {w['us_per_path']:.2f} µs/path, of which pool_path "
                  f"{w['pool_only_us_per_path']:.2f} and the waterfall (both bases) {w['waterfall_us_per_path']:.2f}."]
        L += ["",
              "| primitive | ns/call (1 thread) |", "|---|---|"]
        for name, ns in p["primitives_ns"].items():
            L.append(f"| {name} | {ns:.1f} |")
        L += ["", f"Counts per W1 path: {p['counts_per_path_W1']}."]
    if "compile" in r:
        c = r["compile"]
        L += ["", "## Compile and start-up", ""]
        if c.get("cold"):
            L.append(f"- cold (empty NUMBA_CACHE_DIR): import {c['cold']['import_s']:.2f} s, compile "
                     f"{c['cold']['warm_up_s']:.1f} s, whole process {c['cold']['process_wall_s']:.1f} s")
        L.append(f"- cached: import {c['cached']['import_s']:.2f} s, load kernels {c['cached']['warm_up_s']:.2f} s, "
                 f"whole process {c['cached']['process_wall_s']:.2f} s")
        cli = c["cli_run_process_s"]
        L.append(f"- cache used: {c.get('cache')}")
        L.append(f"- `{cli['command']}` as a whole process, cache filled: first {cli['first_invocation']:.2f} s, "
                 f"second {cli['second_invocation']:.2f} s")
    errors = {k: v["error"] for k, v in r.get("sections", {}).items() if v.get("error")}
    if errors:
        L += ["", "## Errors", ""] + [f"- {k}: `{v}`" for k, v in errors.items()]
    L += ["", "## Sections", "", "| section | wall (s) | peak RSS (MB) | load start → end |", "|---|---|---|---|"]
    for k, v in r.get("sections", {}).items():
        L.append(f"| {k} | {v.get('section_wall_s', 0):.1f} | {_f(v.get('peak_rss_mb'), 0)} | "
                 f"{v.get('loadavg_start')} → {v.get('loadavg_end')} |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
