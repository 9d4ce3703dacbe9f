"""What a scenario file says about its numbers in comments: sources and estimate tags.

Shipped scenarios state their sources and mark each number's standing with a tag in a comment
(``../shared/DEALS.md``): ``[V]`` verified from the cited source, ``[D]`` derived from verified
inputs, ``[R]`` recalled or secondary, ``[E]`` an estimate, ``[S]`` a stress level (an analyst's
choice). TOML parsers drop comments, so this reads the file's lines: the header block, free
comment blocks (with the table they precede) and each key's trailing comment, following the
``extends`` chain (the variant first, then its bases).

Every key is also recorded as a :class:`ValueNote` with the tags that cover it: its own trailing
comment (on any line of a multi-line value), else a tagged comment block right above its table
(or first inside it), which covers the whole table, or right above the key itself. A block right
above an array-of-tables element covers that element and the ones after it, until another block
stands above an element. :func:`untagged_numbers` lists the numbers nothing tags.
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


@dataclass(frozen=True)
class ValueNote:
    """A key as written, commented or not, and the tags that cover it.

    key, value : as in :class:`KeyNote` (a multi-line value joined with newlines)
    tags : the tag letters of its own trailing comment (every line of a multi-line value)
    block_tags : the tag letters of the comment block that covers it (its table's or its own)
    numeric : the value is a number, or an array or inline table holding one (not a bool or date)
    """

    file: str
    key: str
    value: str
    tags: tuple[str, ...]
    block_tags: tuple[str, ...]
    numeric: bool

    @property
    def effective_tags(self) -> tuple[str, ...]:
        """Its own tags, else its block's."""
        return self.tags or self.block_tags


@dataclass
class FileNotes:
    """The comments of one file: its header block, free blocks and key comments; ``values`` holds
    every key, commented or not."""

    file: str
    header: str = ""
    blocks: list[tuple[str, str]] = field(default_factory=list)  # (table or key that follows, text)
    keys: list[KeyNote] = field(default_factory=list)
    values: list[ValueNote] = field(default_factory=list)


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
    pending: list = []  # [key, value lines, comment lines, block tags] of a multi-line value
    table_tags: tuple[str, ...] = ()  # tags of the block that covers the current table
    array_tags: dict[str, tuple[str, ...]] = {}  # array name -> tags of the block above its last element
    first_key = False  # the next key is the first of its table

    def flush(context: str) -> tuple[str, ...]:
        """Close the comment block; its tags (none for the header)."""
        nonlocal block
        text = "\n".join(block).strip("\n")
        tags: tuple[str, ...] = ()
        if text.strip():
            if not seen_content and not notes.header:
                notes.header = text
            else:
                notes.blocks.append((context, text))
                tags = tags_of(text)
        block = []
        return tags

    def record(key: str, value: str, comment: str, block_tags: tuple[str, ...]) -> None:
        if comment:
            notes.keys.append(KeyNote(str(path), key, value, comment, tags_of(comment)))
        notes.values.append(ValueNote(str(path), key, value, tags_of(comment), block_tags, _numeric(value)))

    for line in lines:
        stripped = line.strip()
        if depth > 0:  # inside a multi-line array or inline table
            value, comment = _split_comment(line)
            depth += value.count("[") + value.count("{") - value.count("]") - value.count("}")
            pending[1].append(value)
            if comment:
                pending[2].append(comment)
            if depth <= 0:
                record(pending[0], "\n".join(pending[1]), " ".join(pending[2]), pending[3])
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
            had_block = any(b.strip() for b in block) and seen_content
            tags = flush(name)
            if m.group(1) == "[[":
                if had_block:  # a block above an element covers it and the elements after it
                    array_tags[name] = tags
                table_tags = array_tags.get(name, ())
            else:
                table_tags = tags
            seen_content = True
            first_key = True
            continue
        km = _KEY.match(line)
        if km:
            key = km.group(1).strip().strip("\"'")
            value, comment = _split_comment(km.group(2))
            full = f"{table}.{key}" if table else key
            tags = flush(full)
            if first_key and tags:  # a block first inside a table covers the table
                table_tags = tags
            first_key = False
            seen_content = True
            depth = value.count("[") + value.count("{") - value.count("]") - value.count("}")
            if key in ("id", "name") and table.endswith("]"):
                label = _toml_value(value)
                if label:
                    array = table[:table.rindex("[")]
                    old = f"{array}[{element.get(array)}]"
                    new = f"{array}[{label}]"
                    notes.keys = [KeyNote(k.file, _relabel(k.key, old, new), k.value, k.comment, k.tags)
                                  for k in notes.keys]
                    notes.values = [ValueNote(v.file, _relabel(v.key, old, new), v.value, v.tags, v.block_tags,
                                              v.numeric) for v in notes.values]
                    element[array] = label
                    table = new
                    full = f"{table}.{key}"
            if depth > 0:
                pending = [full, [value], [comment] if comment else [], tags or table_tags]
            else:
                record(full, value, comment, tags or table_tags)
    flush("(end of file)")
    return notes


def _relabel(key: str, old: str, new: str) -> str:
    """``key`` with its array element ``old`` (``pool.licences[1]``) renamed ``new``."""
    return new + key[len(old):] if key.startswith(old + ".") else key


def _numeric(text: str) -> bool:
    """Whether a value as written is a number or holds one (a bool or a date is not)."""
    try:
        value = tomllib.loads(f"x = {text}")["x"]
    except tomllib.TOMLDecodeError:
        return False

    def has_number(v) -> bool:
        if isinstance(v, bool):
            return False
        if isinstance(v, (int, float)):
            return True
        if isinstance(v, list):
            return any(has_number(x) for x in v)
        if isinstance(v, dict):
            return any(has_number(x) for x in v.values())
        return False

    return has_number(value)


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


def untagged_numbers(path: str | Path, skip: tuple[str, ...] = ("simulation",)) -> list[ValueNote]:
    """The numbers of a scenario file and its bases that no tag covers (see :class:`ValueNote`).

    ``skip``: top-level tables left out (``[simulation]`` holds run settings, not facts about a
    deal); ``extends`` is a path, never a number. Numbers in a ``pool.file`` CSV are not read.
    """
    return [v for notes in scenario_notes(path) for v in notes.values
            if v.numeric and not v.effective_tags and v.key.split(".")[0].split("[")[0] not in skip]


__all__ = ["TAGS", "FileNotes", "KeyNote", "ValueNote", "read_file_notes", "scenario_notes", "tags_of",
           "untagged_numbers"]
