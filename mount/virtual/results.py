"""What a result folder lists, and the ``.results`` text format with its parser.

``.results`` is ``rank\\tscore\\tpath\\tsnippet`` per result (the ranking score: it never goes
up as the rank goes down), under a ``# rank...`` header and an optional ``# reason`` line; a
result's cosine and extracted fields go on a comment line after its row
(``# rank\\tcosine=0.4123\\tkind=invoice\\tvendor=acme...``), so the four columns stay what every
reader splits.
Paths and field values are escaped so a row stays one line whatever a file is called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from memexfs.fields_memory import DocFields
from mount.inodes import Node

RESULTS = ".results"
ABOUT = ".query"  # how the folder's name was read (query folders only)


@dataclass
class Hit:
    name: str  # entry name (basename, deduplicated)
    path: str  # vault-relative path of the real file
    score: float  # the ranking score
    rank: int
    snippet: str
    fields: DocFields | None = None  # extracted fields, from the hit's payload
    cosine: float | None = None  # of the query and the hit's best chunk (what ``min:`` uses)


@dataclass
class Listing:
    hits: list[Hit]
    reason: str | None
    generation: int
    about: str = ""  # the text of ``.query``: how the name was read ("" = no such file)
    # Entry nodes handed out for this listing, by name: repeated ``ls`` of a folder gives the
    # kernel the same inodes instead of a fresh one per entry per opendir.
    nodes: dict[str, Node] = field(default_factory=dict)

    def results_text(self) -> bytes:
        lines = ["# rank\tscore\tpath\tsnippet"]
        if self.reason:
            lines.append(f"# {' '.join(self.reason.split())}")
        for h in self.hits:
            snippet = " ".join(h.snippet.split())
            lines.append(f"{h.rank}\t{h.score:.4f}\t{escape_field(h.path)}\t{snippet}")
            if h.fields is not None or h.cosine is not None:
                lines.append(fields_line(h.rank, h.fields, h.cosine))
        return os.fsencode("\n".join(lines) + "\n")


def fields_line(rank: int, fields: DocFields | None, cosine: float | None = None) -> str:
    """The comment line after a result's row that carries its cosine and fields: ``# 3\\t
    cosine=0.4123\\tkind=invoice\\tvendor=acme\\tamount=120.00...`` (known ones only). A
    comment, so the four columns of the rows stay what every reader of ``.results`` splits;
    ``name=value``, so fields can be added."""
    shown = {} if fields is None else fields.shown()
    if cosine is not None:
        shown = {"cosine": f"{cosine:.4f}", **shown}
    pairs = (f"{name}={escape_field(value)}" for name, value in shown.items())
    return "\t".join((f"# {rank}", *pairs))


def read_fields_line(line: str) -> tuple[int, DocFields | None] | None:
    """(rank, fields) of a line :func:`fields_line` wrote; None for any other line (a reason
    line never holds a tab: it is one line of words)."""
    head, sep, rest = line.partition("\t")
    if not sep or not head.startswith("# ") or not head[2:].isdigit():
        return None
    values = {}
    for pair in rest.split("\t"):
        name, _, value = pair.partition("=")
        values[name] = unescape_field(value)
    return int(head[2:]), DocFields.from_text(values)


def read_cosine(line: str) -> float | None:
    """The ``cosine=`` of a line :func:`fields_line` wrote; None when it has none."""
    if read_fields_line(line) is None:
        return None
    for pair in line.split("\t")[1:]:
        name, _, value = pair.partition("=")
        if name == "cosine":
            try:
                return float(value)
            except ValueError:
                return None
    return None


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_field(value: str) -> str:
    """A ``.results`` column: backslash, tab, newline and CR escaped so a row stays one line of
    tab-separated fields whatever a file is called (``unescape_field`` reverses it)."""
    return "".join(_ESCAPES.get(c, c) for c in value)


def unescape_field(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for c in chars:
        if c != "\\":
            out.append(c)
            continue
        nxt = next(chars, "")
        out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(nxt, "\\" + nxt))
    return "".join(out)


def dedup_names(paths: list[str]) -> list[str]:
    """Basenames, made unique with a ' (2)' suffix before the extension when two collide; a
    suffix never takes a name that another result really has ("x (2).txt" stays that file's)."""
    bases = [p.rsplit("/", 1)[-1] for p in paths]
    real = set(bases)
    taken: set[str] = set()
    out = []
    for base in bases:
        name, n = base, 1
        while name in taken:
            n += 1
            stem, dot, ext = base.rpartition(".")
            name = f"{stem} ({n}).{ext}" if dot and stem else f"{base} ({n})"
            if name in real and name != base:
                name = base  # that name belongs to another result: try the next number
        taken.add(name)
        out.append(name)
    return out
