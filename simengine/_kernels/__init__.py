"""Array kernels: plan arrays and scalars in, caller-allocated arrays out (see ../_layout.py).

Every function is plain Python made fast by :func:`simengine._jit.jit` (the CPU target); with
``SIMENGINE_DISABLE_NUMBA=1`` they run as their own pure-Python twins, which the tests compare bit
for bit. By job: :mod:`.distributions`, :mod:`.hazard` (event-time searches), :mod:`.pool` (one
path's risk drivers and collections), :mod:`.waterfall` (one path's priority of payments, one
inlined helper per opcode) and :mod:`.chunk` (the parallel driver). Only
:mod:`simengine.engine.chunks` calls them.

No array is passed to a function called per path or per period unless it is inlined: numba
reference-counts array arguments with atomics, which on shared plan arrays cost more than the work.
"""
