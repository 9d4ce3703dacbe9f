"""Dask for a batch: the shape of a LocalCluster, the client, and kernels warmed on the workers.

``distributed`` is imported only when a batch asks for a scheduler, so a batch in this process
needs no Dask at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator

from ..scenario import Scenario
from .jobs import BatchInputError
from .steps import warm_step

log = logging.getLogger("simengine")


def local_cluster_shape(cores: int | None = None) -> tuple[int, int]:
    """(worker processes, numba threads per worker) for a LocalCluster on this machine.

    Each worker runs one task at a time (numba's parallel layers are not to be entered from
    several threads of one process) and gives it ``threads`` numba threads. Up to 8 workers, so
    that a big machine does not hold dozens of copies of the compiled kernels and chunk buffers;
    the cores are shared out among them.

    Parameters
    ----------
    cores : int or None
        CPUs to share out; None: those this process may run on.
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(cores, 8))
    return workers, max(1, cores // workers)


@contextlib.contextmanager
def dask_client(scheduler: str | None) -> Iterator:
    """A Dask client for the batch, closed (with its cluster) on exit.

    Parameters
    ----------
    scheduler : str or None
        ``"local"``: a new LocalCluster shaped by :func:`local_cluster_shape`; an address
        (``tcp://host:8786``): that running scheduler; None: no client (work in this process).

    Yields
    ------
    distributed.Client or None

    Raises
    ------
    BatchInputError
        The address cannot be reached.
    """
    if scheduler is None:
        yield None
        return
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO chatter is not the batch's log
    cluster = None
    if scheduler == "local":
        workers, threads = local_cluster_shape()
        log.info("starting a Dask LocalCluster: %d workers x %d numba threads", workers, threads)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.CRITICAL,
                               env={"NUMBA_NUM_THREADS": str(threads)})
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, ValueError, TypeError) as exc:
            raise BatchInputError(f"--scheduler {scheduler}: cannot connect ({exc}); expected 'local' "
                                  "or the address of a running Dask scheduler (tcp://host:8786)") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def warm_workers(client, workers: list[str], scenario: Scenario) -> None:
    """Kernels compiled (or loaded) on one worker first, then on the others.

    With a cold numba cache only that one compiles and writes it, and the rest load it instead
    of racing. A failure is logged, not raised: each scenario's prepare step warms its worker anyway.

    Parameters
    ----------
    client : distributed.Client
    workers : list of str
        Worker addresses.
    scenario : Scenario
        Any scenario of the batch (the kernels do not depend on which).
    """
    if not workers:
        return
    t0 = time.perf_counter()
    try:
        client.submit(warm_step, scenario, workers=workers[:1], allow_other_workers=False, pure=False).result()
        rest = [client.submit(warm_step, scenario, workers=[w], allow_other_workers=False, pure=False)
                for w in workers[1:]]
        client.gather(rest)
    except Exception as exc:  # not fatal: each scenario's prepare step warms its worker anyway
        log.warning("warming the kernels on the workers failed (%s); they will compile on first use", exc)
        return
    log.info("kernels ready on %d workers in %.1fs", len(workers), time.perf_counter() - t0)
