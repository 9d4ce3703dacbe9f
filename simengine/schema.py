"""Scenario schema: TOML/dict → validated, immutable :class:`Scenario`.

Validation only; nothing here knows about arrays or kernels (that is :mod:`simengine.plan`).
Periods are numbered from 1 (the first payment date) to ``term_years * periods_per_year``
(the legal final) and ranges of periods are inclusive.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import re
import tomllib
from datetime import date
from functools import cached_property
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .errors import MISSING, ScenarioError, ScenarioErrors
from .ratings import rating_symbols, rating_to_pd

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Loading = Annotated[float, Field(ge=-1.0, le=1.0)]


def _problem(key: str, value, expected: str) -> PydanticCustomError:
    """An error of a whole-table check that points at one key (``""``: the table itself)."""
    return PydanticCustomError("scenario_field", "{expected}", {"key": key, "value": value, "expected": expected})


def _has_bool(value) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, list):
        return any(_has_bool(v) for v in value)
    if isinstance(value, dict):
        return any(_has_bool(v) for v in value.values())
    return False


def _holds_bool_or_model(annotation) -> bool:
    """Whether a field's type is bool or contains a table (whose own fields are checked there)."""
    if annotation is bool or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return True
    return any(_holds_bool_or_model(a) for a in get_args(annotation))


class _Model(BaseModel):
    # inf and nan are valid TOML floats but never valid inputs here
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value, info):
        """``true``/``false`` are not numbers or names (pydantic would read ``true`` as 1.0)."""
        if _has_bool(value) and not _holds_bool_or_model(cls.model_fields[info.field_name].annotation):
            raise PydanticCustomError("bool_not_allowed", "a number or text, not true/false")
        return value


# ---------------------------------------------------------------------------------------- deal
class Deal(_Model):
    name: str
    currency: str = "CNY"
    periods_per_year: Literal[1, 2, 4, 12] = 4
    term_years: Annotated[float, Field(gt=0.0, le=100.0)]
    discount_rate: Annotated[float, Field(gt=-0.5, lt=1.0)] = 0.0
    closing_date: date | None = None

    @property
    def periods(self) -> int:
        return int(round(self.term_years * self.periods_per_year))


# ---------------------------------------------------------------------------------------- pool
class Licence(_Model):
    id: str
    licensee: str | None = None
    industry: str = "default"
    region: str = "default"
    technology: str = "default"
    ip_type: Literal["patent", "trademark", "copyright"] = "patent"
    royalty: NonNegative
    royalty_type: Literal["fixed", "running"] = "fixed"
    minimum_royalty: NonNegative = 0.0
    start_period: Annotated[int, Field(ge=1)] = 1
    end_period: Annotated[int, Field(ge=1)] | None = None
    expiry_period: Annotated[int, Field(ge=1)] | None = None
    pd_annual: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    rating: str | None = None
    recovery: Fraction | None = None

    @model_validator(mode="after")
    def _credit(self):
        _one_credit(self, f"licence {self.id!r}")
        if self.end_period is not None and self.end_period < self.start_period:
            raise _problem("end_period", self.end_period,
                           f"a period >= start_period ({self.start_period}) (licence {self.id!r})")
        return self


def _one_credit(m, who: str) -> None:
    if m.pd_annual is not None and m.rating is not None:
        raise _problem("", {"pd_annual": m.pd_annual, "rating": m.rating},
                       f"exactly one of pd_annual or rating, not both ({who})")
    if m.pd_annual is None and m.rating is None:
        raise _problem("", {"pd_annual": MISSING, "rating": MISSING},
                       f"exactly one of pd_annual or rating; neither is given ({who})")


_GENERATED_FIELDS = [name for name in Licence.model_fields if name not in ("id", "licensee")]


class PoolGenerate(_Model):
    """A synthetic pool: ``count`` licences, one licensee each; a list value is cycled."""

    count: Annotated[int, Field(ge=1, le=1_000_000)]
    id_prefix: str = "L"
    industry: str | list[str] = "default"
    region: str | list[str] = "default"
    technology: str | list[str] = "default"
    ip_type: str | list[str] = "patent"
    royalty: float | list[float]
    royalty_type: str | list[str] = "fixed"
    minimum_royalty: float | list[float] = 0.0
    start_period: int | list[int] = 1
    end_period: int | list[int] | None = None
    expiry_period: int | list[int] | None = None
    pd_annual: float | list[float] | None = None
    rating: str | list[str] | None = None
    recovery: float | list[float] | None = None

    @model_validator(mode="after")
    def _no_empty_lists(self):
        for name in _GENERATED_FIELDS:
            if getattr(self, name) == []:
                raise _problem(name, [], "a value or a non-empty list of values to cycle through")
        return self

    def expand(self) -> list[dict]:
        rows = []
        width = len(str(self.count))
        for i in range(self.count):
            row = {"id": f"{self.id_prefix}{i + 1:0{width}d}"}
            for name in _GENERATED_FIELDS:
                value = getattr(self, name)
                if isinstance(value, list):
                    value = value[i % len(value)]
                if value is not None:
                    row[name] = value
            rows.append(row)
        return rows


