"""The engine: the sampling measure, the kernels' only caller, and the spool of per-chunk parts.

:mod:`.sampling` (the measure), :mod:`.importance` (the pilot that chooses it), :mod:`.chunks`
(chunks and ledgers through the kernels, chunk tables), :mod:`.spool` (options resolved once,
the run spec, fingerprinted spools).
"""

from .chunks import chunk_tables, compile_seconds, ledgers, run_chunk, warm_up
from .importance import pilot, sampling_for
from .sampling import PLAIN, Sampling
from .spool import (
    RunOptions,
    RunSpec,
    SpooledColumns,
    model_code_hash,
    open_spool,
    part_name,
    resolved_hash,
    spool_chunk,
    target_units,
)

__all__ = [
    "PLAIN", "RunOptions", "RunSpec", "Sampling", "SpooledColumns", "chunk_tables", "compile_seconds", "ledgers",
    "model_code_hash", "open_spool", "part_name", "pilot", "resolved_hash", "run_chunk",
    "sampling_for", "spool_chunk", "target_units", "warm_up",
]
