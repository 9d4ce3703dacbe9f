"""Tornado timing (issue 14): 6 drivers x 2 shocks on Guangzhou under common random numbers,
against one run of the same scenario, all in one sitting (one process, interleaved repetitions).

Figures, each the median of ``--repeat`` repetitions:

- ``kernel_run``: the base variant's paths through the kernels (what each tornado variant costs);
- ``simulate_run``: ``simulate()`` + summary + run folder written (one run, warm process);
- ``cli_run``: ``simengine run FILE --no-plot`` as a fresh process (what a re-run from scratch costs);
- ``tornado``: :func:`simengine.analysis.sensitivity` with the default drivers and shocks.

Only ratios measured in one sitting are compared (the machine may be shared); the load average
is recorded before and after.

    python benchmarks/tornado.py [--paths 100000] [--repeat 3] [--tag NAME] [--out DIR]

Writes ``<out>/<YYYY-MM-DD>-<hostname>-tornado[-<tag>].json``: always ``-tornado``, so it cannot
take the name of a ``run.py`` result, and never over an existing file (``harness.write_files``
adds ``-2``, ``-3`` ...).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, machine_info, write_files  # harness first: this checkout's simengine on sys.path

import simengine as se
from simengine.analysis import CommonRandomNumbers, sensitivity
from simengine.simulation import prepare

SCENARIO = ROOT / "scenarios" / "guangzhou_patent_2019.toml"


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return list(os.getloadavg())


def positive(text: str) -> int:
    """argparse type: an integer of at least 1 (0 repetitions would fail only after the runs)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer of at least 1")
    return value


def main(argv=None) -> int:
    """Command line: see the module docstring; returns the exit status."""
    ap = argparse.ArgumentParser(description="Tornado timing (issue 14): 6 drivers x 2 shocks on the Guangzhou "
                                             "deal under common random numbers, against one run of it, in one "
                                             "sitting. Only the ratios compare across machines.")
    ap.add_argument("--paths", type=positive, default=100_000,
                    help="paths of the run and of each variant (default 100000)")
    ap.add_argument("--repeat", type=positive, default=3, help="interleaved repetitions; medians reported (default 3)")
    ap.add_argument("--tag", default="", help="appended to the result name: <date>-<host>-tornado-<tag>.json")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"),
                    help="folder for the result (default benchmarks/results)")
    args = ap.parse_args(argv)

    load_start = load()
    sc = se.load_scenario(SCENARIO)
    t0 = time.perf_counter()
    spec = prepare(sc, paths=args.paths)
    prepare_seconds = time.perf_counter() - t0
    crn = CommonRandomNumbers(spec, args.paths)
    crn.run()  # warm
    times: dict[str, list[float]] = {"kernel_run": [], "simulate_run": [], "cli_run": [], "tornado": []}
    variants = 0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeat):
            t = time.perf_counter()
            crn.run()
            times["kernel_run"].append(time.perf_counter() - t)

            t = time.perf_counter()
            res = se.simulate(sc, paths=args.paths, progress=False)
            _ = res.summary  # the statistics a run computes
            res.to_parquet(Path(tmp) / f"run{rep}")
            times["simulate_run"].append(time.perf_counter() - t)
            del res

            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "simengine", "run", str(SCENARIO), "--paths", str(args.paths),
                            "--out", str(Path(tmp) / f"cli{rep}"), "--no-plot", "--quiet"], check=True, env=env,
                           capture_output=True, cwd=ROOT)
            times["cli_run"].append(time.perf_counter() - t)

            t = time.perf_counter()
            table = sensitivity(spec)
            times["tornado"].append(time.perf_counter() - t)
            variants = table.attrs["timings"]["variants"]
            drivers = sorted(set(table["driver"]))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {
        "tornado_over_kernel_run": med["tornado"] / med["kernel_run"],
        "tornado_over_simulate_run": med["tornado"] / med["simulate_run"],
        "tornado_over_cli_run": med["tornado"] / med["cli_run"],
        "from_scratch_over_tornado": variants * med["cli_run"] / med["tornado"],
        "tornado_per_variant_over_kernel_run": med["tornado"] / variants / med["kernel_run"],
    }
    report = {"what": "tornado (issue 14)", "scenario": str(SCENARIO.relative_to(ROOT)), "paths": args.paths,
              "repeat": args.repeat, "drivers": drivers, "variants": variants,
              "prepare_seconds_first": prepare_seconds, "seconds": times, "median_seconds": med, "ratios": ratios,
              "load_average_start": load_start, "load_average_end": load(), "machine": machine_info(),
              "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    host = re.sub(r"[^A-Za-z0-9._-]+", "_", socket.gethostname())[:40] or "host"
    stem = f"{_dt.date.today().isoformat()}-{host}-tornado" + (f"-{args.tag}" if args.tag else "")
    path = write_files(Path(args.out), stem, {".json": json.dumps(report, indent=1, default=str) + "\n"})
    print(json.dumps({"median_seconds": med, "ratios": ratios, "load": [load_start, report["load_average_end"]]},
                     indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