class Pool(_Model):
    licences: list[Licence] | None = None
    file: str | None = None
    generate: PoolGenerate | None = None

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("licences", "file", "generate") if getattr(self, k) is not None]
        if len(given) != 1:
            raise _problem("", given or MISSING,
                           "exactly one pool source: [[pool.licences]], pool.file or [pool.generate]")
        return self


# ---------------------------------------------------------------------------------------- risk
class DefaultRisk(_Model):
    enabled: bool = True
    copula: Literal["gaussian", "student_t"] = "gaussian"
    dof: Annotated[float, Field(gt=0.0, le=1000.0)] = 5.0
    recovery_model: Literal["fixed", "beta"] = "fixed"
    recovery_stdev: NonNegative = 0.0
    relicense_lag_periods: Annotated[int, Field(ge=1)] = 4
    relicense_haircut: Fraction = 1.0
    pd_multiplier: NonNegative = 1.0  # stress: every licensee's annual PD times this


class Correlation(_Model):
    """Variance shares (pairwise latent correlations) of the global, industry and region factors.

    Two licensees in the same industry and region have latent correlation
    ``global + industry + region``; in different ones, ``global``.
    """

    global_: Fraction = Field(0.0, alias="global")
    industry: Fraction = 0.0
    region: Fraction = 0.0
    factors: list[str] | None = None
    matrix: list[list[float]] | None = None

    @model_validator(mode="after")
    def _shares(self):
        total = self.global_ + self.industry + self.region
        if total > 1.0 + 1e-12:
            raise _problem("", {"global": self.global_, "industry": self.industry, "region": self.region},
                           f"global + industry + region <= 1 (they sum to {total:g}; each is a share "
                           "of the latent variance)")
        if self.factors is None and self.matrix is not None:
            raise _problem("factors", MISSING, "the factor names of the rows of matrix (a matrix needs them)")
        if self.matrix is None and self.factors is not None:
            raise _problem("matrix", MISSING, "a factor correlation matrix to go with factors")
        return self


class TechnologyObsolescence(_Model):
    hazard_annual: NonNegative | None = None
    severity: Fraction | None = None
    hazard_multiplier_after_obsolescence: NonNegative | None = None
    period: Annotated[int, Field(ge=1)] | None = None


class Obsolescence(_Model):
    enabled: bool = True
    hazard_annual: NonNegative = 0.0
    severity: Fraction = 1.0
    global_loading: Loading = 0.0
    hazard_multiplier_after_obsolescence: NonNegative = 1.0
    technologies: dict[str, TechnologyObsolescence] = {}


class IndustryDemand(_Model):
    drift_annual: float | None = None
    volatility_annual: NonNegative | None = None
    mean_reversion_annual: NonNegative | None = None
    global_loading: Loading | None = None
    demand_hazard_elasticity: float | None = None


class Demand(_Model):
    enabled: bool = True
    model: Literal["gbm", "ou"] = "gbm"
    drift_annual: float = 0.0
    volatility_annual: NonNegative = 0.0
    mean_reversion_annual: NonNegative = 0.0
    global_loading: Loading = 0.0
    demand_hazard_elasticity: float = 0.0
    shock_drift_annual: float = 0.0
    shock_years: NonNegative = 0.0
    industries: dict[str, IndustryDemand] = {}


class Legal(_Model):
    enabled: bool = True
    invalidation_hazard_annual: NonNegative = 0.0
    technologies: dict[str, NonNegative] = {}
    ip_types: dict[Literal["patent", "trademark", "copyright"], NonNegative] = {}


class Risk(_Model):
    default: DefaultRisk = DefaultRisk()
    correlation: Correlation = Correlation()
    obsolescence: Obsolescence = Obsolescence()
    demand: Demand = Demand()
    legal: Legal = Legal()


