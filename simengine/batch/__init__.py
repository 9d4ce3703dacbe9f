"""Batches: many scenarios (files, stress variants, sweep points) in one resumable run (SPEC §9).

A batch folder (``--out``) holds::

    batch_manifest.json / .parquet    one row per scenario: status, error, timings, paths
    runs/<scenario id>/               the scenario's run folder (SPEC §5), as `simengine run` writes it
    spool/<scenario id>/              its per-chunk parts (Arrow IPC) while it runs (deleted once finished)
    combined/batch=<batch id>/scenario=<scenario id>/part-0.parquet
                                      its summary (one row per tranche) with pool statistics, for
                                      cross-scenario queries (pandas, pyarrow.dataset, DuckDB)

Every file is written under a temporary name and renamed, so a batch killed at any moment
(SIGKILL included) leaves nothing that looks finished. A scenario is finished when its run
folder's manifest says ``ok`` and its combined part exists; a resumed batch skips it without
touching its files, and resumes an unfinished one chunk by chunk (a chunk is a pure function of
the run's inputs and its index, so the resumed outputs equal an uninterrupted run's bits).

Work runs in this process, or on a Dask cluster (``scheduler="local"`` starts a LocalCluster;
an address connects to a running scheduler whose workers see the batch folder at the same
path). On Dask every step is a task: preparing a scenario (plan, sampling pilot), each chunk
(chunks of one big scenario spread over the workers) and finishing it (statistics, run folder,
combined part); the client only validates, schedules and keeps the manifest.

Modules, imports going one way (each imports only those above it): :mod:`.jobs` (inputs, sweep
grids, ids), :mod:`.steps` (prepare, chunk, finish: what runs in any process), :mod:`.dask` (the
cluster and its client), :mod:`.runner` (:class:`Batch`: triage, manifest, progress, scheduling).
"""

from .jobs import BatchInputError, Job, check_sweep_keys, default_out, file_jobs, parse_set, safe_id, sweep_jobs
from .runner import Batch, run_batch

__all__ = ["Batch", "BatchInputError", "Job", "check_sweep_keys", "default_out", "file_jobs", "parse_set",
           "run_batch", "safe_id", "sweep_jobs"]
