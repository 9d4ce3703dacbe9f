"""Run folders (SPEC §5): writing one, and :class:`RunFolder`, the one reader of them (``plot``,
``batch`` and ``report`` read run folders through it)."""

from __future__ import annotations

import json
import time
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import ratings
from .._io import PROVENANCE_KEY, atomic_json, atomic_parquet, json_default

MANIFEST = "manifest.json"
SMALL_TABLES = ("summary", "pool_summary", "channel_attribution", "cashflows", "worst_paths", "loss_exceedance",
                "rating_levels")
PATH_TABLES = ("tranche_losses", "pool_paths")


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
    frames = {"summary": result.summary, "pool_summary": pd.DataFrame([result.pool_summary]),
              "channel_attribution": result.channel_attribution, "cashflows": result.cashflows,
              "worst_paths": result.worst_paths, "loss_exceedance": result.exceedance_table,
              "rating_levels": result.rating_levels}
    for name in SMALL_TABLES:
        table = pa.Table.from_pandas(frames[name], preserve_index=False)
        atomic_parquet(out / f"{name}.parquet", [with_field_metadata(table, ratings.column_metadata)], meta)
    for folder in PATH_TABLES:
        atomic_parquet(out / f"{folder}.parquet",
                       (pq.read_table(result.spool / folder / p) for p in result.parts), meta)
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

    def table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """A table of the folder (``summary``, ``cashflows``, ``tranche_losses``, ...) as a DataFrame."""
        return pq.read_table(self.path / f"{name}.parquet", columns=columns).to_pandas()

    def arrow(self, name: str) -> pa.Table:
        """A table as written (with its provenance in the schema metadata)."""
        return pq.read_table(self.path / f"{name}.parquet")

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
        meta = pq.read_schema(self.path / "summary.parquet").metadata or {}
        return json.loads(meta.get(PROVENANCE_KEY, b"{}"))

    def exceedance_curves(self) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """{(tranche, basis): (x, P(L > x), standard error)} from ``loss_exceedance.parquet``."""
        table = self.table("loss_exceedance")
        return {(t, b): (g["loss_fraction"].to_numpy(), g["probability"].to_numpy(), g["se"].to_numpy())
                for (t, b), g in table.groupby(["tranche", "basis"], sort=False)}
