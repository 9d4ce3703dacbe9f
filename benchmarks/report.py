"""The Markdown digest of a benchmark result: ``markdown(report)`` renders the dict that
``benchmarks/run.py`` writes as JSON.

Run on its own to re-render a digest from a result file (after a change of this layout, say):
``python benchmarks/report.py benchmarks/results/<stem>.json`` writes ``<stem>.md`` beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

WORKLOAD_NAMES = ("W1", "W2", "W3")


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
    """The Markdown digest of a benchmark result.

    Parameters
    ----------
    r : dict
        A result as ``benchmarks/run.py`` writes it to JSON (or reads it back); sections that did
        not run are left out of the digest.

    Returns
    -------
    str
        The digest, ending with a newline.
    """
    m = r["machine"]
    L = [f"# simengine benchmarks — {r['date']} ({r['mode']})", "",
         f"Machine: {m['cpu_model']}, {m['logical_cpus']} logical CPUs ({m['cpus_available']} available), "
         f"{m['memory_gb']} GB; Python {m['python']}, NumPy {m['numpy']}, SciPy {m['scipy']}, numba {m['numba']} "
         f"(threading layer {m.get('numba_threading_layer', m['numba_threading_layer_config'])}, "
         f"{m['numba_num_threads']} threads); simengine {m['simengine']} at {str(m['git_commit'])[:10]}"
         + (" (simengine/ has uncommitted changes)" if m.get("git_dirty_simengine") else "") + ".",
         f"Load average at start {m.get('loadavg_at_start')}, at end {m.get('loadavg_at_end')} "
         "(anything above 0 means other processes shared the CPUs). "
         f"Total run {r.get('total_wall_s', 0):.0f} s."
         + ("\n\n**The kernels' sources changed while this run was in progress; subprocess sections may have "
            "run the newer code.**" if m.get("kernels_py_changed_during_run") else ""),
         "", "Times in seconds: median [min–max] ×repetitions. Kernel = `run_chunk` over chunks; end to end = "
         "`simengine.simulate` (kernel + Parquet spooling). Throughput from the median.", ""]
    res = r.get("results", {})
    L += ["## Reference workloads", "",
          "| workload | licences × periods | paths | threads | kernel (s) | end to end (s) | paths/s (kernel) | "
          "licence-periods/s (kernel) | peak RSS (MB) | NumPy peer (s) | peer / engine | engine / RNG floor |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in WORKLOAD_NAMES:
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
                 + " | "
                 + (f"{floor['engine_kernel_over_floor']:.1f}×" if floor.get("engine_kernel_over_floor") else "–")
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
              "A numba kernel that only draws, with `simengine.rng`, the normals and uniforms a path of the model "
              "needs.", "",
              "| workload | normals/path | uniforms/path | paths | threads | floor (s) | engine kernel / floor |",
              "|---|---|---|---|---|---|---|"]
        for name, f in r["rng_floor"].items():
            for key, t in f.items():
                if key.startswith("threads_"):
                    th = int(key.split("_")[1])
                    ratio = f.get("engine_kernel_over_floor_1_thread" if th == 1 else "engine_kernel_over_floor")
                    L.append(f"| {name} | {f['normals_per_path']} | {f['uniforms_per_path']} | {f['paths']:,} | {th} | "
                             f"{_t(t)} | {_f(ratio, 1)}× |")
        libm = {name: f["libm_floor"] for name, f in r["rng_floor"].items() if "libm_floor" in f}
        if libm:
            L += ["", "Scalar-math floor: the RNG floor's draws plus the C-library calls the model asks of every "
                  "path, and nothing else (`probes.libm_counts`): exp of demand and of its hazard multiplier, two "
                  "gamma variates per beta recovery, erfc and log per drawn technology, erfc and log1p per "
                  "provider, log1p per invalidation in the deal. A scalar kernel that calls glibc's functions "
                  "(and so keeps their bits) cannot run faster than this.", "",
                  "| workload | exp/path | gamma/path | paths | threads | libm floor (s) | libm floor / RNG floor | "
                  "engine kernel / libm floor |", "|---|---|---|---|---|---|---|---|"]
            for name, m in libm.items():
                f = r["rng_floor"][name]
                for key, t in m.items():
                    if key.startswith("threads_"):
                        th = int(key.split("_")[1])
                        kernel = (m.get("engine_kernel_over_libm_floor") if th == max(
                            int(k.split("_")[1]) for k in m if k.startswith("threads_")) else None)
                        L.append(f"| {name} | {m['exp']} | {m['gamma']} | {f['paths']:,} | {th} | {_t(t)} | "
                                 f"{_f(m[f'over_rng_floor_threads_{th}'], 1)}× | "
                                 f"{(_f(kernel, 1) + '×') if kernel else '–'} |")
    if "scaling" in r:
        s = r["scaling"]
        L += ["", "## Scaling (W1, kernel only)", ""]
        for key, label in (("paths", "paths"), ("licences", "licences"), ("periods", "periods")):
            L += [f"| {label} | time (s) | paths/s | licence-periods/s |", "|---|---|---|---|"]
            for row in s[key]:
                L.append(f"| {row[key]:,} | {_t(row)} | {_si(row['paths_per_s'])} | "
                         f"{_si(row['licence_periods_per_s'])} |")
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
              "| variant | royalty groups | µs/path | of which the pool | saving vs full |", "|---|---|---|---|---|"]
        for v in p["variants"]:
            L.append(f"| {v['variant']} | {v['royalty_groups']} | {v['us_per_path']:.1f} | "
                     f"{v['pool_only_us_per_path']:.1f} | "
                     f"{v['saving_us_per_path']:+.1f} ({v['saving_fraction']:.0%}) |")
        L += ["", f"Waterfall (both bases) ≈ {p['waterfall_us_per_path']:.1f} µs/path (full minus pool only)."]
        if p.get("copulas"):
            L += ["", "| W1 copula (1 thread) | µs/path | over Gaussian |", "|---|---|---|"]
            for c in p["copulas"]:
                L.append(f"| {c['copula']} | {c['us_per_path']:.1f} | {c['over_gaussian']:.2f}× |")
        if p.get("W3"):
            w = p["W3"]
            L += ["", f"W3 on 1 thread ({w['paths']:,} paths): {w['us_per_path']:.2f} µs/path, of which the pool "
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
    if "wholerun" in r:
        w = r["wholerun"]
        st = w["interpreter_start_s"]
        L += ["", "## Whole runs (issue 17)", "",
              f"Interpreter start: `simengine --help` {st['help']['wall_s']:.2f} s, importing the run's modules "
              f"{st['imports']['wall_s']:.2f} s.", "",
              "| workload | paths | process wall (s) | CPU (s) | kernel (s) | (wall - start) / kernel | "
              "after / simulation |", "|---|---|---|---|---|---|---|"]
        for name, x in w["workloads"].items():
            b = x["best"]
            L.append(f"| {name} | {x['paths']:,} | {b['process_wall_s']:.2f} | {b['process_cpu_s']:.2f} | "
                     f"{b['kernel_s']:.2f} | {b['target_ratio']:.2f} | {b['after_simulation_over_simulation']:.2f} |")
        for name, x in w["workloads"].items():
            ranked = sorted(x["best"]["wall_shares"].items(), key=lambda kv: -kv[1])
            shares = ", ".join(f"{k} {v:.0%}" for k, v in ranked)
            L.append(f"- {name} shares of the process wall time: {shares}")
    errors = {k: v["error"] for k, v in r.get("sections", {}).items() if v.get("error")}
    if errors:
        L += ["", "## Errors", ""] + [f"- {k}: `{v}`" for k, v in errors.items()]
    L += ["", "## Sections", "", "| section | wall (s) | peak RSS (MB) | load start → end |", "|---|---|---|---|"]
    for k, v in r.get("sections", {}).items():
        L.append(f"| {k} | {v.get('section_wall_s', 0):.1f} | {_f(v.get('peak_rss_mb'), 0)} | "
                 f"{v.get('loadavg_start')} → {v.get('loadavg_end')} |")
    return "\n".join(L) + "\n"



def main(argv: list[str] | None = None) -> int:
    """Re-render the ``.md`` digest of each JSON result file given."""
    ap = argparse.ArgumentParser(description="write the Markdown digest of benchmark result files")
    ap.add_argument("results", nargs="+", type=Path, help="JSON files written by benchmarks/run.py")
    args = ap.parse_args(argv)
    for path in args.results:
        path.with_suffix(".md").write_text(markdown(json.loads(path.read_text())))
        print(path.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