# ----------------------------------------------------------------------------------- structure
class Tranche(_Model):
    name: str
    balance: Annotated[float, Field(gt=0.0)]
    coupon: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    interest_deferrable: bool = False
    amortisation: Literal["sequential", "pro_rata", "bullet"] | list[NonNegative] = "sequential"
    maturity_period: Annotated[int, Field(ge=1)] | None = None


class Fees(_Model):
    fixed_per_period: NonNegative = 0.0
    bps_annual: NonNegative = 0.0


class Reserve(_Model):
    initial_amount: NonNegative = 0.0
    target_amount: NonNegative | None = None
    target_fraction: NonNegative | None = None
    covers: list[str] | None = None

    @model_validator(mode="after")
    def _target(self):
        if self.target_amount is not None and self.target_fraction is not None:
            raise _problem("", {"target_amount": self.target_amount, "target_fraction": self.target_fraction},
                           "at most one of target_amount or target_fraction")
        return self


class Trigger(_Model):
    name: str
    metric: Literal["cumulative_default_rate", "dscr"]
    threshold: NonNegative
    effect: Literal["sequential", "trap", "accelerate"]
    curable: bool = False
    consecutive_periods: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _fraction(self):
        if self.metric == "cumulative_default_rate" and self.threshold > 1.0:
            raise _problem("threshold", self.threshold,
                           "a fraction in [0, 1] for cumulative_default_rate (10% is 0.10)")
        return self


class Provider(_Model):
    provider: str
    pd_annual: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    rating: str | None = None
    loading: Loading = 0.0
    cap_amount: NonNegative | None = None
    covers: list[str]

    @model_validator(mode="after")
    def _credit(self):
        _one_credit(self, f"provider {self.provider!r}")
        return self


class Step(_Model):
    step: Literal["fees", "interest", "reserve", "principal", "residual"]
    tranches: list[str] | None = None


class Structure(_Model):
    tranches: Annotated[list[Tranche], Field(min_length=1)]
    fees: Fees = Fees()
    reserve: Reserve = Reserve()
    triggers: list[Trigger] = []
    payment_commitment: Provider | None = None
    guarantee: Provider | None = None
    waterfall: list[Step] | None = None


class Importance(_Model):
    """Importance sampling on the systematic factors; by default the pilot picks the measure."""

    tranche: str | None = None  # the tranche whose default is targeted; default: the first (most senior)
    basis: Literal["enhanced", "standalone"] = "enhanced"
    global_shift: Annotated[float, Field(ge=-8.0, le=8.0)] | None = None  # fixes the global factor's mean
    chi2_scale: Annotated[float, Field(gt=0.0, le=1.0)] | None = None  # fixes the t mixing scale
    pilot_paths: Annotated[int, Field(ge=200, le=1_000_000)] = 4_000


class Simulation(_Model):
    paths: Annotated[int, Field(ge=1)] = 100_000
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    chunk_paths: Annotated[int, Field(ge=1)] = 50_000
    cashflow_sample_paths: Annotated[int, Field(ge=1)] = 10_000
    variance_reduction: Literal["none", "importance", "antithetic", "importance+antithetic"] = "none"
    importance: Importance = Importance()


class ScenarioModel(_Model):
    extends: str | None = None
    deal: Deal
    pool: Pool
    risk: Risk = Risk()
    structure: Structure
    simulation: Simulation = Simulation()


# ------------------------------------------------------------------------------------ loading
_POOL_SOURCES = ("licences", "file", "generate")
_UNION_LABELS = {"str", "float", "int", "bool", "none", "date", "datetime", "list", "dict", "[key]"}
_UNION_LABEL_PREFIXES = ("list[", "dict[", "literal[", "function-", "constrained-", "tagged-union[",
                         "json-or-python[", "lax-")


def _clean_loc(loc) -> tuple:
    """pydantic's error location without its union-branch labels (they say nothing to a person)."""
    return tuple(p for p in loc
                 if isinstance(p, int) or not (p in _UNION_LABELS or p.startswith(_UNION_LABEL_PREFIXES)))


