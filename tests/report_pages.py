"""Reading a committee-pack page back (for tests): a strict HTML tree check, every number with its
source, and the check that each equals the value in the file it names.

Independent of simengine's own formatter: the shown text is parsed here from its unit suffix.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
SUFFIX = {"percent": ("%", 100.0), "amount": (" m", 1e-6), "millions": ("", 1e-6), "years": (" y", 1.0),
          "multiple": ("×", 1.0), "plain": ("", 1.0), "count": ("", 1.0), "id": ("", 1.0)}


@dataclass
class Element:
    tag: str
    attrs: dict
    parent: Element | None
    children: list = field(default_factory=list)
    text: str = ""

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag: str | None = None, **attrs):
        for e in self.iter():
            if (tag is None or e.tag == tag) and all(
                    (k.replace("_", "-") in e.attrs) if v is True else e.attrs.get(k.replace("_", "-")) == v
                    for k, v in attrs.items()):
                yield e

    def ancestor(self, tag: str) -> Element | None:
        node = self.parent
        while node is not None and node.tag != tag:
            node = node.parent
        return node


class TreeBuilder(HTMLParser):
    """Builds a tree and fails on any end tag that does not close the element it should."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {}, None)
        self.node = self.root
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        e = Element(tag, dict(attrs), self.node)
        self.node.children.append(e)
        if tag not in VOID:
            self.node = e

    def handle_startendtag(self, tag, attrs):
        self.node.children.append(Element(tag, dict(attrs), self.node))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if self.node.tag != tag:
            self.errors.append(f"</{tag}> closes <{self.node.tag}> at {self.getpos()}")
            return
        self.node = self.node.parent

    def handle_data(self, data):  # text order around children is not kept: not needed here
        self.node.text += data


def parse_page(html: str) -> Element:
    """The page's tree; asserts that every element is closed where it should be."""
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    assert not builder.errors, builder.errors[:5]
    assert builder.node is builder.root, f"unclosed <{builder.node.tag}>"
    return builder.root


def parse_number(text: str, unit: str) -> tuple[float, float]:
    """(value in stored units, half a unit of the last digit shown)."""
    suffix, scale = SUFFIX[unit]
    body = text.strip()
    if body in ("n/a", "—"):
        return math.nan, 0.0
    if suffix:
        assert body.endswith(suffix), (text, unit)
        body = body[: -len(suffix)]
    body = body.replace(",", "").replace("−", "-").strip()
    if body.lstrip("-") == "∞":
        return (-math.inf if body.startswith("-") else math.inf), 0.0
    places = len(body.split(".")[1]) if "." in body else 0
    return float(body) / scale, 0.5 * 10.0 ** (-places) / scale


class Sources:
    """The files a page's numbers name, read once each, relative to ``folder``."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.cache: dict[str, object] = {}

    def load(self, source: str):
        if source not in self.cache:
            path = self.folder / source
            self.cache[source] = (json.loads(path.read_text()) if source.endswith(".json")
                                  else pq.read_table(path).to_pandas())
        return self.cache[source]

    def value(self, source: str, key: dict, column: str):
        data = self.load(source)
        if isinstance(data, dict):
            node = data
            for part in column.split("."):
                node = node[int(part)] if isinstance(node, list) else node[part]
            return node
        frame: pd.DataFrame = data
        if "__row__" in key:
            return frame.iloc[key["__row__"]][column]
        mask = pd.Series(True, index=frame.index)
        for k, v in key.items():
            mask &= frame[k] == v
        rows = frame[mask]
        assert len(rows) == 1, (source, key, len(rows))
        return rows.iloc[0][column]


def same_value(stored, shown_json) -> bool:
    if shown_json == "NaN":
        return isinstance(stored, float) and math.isnan(stored)
    if shown_json is None:
        return stored is None or (isinstance(stored, float) and math.isnan(stored))
    if isinstance(shown_json, bool) or isinstance(stored, bool):
        return bool(stored) == bool(shown_json)
    if isinstance(shown_json, (int, float)):
        return float(stored) == float(shown_json)
    return str(stored) == str(shown_json)


def check_numbers(root: Element, folder: Path) -> int:
    """Every span with a data-source equals its source value, and its text is that value rounded.
    Returns how many were checked."""
    sources = Sources(folder)
    checked = 0
    for span in root.find_all("span", data_source=True):
        source, column, unit = span.attrs["data-source"], span.attrs["data-column"], span.attrs["data-unit"]
        key = json.loads(span.attrs["data-key"])
        stored = sources.value(source, key, column)
        if hasattr(stored, "item"):
            stored = stored.item()
        shown_json = json.loads(span.attrs["data-value"])
        where = f"{source} {key} {column}"
        assert same_value(stored, shown_json), f"{where}: page says {shown_json!r}, file has {stored!r}"
        text = span.all_text()
        if unit == "text":
            expected = ("—" if stored is None else ("yes" if stored else "no") if isinstance(stored, bool)
                        else str(stored))
            assert text == expected, f"{where}: shows {text!r}, file has {stored!r}"
        else:
            value, tolerance = parse_number(text, unit)
            if math.isnan(float(stored)):
                assert math.isnan(value), f"{where}: shows {text!r} for NaN"
            elif math.isinf(float(stored)):
                assert value == float(stored), f"{where}: shows {text!r}"
            else:
                assert abs(value - float(stored)) <= tolerance * (1 + 1e-9) + 1e-12 * abs(float(stored)), (
                    f"{where}: shows {text!r}, file has {stored!r}")
        checked += 1
    return checked


def significant_digits(text: str) -> int:
    body = text.replace(",", "").replace("−", "").strip().rstrip("%×ym ").lstrip("0.")
    return len(body.replace(".", "")) if body else 0
