"""Run folders (SPEC §5): writing one, and :class:`RunFolder`, the one reader of them (``plot``,
``batch`` and ``report`` read run folders through it)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import ratings
from .._io import PROVENANCE_KEY, atomic_json, atomic_parquet, exchange, json_default, pid_alive
from .._jit import num_threads
from ..scenario import Scenario

MANIFEST = "manifest.json"
BATCH_MANIFEST = "batch_manifest.json"
SMALL_TABLES = ("summary", "pool_summary", "channel_attribution", "cashflows", "worst_paths", "loss_exceedance",
                "rating_levels")
PATH_TABLES = ("tranche_losses", "pool_paths")
PATH_ROW_GROUP_ROWS = 1 << 17  # per-path tables: row groups of at least this many rows, whatever the chunk


def path_table_options(schema: pa.Schema) -> dict:
    """Parquet writer settings of the per-path tables.

    Dictionary pages only where values repeat (counts, periods, the dictionary-typed tranche and
    grade columns): on columns of distinct floats pyarrow builds a dictionary, finds it too large
    and falls back, which doubled the cost of the write for files 7-10% smaller. The ascending
    path index is delta-encoded (a fifth of the file's bytes otherwise). Values and arrow types
    are unchanged; only the bytes on disk differ.
    """
    repeated = [f.name for f in schema if pa.types.is_dictionary(f.type)
                or (pa.types.is_integer(f.type) and f.name != "path")]
    return {"use_dictionary": repeated,
            "column_encoding": {"path": "DELTA_BINARY_PACKED"} if "path" in schema.names else None}


def write_run(result, out: Path) -> Path:
    """Write ``result``'s run folder to ``out``: every table, then ``manifest.json`` with status ok.

    Each file appears complete or not at all; the manifest says ``"writing"`` until the last
    table is in place. ``result`` is a :class:`~simengine.results.SimulationResult`.
    """
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    provenance = result.provenance()
    atomic_json(out / MANIFEST, {**provenance, "status": "writing"})
    meta = {PROVENANCE_KEY: json.dumps(provenance, default=json_default).encode()}
    frames = {"summary": lambda: result.summary, "pool_summary": lambda: pd.DataFrame([result.pool_summary]),
              "channel_attribution": lambda: result.channel_attribution, "cashflows": lambda: result.cashflows,
              "worst_paths": lambda: result.worst_paths, "loss_exceedance": lambda: result.exceedance_table,
              "rating_levels": lambda: result.rating_levels}
    for name in SMALL_TABLES:
        frame = frames[name]()  # computed here, timed under its own phase
        with result.clock("write_tables"):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            atomic_parquet(out / f"{name}.parquet", [with_field_metadata(table, ratings.column_metadata)], meta)
    with result.clock("write_path_tables"):  # the two files at once (pyarrow encodes without the GIL)
        def write_path_table(folder: str) -> None:
            atomic_parquet(out / f"{folder}.parquet", result.columns.tables(folder), meta, path_table_options,
                           PATH_ROW_GROUP_ROWS)

        with ThreadPoolExecutor(max(1, min(len(PATH_TABLES), num_threads()))) as pool:
            list(pool.map(write_path_table, PATH_TABLES))
    atomic_json(out / MANIFEST, result.manifest("ok", {"write_seconds": time.perf_counter() - start}))
    return out


def with_field_metadata(table: pa.Table, metadata_of) -> pa.Table:
    """``table`` with each column's field metadata from ``metadata_of(name)`` (None: left alone);
    the provenance of the rating columns travels with the column itself."""
    fields = []
    for field in table.schema:
        extra = metadata_of(field.name)
        fields.append(field.with_metadata({**(field.metadata or {}), **extra}) if extra else field)
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


class RunFolderError(ValueError):
    """A folder that is not a finished run folder: the message says which and why."""


# siblings of a run folder while a run writes it: .<name>.staging-<pid>-<hex> holds the new run
# until it is complete; .<name>.old-<pid>-<hex> holds the old one for the instant of a two-step swap
_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>staging|old)-(?P<pid>\d+)-[0-9a-f]+$")


def check_target(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that a new run must not replace; raises :class:`RunFolderError`.

    A file; a folder that is neither empty nor a run folder; a finished run without ``overwrite``.
    A run folder whose manifest does not say ``ok`` (a run that failed) may be replaced.
    """
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"{out}: --out is a file; expected a folder")
    if out.is_dir() and os.path.ismount(out):  # a run replaces its folder by renaming: not a mount point
        raise RunFolderError(f"{out}: --out is a mount point; expected a folder inside it")
    if not out.is_dir() or not any(out.iterdir()):
        return
    manifest = RunFolder.read_manifest(out)
    if manifest is None:
        raise RunFolderError(f"{out}: --out holds files but no simengine run; expected a new or empty folder")
    if manifest.get("status") == "ok" and not overwrite:
        raise RunFolderError(f"{out}: --out holds a finished run (seed {manifest.get('seed')}, "
                             f"{manifest.get('paths')} paths); expected another --out, or --overwrite to replace it "
                             "once the new run is complete")


