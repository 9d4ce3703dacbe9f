"""What every benchmark section shares: the clock, memory marks, the machine, child processes, files.

Nothing here knows a workload. :class:`SectionRecord` wraps one section (peak-RSS reset, load
average, wall time, errors); :func:`timing` and :func:`throughput` are the figures every timed
thing reports; :func:`machine_info` is the ``machine`` block of a result file; :func:`run_child`
runs one of this module's child entry points in a fresh process and returns what it printed;
:func:`write_results` writes the JSON and Markdown files atomically, never over an earlier result.

Child entry points (``python benchmarks/harness.py --worker-simulate|--worker-compile ...``) time
what must not share a process with the parent: a cold compile, and W2's peak memory.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# the benchmark modules, then the simengine of this checkout (not whichever one is installed)
sys.path[:] = [str(HERE), str(ROOT), *(path for path in sys.path if path not in (str(HERE), str(ROOT)))]

SEED = 20240611


# -------------------------------------------------------------------------------- clock, memory
def log(msg: str) -> None:
    """Print a time-stamped progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _status_kb(field: str, pid: str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss(pids=("self",)) -> bool:
    """Reset the peak RSS mark (VmHWM) of these processes.

    Parameters
    ----------
    pids : iterable of str or int
        ``"self"`` or process ids.

    Returns
    -------
    bool
        False where it is not possible (Linux only: writes 5 to ``/proc/PID/clear_refs``).
    """
    try:
        for pid in pids:
            with open(f"/proc/{pid}/clear_refs", "w") as fh:
                fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb(pids=("self",)) -> float:
    """Peak RSS in MB since the last reset (VmHWM), summed over processes; ``ru_maxrss`` where
    ``/proc`` is unavailable."""
    total = 0
    for pid in pids:
        kb = _status_kb("VmHWM", pid)
        if kb is None and pid == "self":
            kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        total += kb or 0
    return total / 1024.0


def rss_mb() -> float:
    """Resident set of this process now, in MB (0 where ``/proc`` is unavailable)."""
    kb = _status_kb("VmRSS")
    return (kb or 0) / 1024.0


def timing(runs: list[float]) -> dict:
    """The record of repeated wall times: ``reps``, ``median_s``, ``min_s``, ``max_s``, ``runs_s``."""
    return {"reps": len(runs), "median_s": statistics.median(runs), "min_s": min(runs), "max_s": max(runs),
            "runs_s": [round(r, 4) for r in runs]}


def throughput(t: dict, paths: int, licences: int, periods: int) -> dict:
    """``paths_per_s`` and ``licence_periods_per_s`` from the median of a :func:`timing` record."""
    med = t["median_s"]
    return {"paths_per_s": paths / med, "licence_periods_per_s": paths * licences * periods / med}


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where unknown)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


class SectionRecord:
    """Context manager around one section: resets the peak-RSS mark and records, in
    ``report["sections"][name]``, the load, wall time, peak RSS and any error.

    An exception (other than KeyboardInterrupt) is recorded with its traceback and swallowed, so
    one failing section does not lose the others' figures.
    """

    def __init__(self, report: dict, name: str):
        self.report, self.name = report, name
        self.entry = report.setdefault("sections", {}).setdefault(name, {})

    def __enter__(self) -> dict:
        gc.collect()
        self.entry["peak_rss_reset"] = reset_peak_rss()
        self.entry["rss_start_mb"] = round(rss_mb(), 1)
        self.entry["loadavg_start"] = loadavg()
        self.t0 = time.perf_counter()
        log(f"section {self.name} ...")
        return self.entry

    def __exit__(self, exc_type, exc, tb) -> bool:
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


# ------------------------------------------------------------------------------ threads
def set_threads(n: int) -> None:
    """Set the engine's kernel thread count, clipped to 1 .. :func:`max_threads`."""
    from simengine import _jit

    _jit.set_threads(max(1, min(int(n), _jit.max_threads())))


def max_threads() -> int:
    """The engine's maximum thread count (``NUMBA_NUM_THREADS``)."""
    from simengine import _jit

    return _jit.max_threads()


def threading_layer() -> str:
    """How the engine runs kernels in parallel (``simengine._jit.threading_layer``)."""
    from simengine import _jit

    return _jit.threading_layer()


# ------------------------------------------------------------------------------ machine info
def kernels_sha() -> str | None:
    """SHA-256 of the sources the compiled kernels depend on (``simengine._jit.jitted_sources``:
    ``_kernels/``, ``plan/``, ``rng.py``, ``_layout.py``, ``_jit.py``), so a run can tell whether they
    changed while it ran; None where they cannot be read."""
    package = ROOT / "simengine"
    try:
        from simengine._jit import jitted_sources

        files = jitted_sources(package)
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.relative_to(package).as_posix().encode() + path.read_bytes())
        return digest.hexdigest()
    except (ImportError, OSError):
        return None


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=20)
        return proc.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict:
    """The ``machine`` block of a result file: CPU, memory, versions, numba threads, git state."""
    import numba
    import scipy

    import simengine

    cpu = "unknown"
    mem_gb = None
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
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
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_simengine": _git("status", "--porcelain", "simengine"),
        "kernels_py_sha256": kernels_sha(),
    }


