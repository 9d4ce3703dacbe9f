"""The committee pack's building blocks: sections of tables, figures and notes, rendered to one
self-contained HTML page by the Jinja2 templates in ``templates/``.

A page is a list of :class:`Section`; a section holds blocks (:class:`Table`, :class:`FigureBlock`,
:class:`Note`, :class:`Text`, :class:`Pre`). Table cells are lists of parts: text, or
:class:`~simengine.results.format.Shown` numbers that carry their source into the HTML. Figures
are embedded as base64 SVG (or PNG) data URIs: the page loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime

import matplotlib
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from matplotlib.figure import Figure

from .._version import __version__
from .format import Shown

Part = Shown | str
Cell = list[Part]


@dataclass
class Table:
    """A table: header rows of (label, colspan) (none for a two-column list of facts), body rows of
    cells; the first cell of a row is its label (a ``th``)."""

    head: list[list[tuple[str, int]]]
    rows: list[list[Cell]]
    caption: str = ""
    notes: list[str] = field(default_factory=list)
    wide: bool = False
    numeric: bool = False  # every data cell right-aligned (text such as ratings too)
    origin: str = ""  # a table that quotes a file's text (not numbers from the run folder): which file
    kind: str = "table"


@dataclass
class Grid:
    """Small tables side by side (they wrap to the next line where the page is narrow)."""

    blocks: list
    kind: str = "grid"


@dataclass
class FigureBlock:
    """An embedded figure (``src`` is a data URI) with its kind and caption."""

    name: str
    src: str
    caption: str
    kind: str = "figure"


@dataclass
class Note:
    """A remark in a box: ``level`` is ``missing`` (data not in the folder), ``warning`` or ``info``."""

    text: str
    level: str = "info"
    kind: str = "note"


@dataclass
class Text:
    """A paragraph."""

    text: str
    kind: str = "text"


@dataclass
class Pre:
    """Preformatted text (scenario comments), with a title."""

    title: str
    text: str
    kind: str = "pre"


@dataclass
class Section:
    """A numbered section of the page; ``sub`` is True for a subsection (h3)."""

    id: str
    title: str
    blocks: list = field(default_factory=list)
    sub: bool = False
    number: str = ""


def number_sections(sections: list[Section]) -> list[Section]:
    """Number sections 1, 2, ... and their subsections 1.1, 1.2, ... in order."""
    top = sub = 0
    for s in sections:
        if s.sub:
            sub += 1
            s.number = f"{top}.{sub}"
        else:
            top, sub = top + 1, 0
            s.number = f"{top}"
    return sections


def missing(what: str, why: str = "") -> Note:
    """The note a section shows when its data is not in the folder."""
    return Note(f"Not in this run folder: {what}." + (f" {why}" if why else ""), "missing")


def embed(fig: Figure, fmt: str = "svg", dpi: int = 110) -> str:
    """A Figure as a data URI (SVG with text as paths, so no font is needed; or PNG)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "simengine", "svg.fonttype": "path"}):
        metadata = {"Date": None} if fmt == "svg" else {}
        fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def figure_block(name: str, fig: Figure, caption: str, fmt: str = "svg") -> FigureBlock:
    """:class:`FigureBlock` of a Figure."""
    return FigureBlock(name, embed(fig, fmt), caption)


_ENV: Environment | None = None


def environment() -> Environment:
    """The Jinja2 environment of the package's templates (autoescaped, strict about undefined names)."""
    global _ENV
    if _ENV is None:
        _ENV = Environment(loader=PackageLoader("simengine.results", "templates"),
                           autoescape=select_autoescape(default=True, default_for_string=True),
                           undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        _ENV.tests["shown"] = lambda x: isinstance(x, Shown)
    return _ENV


def render(title: str, subtitle: str, sections: list[Section], template: str = "page.html.j2", **extra) -> str:
    """The page: ``template`` filled with ``sections``; ``extra`` gives heading, page_kind, folder, footer."""
    return environment().get_template(template).render(
        title=title, subtitle=subtitle, sections=number_sections(sections), version=__version__,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), **extra)


__all__ = ["Cell", "FigureBlock", "Grid", "Note", "Part", "Pre", "Section", "Table", "Text", "embed", "environment",
           "figure_block", "missing", "number_sections", "render"]