def clean_stale(out: Path) -> list[Path]:
    """Remove what killed runs left beside ``out`` (their staging folders), and put back an old run
    a two-step swap had moved aside when it was killed. Returns what was removed or restored."""
    done = []
    parent = out.parent
    if not parent.is_dir():
        return done
    for sibling in sorted(parent.iterdir()):
        m = _SIBLING.match(sibling.name)
        if m is None or m["name"] != out.name or pid_alive(int(m["pid"])):
            continue
        if m["kind"] == "old" and not out.exists():
            os.replace(sibling, out)  # the swap was cut between its two renames: the old run returns
        else:
            shutil.rmtree(sibling, ignore_errors=True)
        done.append(sibling)
    return done


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A folder beside ``out`` to write a new run into; swapped in for ``out`` only when the block
    ends without an exception (atomically where the system can exchange two paths), removed
    otherwise. So ``out`` holds the old run or the whole new one, never a mix, whatever happens.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    if out.exists():  # it is renamed away at the end: find out now that it can be, not after the run
        probe = out / f".{stage.name}.probe"
        try:
            probe.touch()
            probe.unlink()
        except OSError:
            shutil.rmtree(stage, ignore_errors=True)
            raise
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if not out.exists():
        os.replace(stage, out)
    elif exchange(stage, out):
        shutil.rmtree(stage, ignore_errors=True)  # it holds the old run now
    else:  # two renames; clean_stale puts the old run back if a kill falls between them
        aside = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.replace(out, aside)
        os.replace(stage, out)
        shutil.rmtree(aside, ignore_errors=True)