# ---------------------------------------------------------------------------- child processes
def run_child(argv: list[str], env: dict | None = None, timeout: float = 3600) -> dict:
    """Run one of this module's child entry points in a fresh interpreter.

    Parameters
    ----------
    argv : list of str
        Arguments after ``harness.py``, e.g. ``["--worker-compile", "--scenario", path]``.
    env : dict, optional
        The child's environment (default: this process's).
    timeout : float
        Seconds before the child is killed.

    Returns
    -------
    dict
        The JSON the child printed on its ``RESULT`` line, plus ``process_wall_s`` and
        ``ru_maxrss_children_mb_so_far``.
    """
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv], check=False, capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child {argv} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    line = [out for out in proc.stdout.splitlines() if out.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    out["process_wall_s"] = wall
    out["ru_maxrss_children_mb_so_far"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


def _worker_simulate(args: argparse.Namespace) -> dict:
    """Child: load a scenario, warm up, time ``simulate`` (one seed per repetition); peak RSS."""
    t0 = time.perf_counter()
    import simengine as se
    from simengine.engine import warm_up
    from simengine.plan import compile_plan

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
    return {"paths": args.paths, "licences": plan.licences, "periods": plan.periods, "load_and_plan_s": t1 - t0,
            "warm_up_s": compile_s, "simulate_runs_s": runs, "kernel_runs_s": kernel_runs,
            "rss_before_simulate_mb": rss_before,
            "peak_rss_mb": peak_rss_mb(), "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": args.threads, "kernels_py_sha256": kernels_sha()}


def _worker_compile(args: argparse.Namespace) -> dict:
    """Child: import, build the plan and warm up (compile, or load numba's cache)."""
    t0 = time.perf_counter()
    import simengine as se
    from simengine.engine import warm_up
    from simengine.plan import compile_plan

    t1 = time.perf_counter()
    plan = compile_plan(se.load_scenario(args.scenario))
    t2 = time.perf_counter()
    c = warm_up(plan)
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "plan_s": t2 - t1, "warm_up_s": c, "total_in_process_s": t3 - t0}


def child_main(argv: list[str] | None = None) -> int:
    """Entry point of a child process started by :func:`run_child`; prints ``RESULT <json>``."""
    ap = argparse.ArgumentParser(description="simengine benchmark child process (see benchmarks/run.py)")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--worker-simulate", action="store_true")
    mode.add_argument("--worker-compile", action="store_true")
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--paths", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args(argv)
    out = _worker_simulate(args) if args.worker_simulate else _worker_compile(args)
    print("RESULT " + json.dumps(out))
    return 0


# ---------------------------------------------------------------------------------- result files
def json_default(o):
    """``json.dumps`` fallback: NumPy scalars and arrays as Python numbers and lists, else ``str``."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_files(out_dir: Path, stem: str, texts: dict[str, str]) -> Path:
    """Write ``<stem><suffix>`` for each suffix of ``texts`` in ``out_dir`` without replacing any file.

    Where a file of that stem exists (another run of the same day, host and tag, or another script's
    result of the same name), the stem becomes ``<stem>-2``, ``<stem>-3`` ... so every file of one run
    shares one stem and no earlier result is lost. Each file is written to a temporary name and
    hard-linked into place (which fails rather than replaces), so a reader never sees half a file.

    Parameters
    ----------
    out_dir : Path
        Created if missing.
    stem : str
        The preferred file name without suffix.
    texts : dict of str to str
        Suffix (``".json"``, ``".md"``) to file content.

    Returns
    -------
    Path
        The path written for the first suffix.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        name = stem if n == 1 else f"{stem}-{n}"
        if any((out_dir / f"{name}{suffix}").exists() for suffix in texts):
            continue
        written = []
        try:
            for suffix, text in texts.items():
                tmp = out_dir / f".{name}{suffix}.{os.getpid()}.partial"
                tmp.write_text(text)
                try:
                    os.link(tmp, out_dir / f"{name}{suffix}")  # never replaces: FileExistsError instead
                finally:
                    tmp.unlink()
                written.append(out_dir / f"{name}{suffix}")
        except FileExistsError:  # another process took this name meanwhile: give up the name, try the next
            for path in written:
                path.unlink()
            continue
        if name != stem:
            log(f"{stem}: a result of that name exists; wrote {name} instead")
        return out_dir / f"{name}{next(iter(texts))}"
    raise FileExistsError(f"{out_dir / stem}: 999 results of that name already exist")


def write_results(report: dict, markdown: str, out_dir: Path, stem: str) -> Path:
    """Write ``<stem>.json`` and ``<stem>.md`` in ``out_dir`` (see :func:`write_files`: never over an
    earlier result); returns the JSON's path."""
    return write_files(out_dir, stem, {".json": json.dumps(report, indent=1, default=json_default), ".md": markdown})


if __name__ == "__main__":
    sys.exit(child_main())
