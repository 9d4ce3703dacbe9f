"""Ledgers of many paths on every numba thread: the ledger kernel runs one block of paths on one
thread (it releases the GIL), so blocks go to a thread pool and are put back in path order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._jit import num_threads
from ..plan import Plan
from .chunks import ledgers
from .sampling import PLAIN, Sampling

BLOCK_PATHS = 1024  # paths a thread does at a time: few enough that the blocks in flight stay small


def ledgers_threaded(plan: Plan, seed: int, paths: np.ndarray, sampling: Sampling = PLAIN,
                     threads: int | None = None) -> np.ndarray:
    """:func:`simengine.engine.ledgers` of ``paths`` in blocks of ``BLOCK_PATHS`` on ``threads``
    (default: numba's thread count) threads; the same bits, since every path's numbers are its own.
    Each block is copied into the result as it finishes, so memory is the result plus one block
    per thread.

    paths : ndarray(int64), shape (n,)
    Returns ndarray(float64), shape (n, periods, ledger width).
    """
    paths = np.ascontiguousarray(paths, np.int64)
    starts = range(0, len(paths), BLOCK_PATHS)
    threads = max(1, min(threads or num_threads(), len(starts)))
    if threads == 1:
        return ledgers(plan, seed, paths, sampling)[0]
    first = ledgers(plan, seed, paths[:BLOCK_PATHS], sampling)[0]
    out = np.empty((len(paths), *first.shape[1:]))
    out[:BLOCK_PATHS] = first
    del first

    def fill(lo: int) -> None:
        out[lo:lo + BLOCK_PATHS] = ledgers(plan, seed, paths[lo:lo + BLOCK_PATHS], sampling)[0]

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fill, starts[1:]))
    return out