class RunFolder:
    """A finished run folder, read back.

    Parameters
    ----------
    path : str or Path
        The folder ``simengine run`` (or a batch, under ``runs/<id>``) wrote.
    require_ok : bool
        Refuse a folder whose manifest does not say ``"ok"`` (a run that failed or is still writing).

    Raises
    ------
    RunFolderError
        No readable manifest, or (with ``require_ok``) a status other than ``ok``.
    """

    def __init__(self, path: str | Path, require_ok: bool = True):
        self.path = Path(path)
        try:
            self.manifest: dict = json.loads((self.path / MANIFEST).read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError) as exc:
            raise RunFolderError(f"{self.path}: not a simengine run folder ({exc})") from None
        if require_ok and self.status != "ok":
            raise RunFolderError(f"{self.path}: run status {self.status!r}, expected 'ok'")

    @staticmethod
    def read_manifest(path: str | Path) -> dict | None:
        """The manifest of ``path``, or None where there is none (or it is unreadable)."""
        try:
            return json.loads((Path(path) / MANIFEST).read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None

    @property
    def status(self) -> str | None:
        """The manifest's status: ``ok``, ``writing`` or ``failed``."""
        return self.manifest.get("status")

    @property
    def scenario_name(self) -> str:
        """The deal's name."""
        return self.manifest["scenario"]

    @property
    def paths(self) -> int:
        """Paths simulated."""
        return int(self.manifest["paths"])

    @property
    def variance_reduction(self) -> str:
        """The sampling measure's name (``none``, ``importance``, ...)."""
        return self.manifest.get("variance_reduction", "none")

    def tables(self) -> list[str]:
        """Names of the Parquet tables in the folder (``summary``, ``cashflows``, ...), sorted.

        Hidden temporary files of a writer that was killed (``.<name>.<hex>.partial``) are not tables.
        """
        return sorted(p.stem for p in self.path.glob("*.parquet") if not p.name.startswith("."))

    def has(self, name: str) -> bool:
        """Whether the folder holds table ``name``."""
        return (self.path / f"{name}.parquet").is_file()

    def columns(self, name: str) -> list[str]:
        """Column names of table ``name``, read from its schema (no data is read)."""
        return list(self._parquet(name, pq.read_schema).names)

    def num_rows(self, name: str) -> int:
        """Rows of table ``name``, from its footer (no data is read)."""
        return int(self._parquet(name, pq.read_metadata).num_rows)

    def field_metadata(self, name: str) -> dict[str, dict[str, str]]:
        """{column: {key: value}} of the Parquet field metadata of table ``name`` (descriptions,
        sources a writer attached to a column); columns without metadata are left out."""
        schema = self._parquet(name, pq.read_schema)
        return {f.name: {k.decode(errors="replace"): v.decode(errors="replace") for k, v in f.metadata.items()}
                for f in schema if f.metadata}

    @property
    def seed(self) -> int:
        """The run's seed."""
        return int(self.manifest["seed"])

    @property
    def chunk_paths(self) -> int:
        """Paths per chunk."""
        return int(self.manifest["chunk_paths"])

    @property
    def sampling(self) -> dict:
        """The sampling measure the paths were drawn under (global_shift, chi2_scale, antithetic)."""
        return dict(self.manifest["sampling"])

    def scenario(self) -> Scenario:
        """The run's scenario, rebuilt from the manifest's resolved scenario (every default filled in)."""
        source = self.manifest.get("scenario_file", str(self.path))
        return Scenario.from_dict(self.manifest["resolved_scenario"], source)

    def table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """A table of the folder (``summary``, ``cashflows``, ``tranche_losses``, ...) as a DataFrame."""
        return self._parquet(name, pq.read_table, columns=columns).to_pandas()

    def arrow(self, name: str) -> pa.Table:
        """A table as written (with its provenance in the schema metadata)."""
        return self._parquet(name, pq.read_table)

    def _parquet(self, name: str, read, **kw):
        """``read(path, **kw)`` of table ``name``; a missing or unreadable file is a RunFolderError
        naming it (a folder someone edited by hand), not a pyarrow traceback."""
        path = self.path / f"{name}.parquet"
        try:
            return read(path, **kw)
        except (OSError, pa.ArrowException) as exc:
            raise RunFolderError(f"{path}: cannot be read as the run's {name} table ({str(exc).splitlines()[0]}); "
                                 "expected the Parquet file a finished run wrote") from None

    @cached_property
    def summary(self) -> pd.DataFrame:
        """``summary.parquet``: one row per tranche (SPEC §6)."""
        return self.table("summary")

    @cached_property
    def pool_summary(self) -> dict:
        """``pool_summary.parquet`` as a dict."""
        return self.table("pool_summary").to_dict("records")[0]

    def provenance(self) -> dict:
        """The provenance a table carries in its schema metadata (that of ``summary.parquet``)."""
        meta = self._parquet("summary", pq.read_schema).metadata or {}
        return json.loads(meta.get(PROVENANCE_KEY, b"{}"))

    def exceedance_curves(self) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """{(tranche, basis): (x, P(L > x), standard error)} from ``loss_exceedance.parquet``."""
        table = self.table("loss_exceedance")
        return {(t, b): (g["loss_fraction"].to_numpy(), g["probability"].to_numpy(), g["se"].to_numpy())
                for (t, b), g in table.groupby(["tranche", "basis"], sort=False)}


class BatchFolder:
    """A batch folder (``simengine batch`` / ``sweep``), read back: its manifest and its run folders.

    Parameters
    ----------
    path : str or Path
        The folder holding ``batch_manifest.json``, ``runs/<id>/`` and ``combined/``.

    Raises
    ------
    RunFolderError
        No readable ``batch_manifest.json``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.manifest: dict = json.loads((self.path / BATCH_MANIFEST).read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError) as exc:
            raise RunFolderError(f"{self.path}: not a simengine batch folder ({exc})") from None

    @staticmethod
    def is_batch(path: str | Path) -> bool:
        """Whether ``path`` holds a batch manifest."""
        return (Path(path) / BATCH_MANIFEST).is_file()

    @property
    def batch_id(self) -> str:
        """The batch's id (the ``batch=`` partition of its combined dataset)."""
        return str(self.manifest.get("batch", self.path.name))

    @property
    def rows(self) -> list[dict]:
        """One dict per scenario: ``scenario_id``, ``status``, ``error``, file, overrides, paths, seed, ..."""
        return list(self.manifest.get("scenarios", []))

    def run_path(self, scenario_id: str) -> Path:
        """The run folder of a scenario: ``runs/<id>`` under the batch folder."""
        return self.path / "runs" / scenario_id

    def run(self, scenario_id: str) -> RunFolder:
        """The finished run folder of a scenario (:class:`RunFolderError` if it is not finished)."""
        return RunFolder(self.run_path(scenario_id))

def write_table(out: Path, name: str, frame: pd.DataFrame, provenance: dict) -> Path:
    """Write ``frame`` as ``out/<name>.parquet`` with ``provenance`` in its schema metadata (key
    ``simengine``), whole or not at all; returns the file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {PROVENANCE_KEY: json.dumps(provenance, default=json_default).encode()}
    path = out / f"{name}.parquet"
    atomic_parquet(path, [pa.Table.from_pandas(frame, preserve_index=False)], meta)
    return path
