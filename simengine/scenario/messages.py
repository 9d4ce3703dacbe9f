"""Errors for people: pydantic's validation errors as :class:`~simengine.errors.ScenarioError` text.

Each error names the file, the key path as a person writes it (``structure.tranches[0].balance``,
or ``line 4, column royalty`` of a CSV pool), the value and what was expected.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from types import UnionType
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ..errors import MISSING, ScenarioError
from .model import ScenarioModel

_UNION_LABELS = {"str", "float", "int", "bool", "none", "date", "datetime", "list", "dict", "[key]"}
_UNION_LABEL_PREFIXES = ("list[", "dict[", "literal[", "function-", "constrained-", "tagged-union[",
                         "json-or-python[", "lax-")


def _clean_loc(loc) -> tuple:
    """Pydantic's error location without its union-branch labels (they say nothing to a person)."""
    return tuple(p for p in loc
                 if isinstance(p, int) or not (p in _UNION_LABELS or p.startswith(_UNION_LABEL_PREFIXES)))


def path_text(parts) -> str:
    """A key path as a person writes it.

    Parameters
    ----------
    parts : iterable of str or int
        Keys and list indices, e.g. ``("structure", "tranches", 0, "balance")``.

    Returns
    -------
    str
        ``"structure.tranches[0].balance"``.
    """
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


def did_you_mean(name, choices) -> str:
    """A hint naming the choice closest to ``name``.

    Returns
    -------
    str
        ``" (did you mean 'x'?)"``, or ``""`` when no choice is close.
    """
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
        return f"a known key: {', '.join(keys)}{did_you_mean(parts[-1], keys)}"
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


def errors_from_pydantic(file, err: ValidationError, root: type[BaseModel] = None,
                         place=path_text, note: str = "") -> list[ScenarioError]:
    """One :class:`ScenarioError` per key path (union branches at one path are joined by "or").

    Parameters
    ----------
    file : str
        The file the errors are in.
    err : pydantic.ValidationError
        The errors of validating one table (``root``).
    root : type of pydantic.BaseModel, optional
        The table that was validated; default :class:`ScenarioModel`.
    place : callable, optional
        ``place(parts)`` writes a key path (a CSV pool writes "line 4, column royalty").
    note : str, optional
        Text added to every expectation.

    Returns
    -------
    list of ScenarioError
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


def row_label(file: str, i: int) -> str:
    """Row ``i`` (from 0) of a pool file as a person finds it: a CSV line (1 is the header).

    Returns
    -------
    str
        ``"line 4"`` in a CSV file, ``"row 3"`` in a Parquet file.
    """
    return f"line {i + 2}" if Path(file).suffix.lower() == ".csv" else f"row {i + 1}"


def unique_errors(errors: list[ScenarioError]) -> list[ScenarioError]:
    """``errors`` in order, without repeats of one (file, key path, value)."""
    seen, out = set(), []
    for e in errors:
        key = (e.file, e.key_path, repr(e.value))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out
