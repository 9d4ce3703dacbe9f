"""Ledgers of many paths on every kernel thread: the kernel runs one block of paths on one thread
(it releases the GIL), so blocks go to :func:`simengine._jit.run_blocks` and land in path order."""

from __future__ import annotations

import numpy as np

from .._jit import run_blocks
from .._layout import ledger_width
from ..plan import Plan
from .chunks import ledgers
from .sampling import PLAIN, Sampling

BLOCK_PATHS = 1024  # paths a thread does at a time: few enough that the blocks in flight stay small


def ledgers_threaded(plan: Plan, seed: int, paths: np.ndarray, sampling: Sampling = PLAIN,
                     threads: int | None = None) -> np.ndarray:
    """:func:`simengine.engine.ledgers` of ``paths`` in blocks of ``BLOCK_PATHS`` on ``threads``
    (default: :func:`simengine._jit.num_threads`) threads (:func:`simengine._jit.run_blocks`); the
    same bits, since every path's numbers are its own. Each block is copied into the result as it
    finishes, so memory is the result plus one block per thread.

    paths : ndarray(int64), shape (n,)
    Returns ndarray(float64), shape (n, periods, ledger width).
    """
    paths = np.ascontiguousarray(paths, np.int64)
    out = np.empty((len(paths), plan.periods, ledger_width(len(plan.tranche_names))))

    def fill(lo: int, hi: int, slot: int) -> None:
        out[lo:hi] = ledgers(plan, seed, paths[lo:hi], sampling)[0]

    run_blocks(len(paths), BLOCK_PATHS, fill, threads)
    return out
