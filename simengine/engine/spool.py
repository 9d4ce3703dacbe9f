"""A run's options resolved once, its spec, and its spool: per-chunk parts on disk.

Memory is set by ``chunk_paths``: each chunk's per-path tables go to a part in a spool folder
and are dropped; statistics are computed afterwards from the parts, in path order, so no number
depends on how the paths were split. Parts are uncompressed Arrow IPC files: a scratch format,
written at memory speed and read back by memory map, so a run encodes its per-path tables to
Parquet once (the run folder's), not twice. A spool is stamped with its run's fingerprint (the
resolved scenario, every option that decides a chunk, and a hash of the model code), so a resume
never mixes parts computed under other inputs, other defaults or other code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from .._io import atomic_arrow, atomic_json, pid_alive, read_arrow
from .._layout import BASIS_ENHANCED, BASIS_STANDALONE
from .._progress import PhaseClock
from .._version import __version__
from ..plan import Plan
from ..scenario import Scenario
from ..stats import stable_order
from .chunks import chunk_tables, run_chunk
from .sampling import Sampling

log = logging.getLogger("simengine")
PACKAGE = Path(__file__).resolve().parents[1]
STAMP = "spool.json"
TEMP_PREFIX = "simengine-spool-"  # + pid: a temporary spool its process left is found and removed


@dataclass(frozen=True)
class RunOptions:
    """A run's options with every default filled in and antithetic rounding applied.

    The one place where ``--paths`` / ``--seed`` / ``--chunk-paths`` / ``--variance-reduction`` /
    ``--tranche`` meet the scenario's ``[simulation]`` defaults: ``run``, ``batch`` and resume
    checks all go through :meth:`resolve`. With antithetic pairs, paths and chunk sizes are
    rounded up to even numbers, so a pair never straddles a chunk.
    """

    paths: int
    seed: int
    chunk_paths: int
    antithetic: bool
    target_rse: float | None = None
    target_tranche: str | None = None

    @classmethod
    def resolve(cls, scenario: Scenario, paths: int | None = None, seed: int | None = None,
                chunk_paths: int | None = None, variance_reduction: str | None = None, tranche: str | None = None,
                target_rse: float | None = None) -> tuple[Scenario, RunOptions]:
        """(the scenario with the sampling options applied, the resolved options).

        ``variance_reduction`` and ``tranche`` go through :meth:`Scenario.with_overrides`, so a bad
        value is the same :class:`~simengine.errors.ScenarioError` a scenario file would give.
        """
        overrides = {}
        if variance_reduction is not None:
            overrides["simulation.variance_reduction"] = variance_reduction
        if tranche is not None:
            overrides["simulation.importance.tranche"] = tranche
        if overrides:
            scenario = scenario.with_overrides(overrides)
        sim = scenario.model.simulation
        paths = int(paths if paths is not None else sim.paths)
        seed = int(seed if seed is not None else sim.seed)
        chunk = int(chunk_paths if chunk_paths is not None else sim.chunk_paths)
        if paths < 1 or chunk < 1 or not (0 <= seed < 2**63):
            raise ValueError(f"paths ({paths}) and chunk_paths ({chunk}) >= 1 and 0 <= seed < 2**63 ({seed})")
        if target_rse is not None and not target_rse > 0:
            raise ValueError(f"target_rse ({target_rse}) must be > 0")
        antithetic = "antithetic" in sim.variance_reduction
        if antithetic:
            paths += paths % 2
            chunk += chunk % 2
        target = (sim.importance.tranche or scenario.model.structure.tranches[0].name) if target_rse else None
        return scenario, cls(paths, seed, chunk, antithetic, target_rse, target)

    def key(self, scenario: Scenario) -> dict:
        """What a finished run was computed from (inputs, defaults, code): a resumed batch compares it
        with the run's manifest, so a batch never mixes runs of other inputs or other code."""
        return {"scenario_hash": scenario.file_hash, "resolved_scenario_hash": resolved_hash(scenario),
                "model_code": model_code_hash(), "seed": self.seed, "paths": self.paths,
                "chunk_paths": self.chunk_paths}


def resolved_hash(scenario: Scenario) -> str:
    """sha256 of the scenario with every default filled in: a changed default changes it."""
    return hashlib.sha256(json.dumps(scenario.resolved(), sort_keys=True).encode()).hexdigest()


