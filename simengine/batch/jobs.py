"""A batch's inputs: scenario files, folders and globs, sweep grids, and the ids they run under.

Nothing here simulates or writes: a bad input is a :class:`BatchInputError` before the batch
folder exists, and a scenario that does not load is a ``bad_input`` row later, not an error here.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ScenarioError
from ..scenario import Scenario, load_scenario


class BatchInputError(ValueError):
    """A batch that cannot start: the message names the option or path, the value and what was expected."""


@dataclass(frozen=True)
class Job:
    """One scenario of a batch: a file, with the overrides of a sweep point (empty otherwise).

    Attributes
    ----------
    scenario_id : str
        The scenario's name in the batch folder (``runs/<id>``, ``scenario=<id>``): safe and unique.
    file : str
        The scenario file (an absolute path).
    overrides : dict
        Dotted key path -> value, applied with :meth:`~simengine.scenario.Scenario.with_overrides`.
    """

    scenario_id: str
    file: str
    overrides: dict = field(default_factory=dict)

    def load(self) -> Scenario:
        """The validated :class:`~simengine.scenario.Scenario`; raises ScenarioError on bad input."""
        scenario = load_scenario(self.file)
        return scenario.with_overrides(self.overrides) if self.overrides else scenario


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_ID = 120


def safe_id(text: str) -> str:
    """A file-system- and Hive-partition-safe name: letters, digits, ``.``, ``_`` and ``-``.

    Long names keep their start and end in a hash, so they stay distinct and deterministic.

    Parameters
    ----------
    text : str
        Any name (a file stem, a sweep point's ``key-value`` list).

    Returns
    -------
    str
        At most 120 characters; ``"scenario"`` where nothing safe is left.
    """
    name = _UNSAFE.sub("_", text).strip("._") or "scenario"
    if len(name) > _MAX_ID:
        name = name[:_MAX_ID - 9] + "-" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return name


def _unique_ids(names: list[str]) -> list[str]:
    """Disambiguate equal ids in input order: ``x``, ``x-2``, ``x-3`` (case-insensitively)."""
    taken, out = set(), []
    for name in names:
        candidate, n = name, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{name}-{n}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Scenario files from FILES, folders (their ``*.toml``, sorted) and globs (sorted matches).

    A path that does not exist is kept: loading it later makes a ``bad_input`` row, so one
    mistyped name does not stop the batch. A folder or glob that matches nothing is an error.

    Parameters
    ----------
    inputs : list of str
        Files, folders and glob patterns, in the order given.

    Returns
    -------
    list of Path
        Each file once (the first time it is named), in input order.

    Raises
    ------
    BatchInputError
        A file that does not exist, a folder without ``*.toml`` files, or a glob that matches no file.
    """
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.toml") if p.is_file())
            if not found:
                raise BatchInputError(f"{item}: a folder without *.toml files; expected a folder of scenario files")
        elif glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                raise BatchInputError(f"{item}: the pattern matches no file; expected a glob of scenario files")
        elif not path.is_file():  # a typo in the command: nothing is written, the corrected command just runs
            raise BatchInputError(f"{item}: no such scenario file; expected a scenario file, a folder of them or "
                                  "a quoted glob")
        else:
            found = [path]
        files.extend(found)
    seen, out = set(), []
    for f in files:  # one file named twice (a folder and a glob) runs once
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def file_jobs(inputs: list[str]) -> list[Job]:
    """One job per scenario file of ``inputs`` (see :func:`expand_inputs`); ids are file stems.

    Parameters
    ----------
    inputs : list of str
        Files, folders and glob patterns.

    Returns
    -------
    list of Job
        In input order, without overrides; equal stems get ``-2``, ``-3``, ... in that order.
    """
    files = expand_inputs(inputs)
    ids = _unique_ids([safe_id(f.stem) for f in files])
    return [Job(i, str(f.resolve())) for i, f in zip(ids, files)]


def parse_set(text: str) -> tuple[str, list]:
    """``key=v1,v2,...`` → (key, values), the values read as TOML (``0.3``, ``2``, ``true``, ``"BB"``).

    A value that is not TOML (``BB``) is taken as text.

    Parameters
    ----------
    text : str
        One ``--set`` option.

    Returns
    -------
    (str, list)
        The dotted key path and its values, in the order given.

    Raises
    ------
    BatchInputError
        No ``=``, no key, or an empty value.
    """
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise BatchInputError(f"--set {text!r}: expected KEY=V1,V2,... (e.g. risk.correlation.global=0.2,0.35)")
    try:
        parsed = tomllib.loads(f"v = [{values}]")["v"]
    except tomllib.TOMLDecodeError:
        parsed = []
        for item in values.split(","):
            item = item.strip()
            try:
                parsed.append(tomllib.loads(f"v = {item}")["v"])
            except tomllib.TOMLDecodeError:
                parsed.append(item)
    if not parsed or any(v == "" for v in parsed):
        raise BatchInputError(f"--set {text!r}: an empty value; expected KEY=V1,V2,...")
    return key, parsed


def _show_value(value: Any) -> str:
    """A sweep value as it appears in a scenario id (TOML spelling of booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, sort_keys=True)


UNKNOWN_KEY = ("a known key", "a key path that exists")  # how a scenario error says a key does not exist


def check_sweep_keys(base, sets: list[str]) -> None:
    """Refuse a ``--set`` key the scenario does not have (a typo in the command, not a bad point).

    ``base`` is the loaded :class:`~simengine.scenario.Scenario`; a bad *value* is left to the
    points (each a ``bad_input`` row), an unknown *key* is a :class:`BatchInputError`.
    """
    for text in sets:
        key, values = parse_set(text)
        try:
            base.with_overrides({key: values[0]})
        except ScenarioError as exc:
            for e in getattr(exc, "errors", [exc]):
                if e.expected.startswith(UNKNOWN_KEY) and key.startswith(e.key_path):
                    raise BatchInputError(f"--set {key}: not a key of {base.source} ({e.key_path}: expected "
                                          f"{e.expected.split(' (set by')[0]})") from None


def sweep_jobs(file: str, sets: list[str]) -> list[Job]:
    """The grid of ``--set`` options over one scenario file: the Cartesian product in the order given.

    Each point is a job with its overrides; its id is ``<stem>__<key>-<value>__...`` made safe.

    Parameters
    ----------
    file : str
        The scenario file every point overrides.
    sets : list of str
        ``--set`` options (see :func:`parse_set`); each key at most once.

    Returns
    -------
    list of Job
        One per grid point, the last key varying fastest.

    Raises
    ------
    BatchInputError
        A malformed ``--set``, or one key given twice.
    """
    grid = [parse_set(s) for s in sets]
    keys = [k for k, _ in grid]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise BatchInputError(f"--set {repeated[0]}: given more than once; expected each key once, "
                              "with all its values after one =")
    path = Path(file)
    stem = path.stem
    names, points = [], []
    for values in itertools.product(*(v for _, v in grid)):
        point = dict(zip(keys, values))
        points.append(point)
        names.append(safe_id("__".join([stem, *(f"{k}-{_show_value(v)}" for k, v in point.items())])))
    return [Job(i, str(path.resolve()), p) for i, p in zip(_unique_ids(names), points)]


def default_out(inputs: list[str], kind: str = "batch") -> Path:
    """``results/<kind>-<name>``: the name of the first input (a folder's name, a file's stem,
    the folder a glob starts in).

    Parameters
    ----------
    inputs : list of str
        The batch's inputs (at least one).
    kind : str
        ``"batch"`` or ``"sweep"``.

    Returns
    -------
    Path
        Relative to the working directory.
    """
    first = inputs[0]
    path = Path(first)
    if glob.has_magic(first):
        fixed = [p for p in itertools.takewhile(lambda part: not glob.has_magic(part), path.parts)]
        name = Path(*fixed).name if fixed else "batch"
    else:
        name = path.name if path.is_dir() else path.stem
    return Path("results") / f"{kind}-{safe_id(name)}"
