"""The one place that imports numba.

``SIMENGINE_DISABLE_NUMBA=1`` makes :func:`jit` the identity and :data:`prange` plain ``range``,
so every kernel runs as its pure-Python twin (slow, for tests and debugging).
``SIMENGINE_NUMBA_CACHE=1`` (default on) caches compiled kernels next to the package.
"""

from __future__ import annotations

import os

DISABLED = os.environ.get("SIMENGINE_DISABLE_NUMBA", "0") not in ("", "0", "false", "False")
CACHE = os.environ.get("SIMENGINE_NUMBA_CACHE", "1") not in ("", "0", "false", "False")

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

else:
    import numba

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
            numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))

    def threading_layer() -> str:
        try:
            return numba.threading_layer()
        except ValueError:  # no parallel kernel has run yet
            return f"not yet chosen (config: {numba.config.THREADING_LAYER})"

    def num_threads() -> int:
        return numba.get_num_threads()
