"""Timings of the engine and its NumPy peer, and the statistics that show they compute the same model.

- :func:`time_kernel`: ``simengine.engine.run_chunk`` over chunks, warm;
- :func:`time_simulate`: ``simengine.simulate`` end to end (kernel + Parquet spool), with the
  per-tranche EL and PD of its per-path tables (:func:`engine_stats`);
- :func:`time_peer`: ``numpy_peer.simulate`` on one worker process per core, chunk size tuned;
- :func:`pool_stats` and :func:`agreement`: statistics pooled over independent repetitions, and
  z-scores of engine against peer.
"""

from __future__ import annotations

import gc
import math
import time

import numpy as np
from harness import SEED, max_threads, peak_rss_mb, reset_peak_rss, timing


# ------------------------------------------------------------------------------------ engine
def time_kernel(plan, paths: int, reps: int, chunk: int, seed: int = SEED) -> dict:
    """Wall time of ``run_chunk`` over chunks of ``chunk`` paths (kernel + output allocation only),
    after one untimed repetition: in a fresh process the first chunks' output arrays are new
    memory, whose page faults on this VM cost up to 0.2 s per W1 repetition on top of a 1.4 s
    kernel (the W1 section used to time that, the scaling section later in the same process did
    not: 1.62 s against 1.41 s in ``2026-11-27-vm-session6.md``).

    Parameters
    ----------
    plan : simengine.plan.Plan
    paths, reps, chunk : int
        Paths per repetition, repetitions (all with ``seed``: the same work), paths per call.
    seed : int

    Returns
    -------
    dict
        A :func:`harness.timing` record.
    """
    from simengine.engine import run_chunk, warm_up

    warm_up(plan)
    for first in range(0, paths, chunk):  # untimed: see above
        run_chunk(plan, seed, first, min(chunk, paths - first))
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for first in range(0, paths, chunk):
            run_chunk(plan, seed, first, min(chunk, paths - first))
        runs.append(time.perf_counter() - t0)
    return timing(runs)


def time_simulate(sc, paths: int, reps: int, threads: int, seed: int = SEED) -> tuple[dict, dict, float]:
    """Wall time of ``simengine.simulate`` (kernel + Parquet spooling), one seed per repetition.

    Returns
    -------
    timing : dict
        A :func:`harness.timing` record, plus ``kernel_seconds_reported_by_simulate`` and ``seeds``.
    stats : dict
        Per-tranche EL / PD and pool means of all repetitions pooled (:func:`pool_stats`).
    summary_seconds : float
        Time of ``result.summary`` on the last repetition.
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
    per-path tables (``tranche_losses``, ``pool_paths``); weights are all one (plain Monte Carlo).

    Returns
    -------
    dict
        ``tranche_names``, ``paths``; per basis (``enhanced``, ``standalone``) lists ``el``,
        ``el_se``, ``pd``, ``pd_se`` over the tranches; ``trigger_names``; ``pool``: ``{name: {"mean":
        [m], "se": [s]}}``, and ``trigger_fired`` with one mean and se per trigger (enhanced basis).
    """
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
    # each trigger's probability of firing (enhanced basis): where dscr, icr and trap fractions show
    names_trig = list(res.plan.trigger_names)
    fired = [_mean_se(pp[f"trigger_{t}"].to_numpy(float)) for t in names_trig if f"trigger_{t}" in pp]
    if names_trig and len(fired) == len(names_trig):
        pool["trigger_fired"] = {"mean": [m for m, _ in fired], "se": [s for _, s in fired]}
    out["trigger_names"] = names_trig
    out["pool"] = pool
    return out


def pool_stats(stats: list[dict]) -> dict:
    """Pool statistics of independent equal-size runs: mean of means, se = sqrt(sum se^2) / runs."""
    if len(stats) == 1:
        return stats[0]
    r = len(stats)
    out = {"tranche_names": stats[0]["tranche_names"], "trigger_names": stats[0].get("trigger_names", []), "runs": r}
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
    """z-scores (engine - peer) / sqrt(se_e^2 + se_p^2) for EL and PD per tranche and basis, and
    for the pool means both report (each trigger's probability of firing too, its name in ``tranche``).

    Returns
    -------
    dict
        ``rows`` (one per statistic), ``max_abs_z``, ``n_abs_z_over_3``, ``n``.
    """
    rows = []
    for basis in ("enhanced", "standalone"):
        for k, name in enumerate(engine["tranche_names"]):
            for m in ("el", "pd"):
                e, es = engine[basis][m][k], engine[basis][m + "_se"][k]
                p, ps = peer[basis][m][k], peer[basis][m + "_se"][k]
                se = math.sqrt(es * es + ps * ps)
                rows.append({"basis": basis, "tranche": name, "metric": m, "engine": e, "engine_se": es,
                             "peer": p, "peer_se": ps, "z": (e - p) / se if se > 0 else (0.0 if e == p else math.inf)})
    pool_rows = [(m, "-", 0) for m in ("defaults", "obsolete", "invalidated", "collections")]
    pool_rows += [("trigger_fired", name, c) for c, name in enumerate(engine.get("trigger_names", []))]
    for m, label, c in pool_rows:
        if m in engine.get("pool", {}) and m in peer.get("pool", {}):
            e, es = engine["pool"][m]["mean"][c], engine["pool"][m]["se"][c]
            p, ps = peer["pool"][m]["mean"][c], peer["pool"][m]["se"][c]
            se = math.sqrt(es * es + ps * ps)
            rows.append({"basis": "pool", "tranche": label, "metric": m, "engine": e, "engine_se": es, "peer": p,
                         "peer_se": ps, "z": (e - p) / se if se > 0 else (0.0 if e == p else math.inf)})
    zs = [abs(r["z"]) for r in rows if math.isfinite(r["z"])]
    return {"rows": rows, "max_abs_z": max(zs) if zs else None,
            "n_abs_z_over_3": sum(z > 3 for z in zs), "n": len(zs)}


# -------------------------------------------------------------------------------------- peer
def tune_peer_chunk(plan, workers, candidates, paths_per_try: int) -> tuple[int, dict]:
    """Pick the peer's chunk size as a competent user would: try a few, keep the fastest.

    Returns
    -------
    (int, dict)
        The fastest chunk size, and µs/path of every candidate (keys as strings).
    """
    import numpy_peer

    tried = {}
    for c in candidates:
        n = max(paths_per_try, 2 * c * workers.workers)
        t0 = time.perf_counter()
        numpy_peer.simulate(plan, n, 12345, c, workers)
        tried[c] = (time.perf_counter() - t0) / n * 1e6
    best = min(tried, key=tried.get)
    return best, {str(k): round(v, 2) for k, v in tried.items()}


def time_peer(plan, paths: int, reps: int, chunk: int, seed: int = SEED + 1000, tune=None) -> tuple[dict, dict]:
    """The NumPy peer on every core: worker processes started (and warmed) before the clock, the
    chunk size tuned, then one seed per repetition; statistics pooled over repetitions.

    Parameters
    ----------
    plan : simengine.plan.Plan
    paths, reps : int
    chunk : int
        Paths per chunk when ``tune`` is None.
    seed : int
        Seed of the first repetition (repetition r uses ``seed + r``).
    tune : (candidates, paths_per_try), optional
        Arguments of :func:`tune_peer_chunk`.

    Returns
    -------
    (dict, dict)
        A :func:`harness.timing` record with ``seeds``, ``workers``, ``chunk_paths``,
        ``chunk_tuning_us_per_path``, ``peak_rss_mb`` (parent plus workers) and
        ``worker_startup_s``; and the pooled statistics (as :func:`engine_stats`).
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
