"""The one place that imports numba.

``SIMENGINE_DISABLE_NUMBA=1`` makes :func:`jit` the identity and :data:`prange` plain ``range``,
so every kernel runs as its pure-Python twin (slow, for tests and debugging).
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
    prange = range

    def jit(fn=None, **_):
        return fn if fn is not None else (lambda f: f)

    def parallel_jit(fn):
        return fn

    def set_threads(n: int | None) -> None:
        return None

    def threading_layer() -> str:
        return "python (numba disabled)"

    def num_threads() -> int:
        return 1

    def max_threads() -> int:
        return os.cpu_count() or 1

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

    prange = numba.prange
    # fastmath stays off: NaN/Inf handling must survive, and bits must not depend on reassociation.
    _OPTIONS = dict(nogil=True, error_model="numpy", cache=CACHE)

    def jit(fn=None, **extra):
        options = {**_OPTIONS, **extra}
        if fn is None:
            return lambda f: numba.njit(**options)(f)
        return numba.njit(**options)(fn)

    def parallel_jit(fn):
        return numba.njit(parallel=True, **_OPTIONS)(fn)

    def set_threads(n: int | None) -> None:
        if n is not None:
            if not 1 <= int(n) <= numba.config.NUMBA_NUM_THREADS:
                raise ValueError(f"threads ({n}) must be in 1..{numba.config.NUMBA_NUM_THREADS} (NUMBA_NUM_THREADS)")
            numba.set_num_threads(int(n))

    def max_threads() -> int:
        return numba.config.NUMBA_NUM_THREADS

    def threading_layer() -> str:
        try:
            return numba.threading_layer()
        except ValueError:  # no parallel kernel has run yet
            return f"not yet chosen (config: {numba.config.THREADING_LAYER})"

    def num_threads() -> int:
        return numba.get_num_threads()
