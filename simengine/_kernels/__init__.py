"""Array kernels: plan arrays and scalars in, caller-allocated arrays out (see ../_layout.py).

Every function is plain Python made fast by :func:`simengine._jit.jit` (the CPU target); with
``SIMENGINE_DISABLE_NUMBA=1`` they run as their own pure-Python twins, which the tests compare bit
for bit. By job: :mod:`.distributions`, :mod:`.hazard` (event-time searches), :mod:`.pool` (one
path's risk drivers and collections), :mod:`.waterfall` (one path's priority of payments, one
inlined helper per opcode) and :mod:`.chunk` (a block of paths on one thread). Only
:mod:`simengine.engine.chunks` calls them.

Kernels carry no reference counts (``_nrt=False`` in :mod:`simengine._jit`): they never allocate,
so passing arrays costs no atomics. What is inlined (numba IR, ``inline="always"``) is inlined for
speed where a call per period would pass the plans' exploded fields; each inline site deep-copies
the callee's IR at compile time, so big functions called once per path stay calls.
"""