def _path_text(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _strip_optional(annotation):
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation


def _is_model(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _model_at(root: type[BaseModel], parts) -> type[BaseModel] | None:
    """The table (model class) at a key path, or None where the path is not a table."""
    annotation = root
    for part in parts:
        annotation = _strip_optional(annotation)
        origin = get_origin(annotation)
        if _is_model(annotation) and isinstance(part, str):
            fields = {f.alias or n: f for n, f in annotation.model_fields.items()}
            if part not in fields:
                return None
            annotation = fields[part].annotation
        elif origin is list and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif origin is dict and isinstance(part, str):
            annotation = get_args(annotation)[1]
        else:
            return None
    annotation = _strip_optional(annotation)
    return annotation if _is_model(annotation) else None


def _bounds(annotation, found: dict) -> dict:
    """The ge/gt/le/lt bounds in a field's type (inside ``Annotated`` and ``| None``)."""
    for item in (*getattr(annotation, "metadata", ()), *get_args(annotation)):
        for key in ("ge", "gt", "le", "lt"):
            if getattr(item, key, None) is not None and not isinstance(item, type):
                found.setdefault(key, getattr(item, key))
        if get_args(item) or getattr(item, "metadata", None):
            _bounds(item, found)
    return found


def _num(v) -> str:
    """1 for 1.0, 0.25 for 0.25, 9223372036854775808 for 2**63."""
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    return f"{v:g}"


def _range_text(root: type[BaseModel], parts: tuple) -> str | None:
    """``"a number in [0, 1)"`` for the field at ``parts``, or None when it is not a plain field."""
    model = _model_at(root, parts[:-1]) if parts and isinstance(parts[-1], str) else None
    if model is None:
        return None
    field = {f.alias or n: f for n, f in model.model_fields.items()}.get(parts[-1])
    if field is None:
        return None
    b = {k: _num(v) for k, v in _bounds(field, _bounds(field.annotation, {})).items()}
    low = f"[{b['ge']}" if "ge" in b else f"({b['gt']}" if "gt" in b else None
    high = f"{b['le']}]" if "le" in b else f"{b['lt']})" if "lt" in b else None
    if low and high:
        return f"a number in {low}, {high}"
    if low:
        return f"a number {'>=' if low[0] == '[' else '>'} {low[1:]}"
    if high:
        return f"a number {'<=' if high[-1] == ']' else '<'} {high[:-1]}"
    return None


def _did_you_mean(name, choices) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _expected(e: dict, parts: tuple, root: type[BaseModel]) -> str:
    """What a person should have written, from one pydantic error."""
    kind, ctx, msg = e["type"], e.get("ctx") or {}, e["msg"]
    if kind == "scenario_field":
        return ctx["expected"]
    if kind == "extra_forbidden":
        model = _model_at(root, parts[:-1])
        if model is None:
            return "no such key (a typo?)"
        keys = [f.alias or n for n, f in model.model_fields.items()]
        return f"a known key: {', '.join(keys)}{_did_you_mean(parts[-1], keys)}"
    if kind == "missing":
        return "a value (this key is required)"
    number = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
              "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}
    if kind in number:
        key, op = number[kind]
        return _range_text(root, parts) or f"a number {op} {_num(ctx[key])}"
    if kind == "literal_error":
        return f"one of {ctx['expected']}"
    if kind == "too_short":
        return f"at least {ctx['min_length']} item(s)"
    if kind == "too_long":
        return f"at most {ctx['max_length']} item(s)"
    plain = {
        "float_parsing": "a number", "float_type": "a number",
        "int_parsing": "a whole number", "int_type": "a whole number",
        "int_from_float": "a whole number (no fractional part)",
        "finite_number": "a finite number (not inf or nan)",
        "bool_type": "true or false", "bool_parsing": "true or false",
        "string_type": "text (a quoted string)",
        "list_type": "a list [...]", "dict_type": "a table", "model_type": "a table",
        "model_attributes_type": "a table", "bool_not_allowed": "a number or text, not true/false",
    }
    if kind in plain:
        return plain[kind]
    if kind.startswith(("date_", "datetime_")):
        return f"a date such as 2019-09-11 ({msg})"
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg


def _errors_from_pydantic(file, err: ValidationError, root: type[BaseModel] = None,
                          place=_path_text, note: str = "") -> list[ScenarioError]:
    """One :class:`ScenarioError` per key path (union branches at one path are joined by "or").

    ``place(parts)`` writes a key path (a CSV pool writes "line 4, column royalty"); ``note`` is
    added to every expectation.
    """
    root = root or ScenarioModel
    by_path: dict[str, list] = {}
    for e in err.errors(include_url=False):
        parts = _clean_loc(e["loc"])
        expected = _expected(e, parts, root)
        if e["type"] == "scenario_field":
            key = e["ctx"]["key"]
            parts = parts + tuple(key.split(".")) if key else parts
            value = e["ctx"]["value"]
        else:
            value = MISSING if e["type"] == "missing" else e.get("input")
        path = place(parts)
        slot = by_path.setdefault(path, [value, []])
        if expected not in slot[1]:
            slot[1].append(expected)
    return [ScenarioError(file, path, value, " or ".join(expected) + note)
            for path, (value, expected) in by_path.items()]


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
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ScenarioError(path, f"line {line}", data[exc.start:exc.start + 8],
                            "UTF-8 text (TOML is UTF-8)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        reason = str(exc)
        at = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", reason)
        if at is None:
            raise ScenarioError(path, "<end of file>" if "end of document" in reason else "", None,
                                f"valid TOML ({reason})") from None
        line, column = int(at.group(1)), int(at.group(2))
        lines = text.splitlines()
        shown = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        raise ScenarioError(path, f"line {line}, column {column}", shown,
                            f"valid TOML ({reason[:at.start()]})") from None


def _key_origins(raw: dict, file: str, prefix: tuple = (), out: dict | None = None) -> dict:
    """``{key parts: file}`` for every key of every table in ``raw`` (lists are whole values)."""
    out = {} if out is None else out
    for k, v in raw.items():
        out[(*prefix, k)] = file
        if isinstance(v, dict):
            _key_origins(v, file, (*prefix, k), out)
    return out


def _read_toml(path: Path, chain: tuple[Path, ...] = (), written: str | None = None) -> tuple[dict, dict]:
    """A TOML file with its ``extends`` chain merged, and the file each key came from.

    Tables merge key by key; a list (tranches, licences, triggers) is replaced whole; a variant
    that names a pool source (``licences``, ``file`` or ``generate``) replaces the base's pool. A
    pool file path is relative to the file that names it. ``written`` is the extends value that
    named ``path``. Returns ``(raw, origins)``, origins as :func:`_key_origins` (a variant's keys
    override its base's), so an error in a key the base set names the base file.
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
    pool = raw.get("pool")
    if isinstance(pool, dict) and isinstance(pool.get("file"), str):
        pool["file"] = str((path.parent / pool["file"]).resolve())  # relative to the file that says it
    parent = raw.get("extends")
    if parent is None:
        return raw, _key_origins(raw, str(path))
    if not isinstance(parent, str):
        raise ScenarioError(path, "extends", parent, "a path to the base scenario (text, relative to this file)")
    base, origins = _read_toml((path.parent / parent).resolve(), (*chain, path), parent)
    base.pop("extends", None)
    if isinstance(pool, dict) and isinstance(base.get("pool"), dict) and any(k in pool for k in _POOL_SOURCES):
        for k in _POOL_SOURCES:  # a variant that names its own pool replaces the base's pool
            base["pool"].pop(k, None)
    merged = _deep_merge(base, {k: v for k, v in raw.items() if k != "extends"})
    merged["extends"] = parent
    return merged, _key_origins(raw, str(path), (), origins)


def _read_pool_file(file: str, source: str) -> list[dict]:
    """The rows of a CSV or Parquet pool file (``source``: the scenario that names it)."""
    import pandas as pd

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
    if unknown:
        raise ScenarioError(file, "columns", unknown, f"licence fields only: {', '.join(Licence.model_fields)}"
                            f"{_did_you_mean(unknown[0], Licence.model_fields)}")
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


def _row_label(file: str, i: int) -> str:
    """Row ``i`` (from 0) of a pool file as a person finds it: a CSV line (1 is the header)."""
    return f"line {i + 2}" if Path(file).suffix.lower() == ".csv" else f"row {i + 1}"


def _split_key(key: str) -> list[str]:
    """``"structure.tranches[0].balance"`` or ``"structure.tranches.0.balance"`` → its parts."""
    return [p for p in re.split(r"[.\[\]]", key) if p != ""]


def _key_parts(key: str) -> tuple:
    return tuple(int(p) if p.lstrip("-").isdigit() else p for p in _split_key(key))


def _set_dotted(raw: dict, key: str, value) -> None:
    parts = _split_key(key)
    if not parts:
        raise KeyError(key)
    node = raw
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
            continue
        node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


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
                raise ScenarioErrors(_errors_from_pydantic(self.source, exc)) from None
            self.model = model
            self.licences = self._expand_pool(model)
            self._check(model)
        except ScenarioError as exc:
            if not self._origins:
                raise
            raise self._in_origin_files(exc) from None

    def _in_origin_files(self, exc: ScenarioError) -> ScenarioError:
        """Errors re-pointed from the variant to the base file that holds the bad key."""
        out = []
        for e in getattr(exc, "errors", [exc]):
            if e.file == self.source:
                parts = _key_parts(e.key_path)
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
    def from_dict(cls, raw: dict, source: str = "<dict>") -> "Scenario":
        return cls(raw, source)

    def with_overrides(self, overrides: dict[str, Any]) -> "Scenario":
        """A new scenario with keys replaced, e.g. ``{"risk.correlation.global": 0.3}``.

        A key is a dotted path; list items by index (``structure.tranches.0.balance`` or
        ``structure.tranches[0].balance``). A bad value is a :class:`ScenarioError` whose
        expectation says which override set it.
        """
        raw = copy.deepcopy(self.raw)
        for key, value in overrides.items():
            try:
                _set_dotted(raw, key, value)
            except (KeyError, IndexError, ValueError, TypeError, AttributeError):
                raise ScenarioError(self.source, key, value,
                                    "a key path that exists in the scenario (override)") from None
        origins = dict(self._origins)
        for key in overrides:  # an overridden key comes from the override, not from a base file
            origins[_key_parts(key)] = self.source
        try:
            return Scenario(raw, self.source, origins=origins)
        except ScenarioError as exc:
            raise _mark_overrides(exc, overrides) from None

    # -- derived --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.model.deal.name

    @property
    def periods(self) -> int:
        return self.model.deal.periods

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

    # -- checks that need the whole tree ---------------------------------------------------------
    def _licence_place(self, i: int, key: str) -> tuple[str, str]:
        """Where a person finds field ``key`` of licence ``i``: (file, key path)."""
        pool = self.model.pool
        if pool.licences is not None:
            return self.source, f"pool.licences[{i}].{key}"
        if pool.generate is not None:
            return self.source, f"pool.generate.{key}"
        return pool.file, f"{_row_label(pool.file, i)}, column {key}"

    def _expand_pool(self, m: ScenarioModel) -> tuple[Licence, ...]:
        pool, f = m.pool, self.source
        if pool.licences is not None:
            return tuple(pool.licences)
        if pool.generate is not None:
            rows = pool.generate.expand()
            where = f
            place = lambda i, parts: _path_text(("pool", "generate", *parts))
            note = lambda i: f" (generated licence {rows[i]['id']})"
        else:
            rows = _read_pool_file(pool.file, f)
            where = pool.file
            place = lambda i, parts: (f"{_row_label(where, i)}, column {_path_text(parts)}" if parts
                                      else _row_label(where, i))
            note = lambda i: ""
        out, errors = [], []
        for i, row in enumerate(rows):
            try:
                out.append(Licence.model_validate(row))
            except ValidationError as exc:
                errors.extend(_errors_from_pydantic(where, exc, Licence, lambda parts: place(i, parts), note(i)))
                if len(errors) >= 20:
                    break
        if errors:
            raise ScenarioErrors(_unique(errors))
        return tuple(out)

    def _check(self, m: ScenarioModel) -> None:
        f = self.source
        errors: list[ScenarioError] = []

        def err(path, value, expected, file=None):
            errors.append(ScenarioError(file or f, path, value, expected))

        def err_licence(i, key, value, expected):
            file, path = self._licence_place(i, key)
            err(path, value, expected, file)

        deal = m.deal
        T = deal.periods
        if abs(deal.term_years * deal.periods_per_year - T) > 1e-9:
            err("deal.term_years", deal.term_years,
                f"a whole number of periods at {deal.periods_per_year} per year "
                f"(term_years x periods_per_year = {deal.term_years * deal.periods_per_year:g})")
        if not self.licences:
            err("pool.licences", [], "at least one licence")
        ids, licensees = {}, {}
        for i, lic in enumerate(self.licences):
            if lic.id in ids:
                err_licence(i, "id", lic.id, f"a unique licence id (also licence {ids[lic.id] + 1} of the pool)")
            ids.setdefault(lic.id, i)
            for key in ("start_period", "end_period", "expiry_period"):
                v = getattr(lic, key)
                if v is not None and v > T:
                    err_licence(i, key, v, f"a period in 1..{T} (term_years x periods_per_year; "
                                f"licence {lic.id!r})")
            if lic.rating is not None:
                try:
                    rating_to_pd(lic.rating)
                except KeyError as exc:
                    err_licence(i, "rating", lic.rating, str(exc.args[0]) + _did_you_mean(lic.rating, rating_symbols()))
            if lic.royalty_type == "running" and lic.minimum_royalty > lic.royalty:
                err_licence(i, "minimum_royalty", lic.minimum_royalty, f"at most the royalty ({lic.royalty})")
            who = lic.licensee or lic.id
            key = (lic.industry, lic.region, lic.technology, lic.pd_annual, lic.rating)
            if who in licensees and licensees[who] != key:
                err_licence(i, "licensee", who, "the same industry, region, technology and credit on every "
                            "licence of one licensee (the copula draws one default time per licensee)")
            licensees.setdefault(who, key)
            if len(errors) >= 20:
                break
        self._check_names_used(m, err)
        st = m.structure
        names = [t.name for t in st.tranches]
        for i, t in enumerate(st.tranches):
            if names.count(t.name) > 1 and names.index(t.name) != i:
                err(f"structure.tranches[{i}].name", t.name,
                    f"a unique tranche name (structure.tranches[{names.index(t.name)}] is also {t.name!r})")
            if t.maturity_period is not None and t.maturity_period > T:
                err(f"structure.tranches[{i}].maturity_period", t.maturity_period, f"a period in 1..{T}")
            if isinstance(t.amortisation, list):
                if len(t.amortisation) > T:
                    err(f"structure.tranches[{i}].amortisation", len(t.amortisation),
                        f"a schedule of at most {T} periods")
                if sum(t.amortisation) > 1.0 + 1e-9:
                    err(f"structure.tranches[{i}].amortisation", sum(t.amortisation),
                        "schedule fractions of the original balance that sum to at most 1")
        triggers = [t.name for t in st.triggers]
        for i, name in enumerate(triggers):
            if triggers.index(name) != i:
                err(f"structure.triggers[{i}].name", name,
                    f"a unique trigger name (structure.triggers[{triggers.index(name)}] is also {name!r})")

        def check_names(path: str, listed):
            for j, name in enumerate(listed or []):
                if name not in names:
                    err(f"{path}[{j}]", name, f"a tranche name, one of {names}{_did_you_mean(name, names)}")

        check_names("structure.reserve.covers", st.reserve.covers)
        for key in ("payment_commitment", "guarantee"):
            prov = getattr(st, key)
            if prov is not None:
                check_names(f"structure.{key}.covers", prov.covers)
                if prov.rating is not None:
                    try:
                        rating_to_pd(prov.rating)
                    except KeyError as exc:
                        err(f"structure.{key}.rating", prov.rating,
                            str(exc.args[0]) + _did_you_mean(prov.rating, rating_symbols()))
        for i, step in enumerate(st.waterfall or []):
            check_names(f"structure.waterfall[{i}].tranches", step.tranches)
            if step.step in ("interest", "principal") and not step.tranches:
                err(f"structure.waterfall[{i}].tranches", step.tranches,
                    f"the tranches this {step.step} step pays")
        if st.waterfall is not None:
            paid = {n for s in st.waterfall if s.step == "principal" for n in (s.tranches or [])}
            missing = [n for n in names if n not in paid]
            if missing:
                err("structure.waterfall", missing, "a principal step for every tranche")
        target = m.simulation.importance.tranche
        if target is not None and target not in names:
            err("simulation.importance.tranche", target,
                f"a tranche name, one of {names}{_did_you_mean(target, names)}")
        corr = m.risk.correlation
        if corr.matrix is not None:
            self._check_matrix(corr, err)
        if m.risk.default.copula == "student_t" and m.risk.default.dof <= 0:
            err("risk.default.dof", m.risk.default.dof, "degrees of freedom > 0")
        mult = m.risk.default.pd_multiplier
        if mult != 1.0:
            for i, lic in enumerate(self.licences):
                pd_ = lic.pd_annual if lic.pd_annual is not None else (
                    rating_to_pd(lic.rating) if lic.rating in rating_symbols() else 0.0)
                if pd_ * mult >= 1.0:
                    err("risk.default.pd_multiplier", mult,
                        f"a multiplier that keeps every annual PD below 1 (licence {lic.id}: PD {pd_:g})")
                    break
        if m.risk.default.recovery_model == "beta":
            for i, lic in enumerate(self.licences):
                mean = lic.recovery if lic.recovery is not None else 1.0 - m.risk.default.relicense_haircut
                sd = m.risk.default.recovery_stdev
                if sd > 0 and not (0.0 < mean < 1.0 and sd * sd < mean * (1.0 - mean)):
                    err("risk.default.recovery_stdev", sd,
                        f"a beta stdev below sqrt(mean*(1-mean)) with 0 < mean < 1 (licence {lic.id}: mean {mean})")
                    break
        if errors:
            raise ScenarioErrors(_unique(errors))

    def _check_names_used(self, m: ScenarioModel, err) -> None:
        """A technology or industry named in [risk] but held by no licence, and nearly equal to
        one that is, is a typo (its parameters would silently not apply). Names far from every
        pool name are allowed: a shared base file may list classes that this pool lacks."""
        technologies = sorted({lic.technology for lic in self.licences})
        industries = sorted({lic.industry for lic in self.licences})
        for path, named, known, what in (
            ("risk.obsolescence.technologies", m.risk.obsolescence.technologies, technologies, "a technology"),
            ("risk.legal.technologies", m.risk.legal.technologies, technologies, "a technology"),
            ("risk.demand.industries", m.risk.demand.industries, industries, "an industry"),
        ):
            for name in named:
                if name in known:
                    continue
                close = [k for k in known if k.lower() == name.lower()] or difflib.get_close_matches(
                    name, known, n=1, cutoff=_TYPO_CUTOFF)
                if close:
                    err(f"{path}.{name}", name, f"{what} that some licence has, one of {known} "
                        f"(did you mean {close[0]!r}?)")

    def _check_matrix(self, corr: Correlation, err) -> None:
        industries = sorted({l.industry for l in self.licences})
        regions = sorted({l.region for l in self.licences})
        want = ["global"] + [f"industry.{x}" for x in industries] + [f"region.{x}" for x in regions]
        if sorted(corr.factors) != sorted(want) or corr.factors[0] != "global":
            extra = [x for x in corr.factors if x not in want]
            lacking = [x for x in want if x not in corr.factors]
            detail = "; ".join(filter(None, [f"not in the pool: {extra}" if extra else "",
                                             f"missing: {lacking}" if lacking else ""]))
            err("risk.correlation.factors", corr.factors,
                f"'global' first, then exactly {want[1:]} in any order ({detail or 'global is not first'})")
            return
        n = len(corr.factors)
        rows = corr.matrix
        if len(rows) != n or any(len(r) != n for r in rows):
            shape = f"{len(rows)} rows of lengths {sorted({len(r) for r in rows})}"
            err("risk.correlation.matrix", shape, f"a {n}x{n} matrix, one row and column per factor "
                f"in the order of factors")
            return
        C = np.asarray(rows, dtype=float)
        for i in range(n):
            if abs(rows[i][i] - 1.0) > 1e-12:
                err(f"risk.correlation.matrix[{i}][{i}]", rows[i][i], f"1 on the diagonal ({corr.factors[i]})")
                return
        for i in range(n):
            for j in range(n):
                pair = f"{corr.factors[i]} with {corr.factors[j]}"
                if abs(rows[i][j]) > 1.0:
                    err(f"risk.correlation.matrix[{i}][{j}]", rows[i][j], f"a correlation in [-1, 1] ({pair})")
                    return
                if j > i and abs(rows[i][j] - rows[j][i]) > 1e-12:
                    err(f"risk.correlation.matrix[{i}][{j}]", rows[i][j],
                        f"a symmetric matrix: matrix[{j}][{i}] is {rows[j][i]!r} ({pair})")
                    return
        values, vectors = np.linalg.eigh(C)
        smallest = float(values[0])
        if smallest < -1e-10:
            v = vectors[:, 0]
            top = np.argsort(-np.abs(v))[:3]
            weights = ", ".join(f"{corr.factors[k]} {v[k]:+.2f}" for k in top)
            err("risk.correlation.matrix", corr.matrix,
                f"a positive semi-definite matrix, but its smallest eigenvalue is {smallest:.6g} "
                f"(its eigenvector loads most on {weights})")


def _unique(errors: list[ScenarioError]) -> list[ScenarioError]:
    seen, out = set(), []
    for e in errors:
        key = (e.file, e.key_path, repr(e.value))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


_TYPO_CUTOFF = 0.85


def _mark_overrides(exc: ScenarioError, overrides: dict[str, Any]) -> ScenarioError:
    """The same errors, each that an override caused saying so."""
    keys = [_path_text(_key_parts(k)) for k in overrides]

    def caused(path: str, key: str) -> bool:
        return (path == key or path.startswith((key + ".", key + "["))
                or key.startswith((path + ".", path + "[")) or not path)

    out = []
    for e in getattr(exc, "errors", [exc]):
        by = [k for k, norm in zip(overrides, keys) if caused(e.key_path, norm)]
        note = f" (set by with_overrides {', '.join(map(repr, by))})" if by else ""
        out.append(ScenarioError(e.file, e.key_path, e.value, e.expected + note))
    return ScenarioErrors(out)


def load_scenario(path: str | Path) -> Scenario:
    """Read a TOML scenario (following ``extends``) and validate it."""
    path = Path(path).resolve()
    raw, origins = _read_toml(path)
    return Scenario(raw, str(path), origins=origins)
