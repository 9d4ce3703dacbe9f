"""The one place that imports numba, and the one that runs kernels on several threads.

``SIMENGINE_DISABLE_NUMBA=1`` makes :func:`jit` the identity, so every kernel runs as its
pure-Python twin (slow, for tests and debugging).

Kernels run in parallel as blocks of paths handed out to Python threads (:func:`run_blocks`),
each calling a ``nogil`` kernel, not through numba's ``parallel=True``: a parallel (parfor) kernel
re-optimises everything it calls in one LLVM module, which made the cold compile several times
slower than compiling the path kernel alone, and it needs a threading layer (OpenMP/TBB). The
thread count is this module's (:func:`set_threads`), at most ``NUMBA_NUM_THREADS`` (the CPUs).
``SIMENGINE_NUMBA_CACHE=1`` (default on) caches compiled kernels in ``numba-<digest>`` under
``NUMBA_CACHE_DIR``, else the package's ``__pycache__``, else ``~/.cache/simengine`` (the first
writable; none: no cache), where the digest is of the modules that hold
jitted code: numba checks only a cached function's own file, so a kernel cached before an edit of
a module it calls (``rng.py`` from ``kernels.py``, or either from a benchmark) would otherwise be
loaded stale. Other numba code in the same process caches there too.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

DISABLED = os.environ.get("SIMENGINE_DISABLE_NUMBA", "0") not in ("", "0", "false", "False")
CACHE = os.environ.get("SIMENGINE_NUMBA_CACHE", "1") not in ("", "0", "false", "False")

def jitted_sources(package: Path) -> list[Path]:
    """The files compiled kernels depend on: every module of ``_kernels/`` and ``plan/`` (opcodes,
    plan layouts), found by folder, and the leaves they read (``rng``, ``_layout``, this module)."""
    files = [package / name for name in ("_jit.py", "_layout.py", "rng.py")]
    for folder in ("_kernels", "plan"):
        files += sorted((package / folder).glob("*.py"))
    return files


if DISABLED:
    def jit(fn=None, **_):
        return fn if fn is not None else (lambda f: f)

    def max_threads() -> int:
        return os.cpu_count() or 1

    def cached(fragment: str) -> bool:
        return True  # nothing to compile

    def compile_for(kernel, args: tuple) -> None:
        pass

else:
    import numba

    def _cache_dir() -> str | None:
        """The first writable of NUMBA_CACHE_DIR, the package's __pycache__, ~/.cache/simengine."""
        here = Path(__file__).parent
        digest = hashlib.sha256()
        for path in jitted_sources(here):
            digest.update(path.relative_to(here).as_posix().encode() + path.read_bytes())
        user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "simengine"
        for base in (os.environ.get("NUMBA_CACHE_DIR"), here / "__pycache__", user):
            if not base:
                continue
            path = Path(base) / f"numba-{digest.hexdigest()[:16]}"
            try:
                path.mkdir(parents=True, exist_ok=True)
                tempfile.TemporaryFile(dir=path).close()
                return str(path)
            except OSError:  # read-only install: try the next place
                continue
        return None

    if CACHE:
        _dir = _cache_dir()
        if _dir is None:
            CACHE = False
        else:
            numba.config.CACHE_DIR = _dir

    # fastmath stays off: NaN/Inf handling must survive, and bits must not depend on reassociation.
    # _nrt=False: kernels never allocate (callers do) and never own an array, so numba's reference
    # counts are pure cost: every array (and every array in a plan's namedtuple) bound to an inlined
    # helper's parameter was incref'd and decref'd with atomics, per period and opcode, which made
    # the split waterfall twice as slow as one function (measured in CHANGELOG). It also makes an
    # allocation inside a kernel a compile error, which is the rule.
    _OPTIONS = dict(nogil=True, error_model="numpy", cache=CACHE, _nrt=False)


    def jit(fn=None, **extra):
        options = {**_OPTIONS, **extra}
        if fn is None:
            return lambda f: numba.njit(**options)(f)
        return numba.njit(**options)(fn)

    def max_threads() -> int:
        return numba.config.NUMBA_NUM_THREADS

    def cached(fragment: str) -> bool:
        """Whether numba's cache holds an index for a kernel whose cache name contains
        ``fragment`` (``"chunk.simulate_block"``); no cache counts as cached (nothing to share)."""
        return not CACHE or any(Path(numba.config.CACHE_DIR).glob(f"*/{fragment}-*.nbi"))

    def compile_for(kernel, args: tuple) -> None:
        """Compile ``kernel`` (into numba's cache) for the types of ``args``, without running it."""
        kernel.compile(tuple(numba.typeof(a) for a in args))


_THREADS = {"n": 1 if DISABLED else max_threads()}


def set_threads(n: int | None) -> None:
    """Run kernels on ``n`` threads from now on (None: leave as is); 1 .. :func:`max_threads`."""
    if n is not None:
        if not 1 <= int(n) <= max_threads():
            raise ValueError(f"threads ({n}) must be in 1..{max_threads()} (NUMBA_NUM_THREADS)")
        _THREADS["n"] = 1 if DISABLED else int(n)


def num_threads() -> int:
    """The threads kernels run on (:func:`set_threads`; default: every CPU)."""
    return _THREADS["n"]


def threading_layer() -> str:
    """How kernels run in parallel, for manifests."""
    return "python (numba disabled)" if DISABLED else "python threads over nogil kernels"


def run_blocks(n: int, block: int, work: Callable[[int, int, int], None], threads: int | None = None) -> None:
    """Call ``work(lo, hi, slot)`` for the blocks ``[lo, hi)`` of ``range(n)`` (``block`` long, the
    last shorter) on ``threads`` threads (default :func:`num_threads`), ``slot`` in
    ``0 .. threads - 1`` naming the thread (its working arrays).

    Threads take the next block as they finish one, so the split is not fixed, and ``work`` must
    make each block's result depend on ``lo``/``hi`` only. The calling thread works too (a Ctrl-C
    lands once its block returns); an exception in any block is raised here once all threads stop.
    """
    threads = max(1, min(num_threads() if threads is None else int(threads), -(-n // block)))
    if threads == 1:
        for lo in range(0, n, block):
            work(lo, min(n, lo + block), 0)
        return
    starts = iter(range(0, n, block))
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop(slot: int) -> None:
        while not stop.is_set():
            with lock:
                lo = next(starts, None)
            if lo is None:
                return
            try:
                work(lo, min(n, lo + block), slot)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                errors.append(exc)
                stop.set()

    helpers = [threading.Thread(target=loop, args=(slot,), daemon=True) for slot in range(1, threads)]
    for t in helpers:
        t.start()
    try:
        loop(0)
    finally:  # also on Ctrl-C in this thread: the helpers finish their block and stop
        stop.set()
        for t in helpers:
            t.join()
    if errors:
        raise errors[0]
