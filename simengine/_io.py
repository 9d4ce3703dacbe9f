"""Atomic writes and provenance: the one home for write-to-temp-then-rename.

Every file a run or a batch writes goes through here, so a process killed at any moment
(SIGKILL included) leaves either the old file, the new one, or a hidden ``.<name>.<hex>.partial``
that :func:`clear_partials` removes; never a file that looks complete and is not.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import platform
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ._version import __version__

PROVENANCE_KEY = b"simengine"  # Parquet schema-metadata key of a run's provenance


def partial_name(path: Path) -> Path:
    """The hidden temporary sibling a writer fills before renaming it to ``path``."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")


def json_default(x):
    """JSON for numpy scalars and non-finite floats (``null``); text for anything else."""
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (int, float)):
        return x
    return str(x)


def atomic_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all."""
    tmp = partial_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON to ``path`` whole or not at all."""
    atomic_bytes(path, json.dumps(data, indent=2, default=json_default).encode())


def atomic_parquet(path: Path, tables: Iterable, meta: dict[bytes, bytes], options=None,
                   row_group_rows: int | None = None) -> None:
    """Write the pyarrow tables (one schema) as one Parquet file, whole or not at all.

    ``meta`` is added to the schema metadata (e.g. ``{PROVENANCE_KEY: json}``); the tables may be
    a generator, so a file larger than memory streams through one row group per table, or, with
    ``row_group_rows``, per run of consecutive tables that together reach that many rows (small
    chunks do not make a file of tiny row groups). ``options(schema)`` returns keyword arguments
    for ``pyarrow.parquet.ParquetWriter`` (encodings, dictionaries); None: pyarrow's defaults.
    """
    import pyarrow.parquet as pq

    tmp = partial_name(path)
    writer = None
    try:
        for table in (tables if row_group_rows is None else _coalesced(tables, row_group_rows)):
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, **(options(table.schema) if options else {}))
            writer.write_table(table, row_group_size=max(table.num_rows, 1) if row_group_rows else None)
        writer.close()
        writer = None
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)


def atomic_arrow(path: Path, table) -> None:
    """Write a pyarrow table as an uncompressed Arrow IPC file, whole or not at all: the spool's
    format, written at memory speed and read back by memory map without a copy (:func:`read_arrow`)."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    tmp = partial_name(path)
    try:
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_arrow(path: Path, columns: list[str] | None = None):
    """An Arrow IPC file written by :func:`atomic_arrow` as a pyarrow table (``columns`` only, if
    given), memory-mapped: nothing is copied, and the map outlives the file's deletion."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path)) as source:
        table = ipc.open_file(source).read_all()
    return table.select(columns) if columns is not None else table


def _coalesced(tables: Iterable, rows: int):
    """The tables, consecutive ones concatenated (without copying) until each group has at least
    ``rows`` rows (the last may have fewer)."""
    import pyarrow as pa

    group, n = [], 0
    for table in tables:
        group.append(table)
        n += table.num_rows
        if n >= rows:
            yield pa.concat_tables(group)
            group, n = [], 0
    if group:
        yield pa.concat_tables(group)


def atomic_figure(path: Path, figure, fmt: str | None = None, dpi: int = 120) -> None:
    """Save a matplotlib Figure to ``path`` (format from the suffix unless given), whole or not at all."""
    tmp = partial_name(path)
    try:
        figure.savefig(tmp, dpi=dpi, format=fmt or path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def clear_partials(folder: Path) -> None:
    """Remove the temporary files a killed writer left in ``folder`` (``.<name>.<hex>.partial``)."""
    if folder.is_dir():
        for stale in folder.glob(".*.partial"):
            stale.unlink(missing_ok=True)


def versions() -> dict:
    """Versions of simengine, Python and the libraries that decide a run's numbers."""
    import numba
    import pandas
    import pyarrow
    import scipy

    return {"simengine": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "scipy": scipy.__version__, "pandas": pandas.__version__,
            "pyarrow": pyarrow.__version__}


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system cannot (then nothing happened)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a left-over of a dead one may be cleaned)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
