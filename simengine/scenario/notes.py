"""What a scenario file says about its numbers in comments: sources and estimate tags.

Shipped scenarios state their sources and mark each number's standing with a tag in a comment
(``../shared/DEALS.md``): ``[V]`` verified from the cited source, ``[D]`` derived from verified
inputs, ``[R]`` recalled or secondary, ``[E]`` an estimate, ``[S]`` a stress level (an analyst's
choice). TOML parsers drop comments, so this reads the file's lines: the header block, free
comment blocks (with the table they precede) and each key's trailing comment, following the
``extends`` chain (the variant first, then its bases).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

TAGS = {"V": "verified", "D": "derived", "R": "recalled", "E": "estimate", "S": "stress level"}
_TAG = re.compile(r"\[([VDRES])(?=[\],\s;])[^\]]*\]")
_TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'. ]+?)\s*=\s*(.*)$")


@dataclass(frozen=True)
class KeyNote:
    """A key's trailing comment.

    key : dotted path; an array-of-tables element is named by its ``id`` or ``name``, else its
        1-based position (``pool.licences[GZ01].royalty``, ``structure.tranches[senior].balance``)
    value : the value as written
    comment : the comment without its ``#``
    tags : the tag letters it carries (``("E",)``)
    """

    file: str
    key: str
    value: str
    comment: str
    tags: tuple[str, ...]


@dataclass
class FileNotes:
    """The comments of one file: its header block, free blocks and key comments."""

    file: str
    header: str = ""
    blocks: list[tuple[str, str]] = field(default_factory=list)  # (table or key that follows, text)
    keys: list[KeyNote] = field(default_factory=list)


def _split_comment(text: str) -> tuple[str, str]:
    """(value, comment) of the rest of a key line, outside strings."""
    quote = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
        elif text.startswith(('"""', "'''"), i):
            quote = text[i:i + 3]
            i += 3
            continue
        elif c in "\"'":
            quote = c
        elif c == "#":
            return text[:i].strip(), text[i + 1:].strip()
        i += 1
    return text.strip(), ""


def tags_of(comment: str) -> tuple[str, ...]:
    """Tag letters in a comment, in order, each once (``"[V, secondary]"`` gives ``("V",)``)."""
    return tuple(dict.fromkeys(_TAG.findall(comment)))


def read_file_notes(path: Path) -> FileNotes:
    """The comments of one scenario file (``extends`` is not followed here)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    notes = FileNotes(file=str(path))
    table = ""  # dotted prefix of the current table
    counts: dict[str, int] = {}
    element: dict[str, str] = {}  # array name -> current element label
    block: list[str] = []
    seen_content = False
    depth = 0  # open brackets of a multi-line value

    def flush(context: str) -> None:
        nonlocal block
        text = "\n".join(block).strip("\n")
        if text.strip():
            if not seen_content and not notes.header:
                notes.header = text
            else:
                notes.blocks.append((context, text))
        block = []

    for line in lines:
        stripped = line.strip()
        if depth > 0:  # inside a multi-line array or inline table
            value, _ = _split_comment(line)
            depth += value.count("[") + value.count("{") - value.count("]") - value.count("}")
            continue
        if stripped.startswith("#"):
            block.append(stripped[1:].removeprefix(" "))
            continue
        if not stripped:
            if block and not seen_content:
                flush("")
            continue
        m = _TABLE.match(line)
        if m:
            name = m.group(2).strip()
            if m.group(1) == "[[":
                counts[name] = counts.get(name, 0) + 1
                element[name] = str(counts[name])
                table = f"{name}[{element[name]}]"
            else:
                table = name
            flush(name)
            seen_content = True
            continue
        km = _KEY.match(line)
        if km:
            key = km.group(1).strip().strip("\"'")
            value, comment = _split_comment(km.group(2))
            full = f"{table}.{key}" if table else key
            flush(full)
            seen_content = True
            depth = value.count("[") + value.count("{") - value.count("]") - value.count("}")
            if key in ("id", "name") and table.endswith("]"):
                label = _toml_value(value)
                if label:
                    array = table[:table.rindex("[")]
                    old = f"{array}[{element.get(array)}]"
                    new = f"{array}[{label}]"
                    notes.keys = [KeyNote(k.file, new + k.key[len(old):] if k.key.startswith(old + ".") else k.key,
                                          k.value, k.comment, k.tags) for k in notes.keys]
                    element[array] = label
                    table = new
                    full = f"{table}.{key}"
            if comment:
                notes.keys.append(KeyNote(str(path), full, value, comment, tags_of(comment)))
    flush("(end of file)")
    return notes


def _toml_value(text: str) -> str:
    try:
        value = tomllib.loads(f"x = {text}")["x"]
    except tomllib.TOMLDecodeError:
        return ""
    return value if isinstance(value, str) else str(value)


def scenario_notes(path: str | Path) -> list[FileNotes]:
    """The comments of a scenario file and of every base it extends, the file itself first.

    Raises OSError where a file cannot be read; a broken ``extends`` ends the chain there.
    """
    out: list[FileNotes] = []
    current: Path | None = Path(path).resolve()
    seen: set[Path] = set()
    while current is not None and current not in seen:
        seen.add(current)
        out.append(read_file_notes(current))
        try:
            parent = tomllib.loads(current.read_text(encoding="utf-8")).get("extends")
        except tomllib.TOMLDecodeError:
            parent = None
        current = (current.parent / parent).resolve() if isinstance(parent, str) else None
    return out


__all__ = ["TAGS", "FileNotes", "KeyNote", "read_file_notes", "scenario_notes", "tags_of"]
