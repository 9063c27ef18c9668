"""Word (DOCX) via python-docx: paragraphs with headings as Markdown, tables as rows."""

from __future__ import annotations

import io
import re
from typing import Any

from memexfs.extract.formats.base import (
    ExtractionError,
    Job,
    Parsed,
    clean_meta,
    register,
    useful_title,
)
from memexfs.extract.sniff import Sniffed


@register("docx")
def parse_docx(data: bytes, sniffed: Sniffed, job: Job) -> Parsed:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise ExtractionError(f"unreadable DOCX: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # lxml/zipfile raise many types on corrupt files
        raise ExtractionError(f"unreadable DOCX: {type(exc).__name__}: {exc}") from exc
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = block.text.strip()
            if not text:
                continue
            style = (block.style.name if block.style is not None else "") or ""
            level = _heading_level(style)
            lines.append(("#" * level + " " + text) if level else text)
        elif isinstance(block, Table):
            lines.extend(_docx_table_lines(block))
    props = document.core_properties
    meta = {k: clean_meta(v) for k, v in (
        ("author", props.author), ("subject", props.subject), ("keywords", props.keywords),
        ("created", props.created.isoformat() if props.created else None),
    ) if clean_meta(v)}
    title = useful_title(clean_meta(props.title))
    if not title:
        title = next((ln.lstrip("# ") for ln in lines if ln.startswith("#")), "")
    return Parsed(text="\n\n".join(lines), title=title, meta=meta)


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    m = re.match(r"Heading (\d)", style)
    return min(int(m.group(1)) + 1, 6) if m else 0


def _docx_table_lines(table: Any) -> list[str]:
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            t = " ".join(cell.text.split())
            if not cells or cells[-1] != t:  # merged cells repeat their text
                cells.append(t)
        if any(cells):
            rows.append(" | ".join(cells))
    return rows
