"""Reading scenario files: TOML with its ``extends`` chain, and pool files (CSV or Parquet).

Nothing here validates beyond what reading needs; :class:`~simengine.scenario.Scenario` does that.
"""

from __future__ import annotations

import copy
import math
import os
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import NOT_SHOWN, ScenarioError
from .messages import did_you_mean
from .model import Licence

_POOL_SOURCES = ("licences", "file", "generate")
_SCENARIO_TABLES = ("extends", "deal", "pool", "risk", "structure", "simulation")
LIBRARY_MARKER = ".simengine-library"  # a folder holding this file is a scenario library root
ALLOW_ENV = "SIMENGINE_ALLOW_PATHS"  # more folders scenario files may reference (os.pathsep-separated)

# keys that say the same thing two ways: a variant naming one replaces the base's other
_ALTERNATIVES = {"rating": "pd_annual", "pd_annual": "rating"}


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k in _ALTERNATIVES:
            out.pop(_ALTERNATIVES[k], None)
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _decode_toml(path: Path, data: bytes) -> dict:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:  # the position, never the bytes: it may be any file
        line = data[:exc.start].count(b"\n") + 1
        raise ScenarioError(path, f"line {line}", NOT_SHOWN, "UTF-8 text (TOML is UTF-8)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
        at = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", reason)
        if at is None:
            raise ScenarioError(path, "<end of file>" if "end of document" in reason else "", NOT_SHOWN,
                                f"valid TOML ({reason})") from None
        line, column = int(at.group(1)), int(at.group(2))
        # the position, never the line itself: a file that is not TOML may hold anything (a password)
        raise ScenarioError(path, f"line {line}, column {column}", NOT_SHOWN,
                            f"valid TOML ({reason[:at.start()]})") from None


def _key_origins(raw: dict, file: str, prefix: tuple = (), out: dict | None = None) -> dict:
    """``{key parts: file}`` for every key of every table in ``raw`` (lists are whole values)."""
    out = {} if out is None else out
    for k, v in raw.items():
        out[(*prefix, k)] = file
        if isinstance(v, dict):
            _key_origins(v, file, (*prefix, k), out)
    return out


def allowed_roots(scenario: Path, allow_paths=()) -> tuple[Path, ...]:
    """Folders whose files a scenario may reference (``extends``, ``pool.file``).

    Its own folder tree; the scenario library it is in (the nearest folder above it that holds a
    ``.simengine-library`` file, as ``scenarios/`` does); the folders given (``--allow-path``) and
    those in the environment variable ``SIMENGINE_ALLOW_PATHS``.
    """
    roots = [scenario.parent]
    library = next((folder for folder in scenario.parents if (folder / LIBRARY_MARKER).is_file()), None)
    if library is not None:
        roots.append(library)
    extra = [*allow_paths, *(p for p in os.environ.get(ALLOW_ENV, "").split(os.pathsep) if p)]
    return tuple(roots + [Path(p).resolve() for p in extra])


def check_inside(target: Path, roots: tuple[Path, ...], file: Path, key: str, written) -> None:
    """Refuse a referenced file outside ``roots`` (see :func:`allowed_roots`); symlinks are followed."""
    if not any(target.is_relative_to(root) for root in roots):
        raise ScenarioError(file, key, written,
                            f"a file inside {roots[0]} (the scenario's folder tree) or its scenario library, or in "
                            f"a folder allowed by --allow-path or {ALLOW_ENV} (it resolves to {target})")


def read_toml(path: Path, chain: tuple[Path, ...] = (), written: str | None = None,
              roots: tuple[Path, ...] | None = None) -> tuple[dict, dict]:
    """A TOML file with its ``extends`` chain merged, and the file each key came from.

    Tables merge key by key; a list (tranches, licences, triggers) is replaced whole; a variant
    that names a pool source (``licences``, ``file`` or ``generate``) replaces the base's pool. A
    pool file path is relative to the file that names it.

    Parameters
    ----------
    path : pathlib.Path
        The scenario file, resolved.
    chain, written : optional
        For the recursion: the files that extend ``path``, and the extends value that named it.
    roots : tuple of pathlib.Path, optional
        Folders referenced files must be in (default: :func:`allowed_roots` of ``path``).

    Returns
    -------
    raw : dict
        The merged scenario (``extends`` kept, pool file paths absolute).
    origins : dict
        ``{key parts: file}`` for every key of every table (a variant's keys override its
        base's), so an error in a key the base set names the base file.
    """
    if path in chain:
        cycle = " -> ".join(p.name for p in (*chain, path))
        raise ScenarioError(chain[-1], "extends", written,
                            f"a base scenario that does not extend back (cycle: {cycle})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        what = ("an existing scenario file" if isinstance(exc, FileNotFoundError)
                else f"a readable scenario file ({exc.strerror})")
        if chain:  # the file that names it is the one to fix
            raise ScenarioError(chain[-1], "extends", written, f"{what} (looked for {path})") from None
        raise ScenarioError(path, "", str(path), what) from None
    raw = _decode_toml(path, data)
    if chain and not any(k in raw for k in _SCENARIO_TABLES):  # say so without showing what it holds
        raise ScenarioError(chain[-1], "extends", written,
                            f"a scenario file (one with a {', '.join(_SCENARIO_TABLES[1:])} table); {path} has none")
    roots = allowed_roots(path) if roots is None else roots
    pool = raw.get("pool")
    if isinstance(pool, dict) and isinstance(pool.get("file"), str):
        target = (path.parent / pool["file"]).resolve()  # relative to the file that says it
        check_inside(target, roots, path, "pool.file", pool["file"])
        pool["file"] = str(target)
    parent = raw.get("extends")
    if parent is None:
        return raw, _key_origins(raw, str(path))
    if not isinstance(parent, str):
        raise ScenarioError(path, "extends", parent, "a path to the base scenario (text, relative to this file)")
    target = (path.parent / parent).resolve()
    check_inside(target, roots, path, "extends", parent)
    base, origins = read_toml(target, (*chain, path), parent, roots)
    base.pop("extends", None)
    if isinstance(pool, dict) and isinstance(base.get("pool"), dict) and any(k in pool for k in _POOL_SOURCES):
        for k in _POOL_SOURCES:  # a variant that names its own pool replaces the base's pool
            base["pool"].pop(k, None)
    merged = _deep_merge(base, {k: v for k, v in raw.items() if k != "extends"})
    merged["extends"] = parent
    return merged, _key_origins(raw, str(path), (), origins)


def read_pool_file(file: str, source: str) -> list[dict]:
    """The rows of a CSV or Parquet pool file, as dictionaries of licence fields.

    Parameters
    ----------
    file : str
        The pool file's path.
    source : str
        The scenario file that names it (where a missing or unreadable file is reported).

    Returns
    -------
    list of dict
        One dictionary a row, empty cells left out.
    """
    path = Path(file)
    if not path.is_file():
        raise ScenarioError(source, "pool.file", file, "an existing CSV or Parquet file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ScenarioError(source, "pool.file", file, "a .csv or .parquet file")
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:  # text cells, parsed by the schema like TOML values (a bad cell names its line)
            frame = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except Exception as exc:  # a malformed file is bad input, not a crash
        raise ScenarioError(source, "pool.file", file, f"a readable table ({exc})") from None
    columns = [str(c) for c in frame.columns]
    unknown = [c for c in columns if c not in Licence.model_fields]
    if len(unknown) == len(columns):  # not a pool file: its header is not ours to show
        raise ScenarioError(source, "pool.file", file, f"a pool file (a table with licence columns such as id and "
                            f"royalty); none of its {len(columns)} columns is a licence field")
    if unknown:
        raise ScenarioError(file, "columns", unknown, f"licence fields only: {', '.join(Licence.model_fields)}"
                            f"{did_you_mean(unknown[0], Licence.model_fields)}")
    for required in ("id", "royalty"):
        if required not in columns:
            raise ScenarioError(file, "columns", columns, f"a column {required!r} (every licence needs one)")
    if frame.empty:
        raise ScenarioError(file, "rows", 0, "at least one licence row")
    rows = []
    for record in frame.to_dict(orient="records"):
        row = {}
        for k, v in record.items():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            row[k] = v.item() if isinstance(v, np.generic) else v
        for k in ("start_period", "end_period", "expiry_period"):
            if isinstance(row.get(k), float) and row[k].is_integer():
                row[k] = int(row[k])
        if "id" in row:
            row["id"] = str(row["id"])
        rows.append(row)
    return rows
