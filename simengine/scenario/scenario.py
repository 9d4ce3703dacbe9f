"""The validated, immutable :class:`Scenario` and :func:`load_scenario`."""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ScenarioError, ScenarioErrors
from .checks import check_scenario, scenario_warnings
from .keys import key_parts, set_dotted
from .load import allowed_roots, read_pool_file, read_toml
from .messages import errors_from_pydantic, path_text, row_label, unique_errors
from .model import Licence, ScenarioModel

_MAX_POOL_ERRORS = 20  # reading a pool stops once this many rows are bad


class Scenario:
    """A validated, immutable scenario.

    Build with :func:`load_scenario`, :meth:`from_dict` or :meth:`with_overrides`. ``raw`` is
    the resolved dictionary (``extends`` merged, pool file paths absolute); ``model`` the
    pydantic tree; ``licences`` the expanded pool (a tuple of :class:`Licence`).
    """

    __slots__ = ("model", "raw", "source", "licences", "__dict__")

    def __init__(self, raw: dict, source: str = "<dict>", *, origins: dict | None = None):
        self.source = str(source)
        self.raw = copy.deepcopy(raw)
        self._origins = origins or {}  # key parts -> the file (of an extends chain) that set them
        try:
            try:
                model = ScenarioModel.model_validate(self.raw)
            except ValidationError as exc:
                raise ScenarioErrors(errors_from_pydantic(self.source, exc)) from None
            self.model = model
            self.licences = self._expand_pool(model)
            check_scenario(model, self.licences, self.source)
        except ScenarioError as exc:
            if not self._origins:
                raise
            raise self._in_origin_files(exc) from None

    def _in_origin_files(self, exc: ScenarioError) -> ScenarioError:
        """Errors re-pointed from the variant to the base file that holds the bad key."""
        out = []
        for e in getattr(exc, "errors", [exc]):
            if e.file == self.source:
                parts = key_parts(e.key_path)
                while parts and parts not in self._origins:
                    parts = parts[:-1]
                file = self._origins.get(parts, self.source)
                if file != self.source:
                    e = ScenarioError(file, e.key_path, e.value,
                                      f"{e.expected} (read through extends from {self.source})")
            out.append(e)
        return ScenarioErrors(out)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict, source: str = "<dict>") -> Scenario:
        """A scenario from a dictionary shaped like the TOML file (``extends`` is not followed)."""
        return cls(raw, source)

    def with_overrides(self, overrides: dict[str, Any]) -> Scenario:
        """A new scenario with keys replaced, e.g. ``{"risk.correlation.global": 0.3}``.

        A key is a dotted path; list items by index (``structure.tranches.0.balance`` or
        ``structure.tranches[0].balance``). A bad value is a :class:`ScenarioError` whose
        expectation says which override set it.
        """
        raw = copy.deepcopy(self.raw)
        for key, value in overrides.items():
            try:
                set_dotted(raw, key, value)
            except (KeyError, IndexError, ValueError, TypeError, AttributeError):
                raise ScenarioError(self.source, key, value,
                                    "a key path that exists in the scenario (override)") from None
        origins = dict(self._origins)
        for key in overrides:  # an overridden key comes from the override, not from a base file
            origins[key_parts(key)] = self.source
        try:
            return Scenario(raw, self.source, origins=origins)
        except ScenarioError as exc:
            raise _mark_overrides(exc, overrides) from None

    # -- derived --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The deal's name."""
        return self.model.deal.name

    @property
    def periods(self) -> int:
        """Payment periods from the first payment date to the legal final."""
        return self.model.deal.periods

    @cached_property
    def warnings(self) -> list[str]:
        """Problems that may be legitimate (e.g. notes above the pool's scheduled royalties)."""
        return scenario_warnings(self.model, self.licences)

    @cached_property
    def file_hash(self) -> str:
        """sha256 of the resolved scenario (and its pool file's bytes)."""
        h = hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode())
        if self.model.pool.file:
            h.update(Path(self.model.pool.file).read_bytes())
        return h.hexdigest()

    def resolved(self) -> dict:
        """The validated scenario as plain JSON-able data (defaults filled in)."""
        return json.loads(self.model.model_dump_json(by_alias=True))

    def __repr__(self) -> str:
        return f"Scenario({self.name!r}, licences={len(self.licences)}, source={self.source!r})"

    # -- the pool -------------------------------------------------------------------------------
    def _expand_pool(self, m: ScenarioModel) -> tuple[Licence, ...]:
        pool, f = m.pool, self.source
        if pool.licences is not None:
            return tuple(pool.licences)
        if pool.generate is not None:
            rows = pool.generate.expand()
            where = f

            def place(i: int, parts: tuple) -> str:
                return path_text(("pool", "generate", *parts))

            def note(i: int) -> str:
                return f" (generated licence {rows[i]['id']})"
        else:
            rows = read_pool_file(pool.file, f)
            where = pool.file

            def place(i: int, parts: tuple) -> str:
                return f"{row_label(where, i)}, column {path_text(parts)}" if parts else row_label(where, i)

            def note(i: int) -> str:
                return ""
        out, errors = [], []
        for i, row in enumerate(rows):
            try:
                out.append(Licence.model_validate(row))
            except ValidationError as exc:
                errors.extend(errors_from_pydantic(where, exc, Licence, lambda parts: place(i, parts), note(i)))  # noqa: B023 (called at once)
                if len(errors) >= _MAX_POOL_ERRORS:
                    break
        if errors:
            raise ScenarioErrors(unique_errors(errors))
        return tuple(out)


def _mark_overrides(exc: ScenarioError, overrides: dict[str, Any]) -> ScenarioError:
    """The same errors, each that an override caused saying so."""
    keys = [path_text(key_parts(k)) for k in overrides]

    def caused(path: str, key: str) -> bool:
        return (path == key or path.startswith((key + ".", key + "["))
                or key.startswith((path + ".", path + "[")) or not path)

    out = []
    for e in getattr(exc, "errors", [exc]):
        by = [k for k, norm in zip(overrides, keys) if caused(e.key_path, norm)]
        note = f" (set by with_overrides {', '.join(map(repr, by))})" if by else ""
        out.append(ScenarioError(e.file, e.key_path, e.value, e.expected + note))
    return ScenarioErrors(out)


def load_scenario(path: str | Path, allow_paths=()) -> Scenario:
    """Read a TOML scenario (following ``extends``) and validate it.

    Parameters
    ----------
    path : str or pathlib.Path
        The scenario file.
    allow_paths : sequence of str or pathlib.Path
        Folders outside the scenario's folder tree that ``extends`` and ``pool.file`` may name
        (see :func:`simengine.scenario.load.allowed_roots`).

    Returns
    -------
    Scenario

    Raises
    ------
    ScenarioError
        Naming the file, key path, value and what was expected, for every problem found.
    """
    path = Path(path).resolve()
    raw, origins = read_toml(path, roots=allowed_roots(path, allow_paths))
    return Scenario(raw, str(path), origins=origins)
