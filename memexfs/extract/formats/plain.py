"""Plain text, Markdown and source code: decoded as sniffed; Markdown gets its title."""

from __future__ import annotations

import re

from memexfs.extract.formats.base import Job, Parsed, decode, register
from memexfs.extract.sniff import Sniffed


@register("text", "markdown", "code")
def parse_text(data: bytes, sniffed: Sniffed, job: Job) -> Parsed:
    text, codec = decode(data, sniffed.encoding)
    meta = {"encoding": codec}
    meta.update(sniffed.extra)
    title = ""
    if sniffed.doc_type == "markdown":
        title = _markdown_title(text)
    return Parsed(text=text, title=title, meta=meta)


_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_FRONT_MATTER_TITLE = re.compile(
    r"\A---\s*\n(?:.*\n)*?title:\s*[\"']?(.+?)[\"']?\s*\n(?:.*\n)*?---"
)


def _markdown_title(text: str) -> str:
    fm = _FRONT_MATTER_TITLE.match(text[:4000])
    if fm:
        return fm.group(1).strip()
    m = _MD_HEADING.search(text[:20000])
    return _strip_md(m.group(1)) if m else ""


def _strip_md(s: str) -> str:
    return re.sub(r"[*_`]+", "", s).strip()