@functools.cache
def model_code_hash() -> str:
    """sha256 of every file of the package (found by walking its folder, so none is left out):
    a spool computed under other code is never resumed."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(PACKAGE).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


class RunSpec(NamedTuple):
    """Everything a chunk needs; picklable, so a chunk can run in another process.

    ``paths`` is the number of paths asked for, or the cap when ``target_rse`` is set.
    """

    scenario: Scenario
    plan: Plan
    seed: int
    paths: int
    chunk_paths: int
    sampling: Sampling
    sampling_info: dict
    target_rse: float | None = None
    target_tranche: str | None = None
    setup_timings: dict = {}

    @property
    def n_chunks(self) -> int:
        """Chunks of ``paths`` paths in ``chunk_paths`` (the last may be shorter)."""
        return -(-self.paths // self.chunk_paths)

    def chunk(self, index: int) -> tuple[int, int]:
        """(first path, number of paths) of chunk ``index``."""
        first = index * self.chunk_paths
        return first, min(self.chunk_paths, self.paths - first)

    def paths_in(self, n_chunks: int) -> int:
        """Paths in the first ``n_chunks`` chunks."""
        first, n = self.chunk(n_chunks - 1)
        return first + n

    def fingerprint(self) -> dict:
        """What a spooled part depends on; a spool folder holds the parts of one fingerprint."""
        return {"scenario_hash": self.scenario.file_hash, "resolved_scenario_hash": resolved_hash(self.scenario),
                "seed": self.seed, "paths": self.paths, "chunk_paths": self.chunk_paths,
                "sampling": [list(v) if isinstance(v, tuple) else v for v in self.sampling],  # as JSON reads back
                "engine": __version__, "model_code": model_code_hash()}


def open_spool(spec: RunSpec, spool_dir: str | Path | None, stale: str = "error") -> tuple[Path, bool]:
    """The spool folder for ``spec``: (folder, owned by the result).

    A folder that holds parts of this run is resumed (its finished chunks are skipped). One that
    holds parts of a *different* run (other inputs, defaults or code) is an error with
    ``stale="error"``, or emptied and started afresh with ``stale="replace"`` (a batch's own spool).
    """
    if spool_dir is None:
        clean_stale_spools()
        return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-")), True
    spool = Path(spool_dir)
    spool.mkdir(parents=True, exist_ok=True)
    stamp = spool / STAMP
    want = spec.fingerprint()
    if stamp.exists():
        have = json.loads(stamp.read_text())
        if have == want:
            return spool, False
        changed = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        if stale != "replace":
            raise ValueError(f"{spool}: holds parts of another run (differs in {', '.join(changed)}); "
                             "use a fresh folder or delete this one")
        log.warning("%s: its parts were computed under other inputs (%s); recomputing", spool, ", ".join(changed))
        for child in spool.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    atomic_json(stamp, want)
    return spool, False


def clean_stale_spools(folder: str | Path | None = None) -> list[Path]:
    """Remove the temporary spools that runs killed before they could clean up left in
    ``folder`` (the temporary directory): those whose process no longer runs."""
    removed = []
    for path in Path(folder or tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        pid = path.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if path.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def part_name(index: int) -> str:
    """File name of chunk ``index``'s part."""
    return f"part-{index:06d}.arrow"


def spool_chunk(spec: RunSpec, spool: Path, index: int) -> float | None:
    """Simulate chunk ``index`` into ``spool``; returns kernel seconds, or None if it was already there.

    Each part is written atomically, pool paths last: a chunk whose ``pool_paths`` part exists is
    finished, and a killed writer leaves only ``.partial`` files. A finished chunk whose parts do
    not read back whole (a file cut short by a crash of the machine, or removed) is computed again.
    """
    name = part_name(index)
    first, n = spec.chunk(index)
    if (spool / "pool_paths" / name).exists():
        broken = _broken_part(spool, name, n, len(spec.plan.tranche_names))
        if broken is None:
            return None
        log.warning("%s: chunk %d's spooled part %s; computing it again", spool, index, broken)
    k0 = time.perf_counter()
    out = run_chunk(spec.plan, spec.seed, first, n, spec.sampling)
    seconds = time.perf_counter() - k0
    tl, pp = chunk_tables(spec.plan, first, out)
    del out
    for table, folder in ((tl, "tranche_losses"), (pp, "pool_paths")):
        (spool / folder).mkdir(exist_ok=True)
        atomic_arrow(spool / folder / name, table)
    return seconds


def _broken_part(spool: Path, name: str, paths: int, tranches: int) -> str | None:
    """What is wrong with a finished chunk's parts (``name`` in both folders), or None if both read
    back as Arrow IPC files with the chunk's rows (``paths`` and ``paths * tranches``). Only the
    footers and record-batch headers are read (memory-mapped)."""
    for folder, rows in (("tranche_losses", paths * tranches), ("pool_paths", paths)):
        try:
            got = read_arrow(spool / folder / name).num_rows
        except (OSError, pa.ArrowException) as exc:  # missing, truncated, not an Arrow file
            return f"{folder}/{name} does not read back ({type(exc).__name__}: {exc})"
        if got != rows:
            return f"{folder}/{name} holds {got:,} rows, not {rows:,}"
    return None


def target_units(spec: RunSpec, spool: Path, index: int) -> np.ndarray:
    """Chunk ``index``'s contributions to the target tranche's PD: w·1{default} per path, or per
    antithetic pair (their mean), so that the pieces are independent."""
    basis = "" if spec.scenario.model.simulation.importance.basis == "enhanced" else "standalone_"
    k = spec.plan.tranche_names.index(spec.target_tranche)
    n_tr = len(spec.plan.tranche_names)
    t = read_arrow(spool / "tranche_losses" / part_name(index), ["weight", basis + "defaulted"])
    w = t.column(0).to_numpy()[k::n_tr]
    x = w * t.column(1).to_numpy(zero_copy_only=False)[k::n_tr].astype(float)
    return 0.5 * (x[0::2] + x[1::2]) if spec.sampling.antithetic else x


class SpooledColumns:
    """The per-path columns of a spool's first ``n_chunks`` parts, each read once and kept.

    Statistics ask for the same columns many times (the loss fractions for the summary, the
    worst paths and the exceedance curves): each is read from the parts on first use only, and
    each tranche loss column is sorted once (:meth:`order`). :meth:`release` drops them.

    Parameters
    ----------
    spool : Path
        The spool folder (``tranche_losses/``, ``pool_paths/``).
    n_chunks : int
        Parts that belong to the run.
    tranches : int
        Rows per path of ``tranche_losses``.
    clock : PhaseClock or None
        Reading is timed under ``read_spool``.
    """

    def __init__(self, spool: Path, n_chunks: int, tranches: int, clock: PhaseClock | None = None):
        self.spool = Path(spool)
        self.parts = [part_name(i) for i in range(n_chunks)]
        self.tranches = tranches
        self.clock = clock or PhaseClock()
        self._columns: dict[tuple[str, str], np.ndarray] = {}
        self._orders: dict[tuple[str, int | None], np.ndarray] = {}

    def read(self, folder: str, columns: list[str] | None = None) -> pa.Table:
        """``folder``'s table (``tranche_losses`` or ``pool_paths``) over every part, in path order."""
        return pa.concat_tables([read_arrow(self.spool / folder / p, columns) for p in self.parts])

    def tables(self, folder: str):
        """``folder``'s table part by part (a generator: one part in memory at a time)."""
        return (read_arrow(self.spool / folder / p) for p in self.parts)

    def column(self, folder: str, name: str) -> np.ndarray:
        """One column over every part, ndarray, shape (rows,); read on first use, then kept."""
        self.prefetch(folder, [name])
        return self._columns[(folder, name)]

    def prefetch(self, folder: str, names: list[str], threads: int = 1) -> None:
        """Read the columns ``names`` of ``folder`` not read yet (:meth:`column` reads one).

        Each part is mapped once for all of them (opening an Arrow file costs more than copying
        one of its columns) and let go once they are copied; the copies run on up to ``threads``
        threads (each a copy of its parts' pages, released from the GIL, whose first touch may
        wait on the kernel).
        """
        todo = [n for n in dict.fromkeys(names) if (folder, n) not in self._columns]
        if not todo:
            return
        with self.clock("read_spool"):
            table = self.read(folder, todo)

            def one(name: str) -> np.ndarray:
                return np.asarray(table.column(name).to_numpy(zero_copy_only=False))

            if threads <= 1 or len(todo) < 2:
                arrays = [one(n) for n in todo]
            else:
                with ThreadPoolExecutor(min(threads, len(todo))) as pool:
                    arrays = list(pool.map(one, todo))
            self._columns.update(zip(((folder, n) for n in todo), arrays))

    def matrix(self, name: str) -> np.ndarray:
        """A ``tranche_losses`` column as ndarray, shape (paths, tranches)."""
        return self.column("tranche_losses", name).reshape(-1, self.tranches)

    def order(self, name: str, k: int | None = None) -> np.ndarray:
        """Stable argsort of tranche ``k``'s ``name`` (a ``tranche_losses`` column), or of the
        ``pool_paths`` column ``name`` where ``k`` is None; ndarray(int64), shape (paths,); sorted
        once, shared by every quantile, tail, curve and batch-means error of that column."""
        if (name, k) not in self._orders:
            values = self.column("pool_paths", name) if k is None else self.matrix(name)[:, k]
            self._orders[(name, k)] = stable_order(values)
        return self._orders[(name, k)]

    def weighted_losses(self, n: int) -> np.ndarray:
        """w · loss fraction of the first ``n`` paths on both bases, ndarray(float64), shape
        (n, 2, tranches), laid out as ``analysis.CommonRandomNumbers.weighted`` (``_layout.BASIS_*``):
        the same bits as simulating them again."""
        out = np.empty((n, 2, self.tranches))
        w = self.column("pool_paths", "weight")[:n, None]
        for basis, prefix in ((BASIS_ENHANCED, ""), (BASIS_STANDALONE, "standalone_")):
            out[:, basis, :] = self.matrix(prefix + "loss_fraction")[:n] * w
        return out

    def release(self) -> None:
        """Drop what was kept (a later call reads it again)."""
        self._columns.clear()
        self._orders.clear()
