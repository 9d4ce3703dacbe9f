"""Ledgers of many paths on every numba thread: the ledger kernel runs one block of paths on one
thread (it releases the GIL), so blocks go to a thread pool and are put back in path order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._jit import num_threads
from ..plan import Plan
from .chunks import ledgers
from .sampling import PLAIN, Sampling

MIN_BLOCK_PATHS = 256  # below this a block's thread costs more than it saves


def ledgers_threaded(plan: Plan, seed: int, paths: np.ndarray, sampling: Sampling = PLAIN,
                     threads: int | None = None) -> np.ndarray:
    """:func:`simengine.engine.ledgers` of ``paths`` split over ``threads`` (default: numba's thread
    count) contiguous blocks; the same bits, since every path's numbers are its own.

    paths : ndarray(int64), shape (n,)
    Returns ndarray(float64), shape (n, periods, ledger width).
    """
    paths = np.ascontiguousarray(paths, np.int64)
    threads = max(1, min(threads or num_threads(), len(paths) // MIN_BLOCK_PATHS))
    if threads == 1:
        return ledgers(plan, seed, paths, sampling)[0]
    blocks = np.array_split(paths, threads)
    with ThreadPoolExecutor(threads) as pool:
        parts = list(pool.map(lambda block: ledgers(plan, seed, block, sampling)[0], blocks))
    return np.concatenate(parts)
