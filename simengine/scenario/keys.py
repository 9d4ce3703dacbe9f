"""Dotted keys of a scenario, as :meth:`Scenario.with_overrides` and batch sweeps name them.

A key is a dotted path with list items by index: ``structure.tranches.0.balance`` or
``structure.tranches[0].balance``.
"""

from __future__ import annotations

import re


def split_key(key: str) -> list[str]:
    """The parts of a dotted key, as text.

    Returns
    -------
    list of str
        ``["structure", "tranches", "0", "balance"]`` for ``"structure.tranches[0].balance"``
        or ``"structure.tranches.0.balance"``.
    """
    return [p for p in re.split(r"[.\[\]]", key) if p != ""]


def key_parts(key: str) -> tuple:
    """The parts of a dotted key, list indices as ints.

    Returns
    -------
    tuple of str or int
        ``("structure", "tranches", 0, "balance")``.
    """
    return tuple(int(p) if p.lstrip("-").isdigit() else p for p in split_key(key))


def set_dotted(raw: dict, key: str, value) -> None:
    """Set ``key`` of the nested dictionary ``raw`` to ``value`` in place.

    Missing tables are created; a list item must exist. Raises KeyError (empty key),
    IndexError, ValueError, TypeError or AttributeError where the key does not fit ``raw``.
    """
    parts = split_key(key)
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
