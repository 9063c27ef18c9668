"""What every parser shares: its result, its error, the registry that picks it, text decoding.

Parsers are registered by the doc type :func:`memexfs.extract.sniff.sniff` assigns (the content
decides; the extension only refines text types there), one function per format, bytes in and
:class:`Parsed` out, so that e-mail attachments reuse them. ``memexfs.extract.formats`` imports
every format module, so the table is complete before any parser can run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from memexfs.extract.sniff import Sniffed, detect_text_encoding


@dataclass
class Parsed:
    """What one parser produced; merged into an ``Extracted`` record by the caller."""

    text: str
    title: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    """What a parser knows besides the bytes: the file's name, the output budget, the nesting."""

    name: str
    max_chars: int
    depth: int = 0  # 0 for the file itself, +1 per e-mail attachment level


class ExtractionError(Exception):
    """A file that its parser cannot read; the message becomes the file's status line."""


Parser = Callable[[bytes, Sniffed, Job], Parsed]
_PARSERS: dict[str, Parser] = {}


def register(*doc_types: str) -> Callable[[Parser], Parser]:
    """Make the decorated function the parser of ``doc_types``."""

    def add(fn: Parser) -> Parser:
        for doc_type in doc_types:
            if doc_type in _PARSERS:
                raise ValueError(f"two parsers for {doc_type!r}")
            _PARSERS[doc_type] = fn
        return fn

    return add


def has_parser(doc_type: str) -> bool:
    """Whether files of ``doc_type`` have text to extract (the others are metadata-only)."""
    return doc_type in _PARSERS


def parse(data: bytes, sniffed: Sniffed, job: Job) -> Parsed | None:
    """Run the parser of ``sniffed.doc_type``; None when the type has no text."""
    fn = _PARSERS.get(sniffed.doc_type)
    return None if fn is None else fn(data, sniffed, job)


def decode(data: bytes, encoding: str | None) -> tuple[str, str]:
    """Text with newlines normalised and NULs dropped, and the codec that was used."""
    codec = encoding or detect_text_encoding(data) or "utf-8"
    try:
        text = data.decode(codec, errors="replace")
    except LookupError:
        codec = "utf-8"
        text = data.decode(codec, errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", ""), codec


def clean_meta(value: object) -> str:
    """A metadata value on one line, bounded."""
    if value is None:
        return ""
    return " ".join(str(value).split())[:300]


def useful_title(title: str) -> str:
    """Drop metadata titles that say nothing ("untitled", "Microsoft Word - x.docx")."""
    t = title.strip()
    if not t or t.lower() in {"untitled", "title", "document", "(anonymous)", "none"}:
        return ""
    t = re.sub(r"^Microsoft (?:Word|Excel|PowerPoint) - ", "", t)
    return t
