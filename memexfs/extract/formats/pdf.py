"""PDF via pypdf: page text in layout mode, document info as metadata, bounded output."""

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


@register("pdf")
def parse_pdf(data: bytes, sniffed: Sniffed, job: Job) -> Parsed:
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("PDF is encrypted with a password")
        pages = reader.pages
        meta: dict[str, str] = {"pages": str(len(pages))}
        title = ""
        info = reader.metadata
        if info is not None:
            title = clean_meta(info.title)
            for key, value in (("author", info.author), ("subject", info.subject),
                               ("creator", info.creator), ("producer", info.producer)):
                if clean_meta(value):
                    meta[key] = clean_meta(value)
        parts: list[str] = []
        total = 0
        warnings: list[str] = []
        for i, page in enumerate(pages):
            try:
                page_text = _page_text(page)
            except Exception as exc:  # one bad page must not lose the others
                warnings.append(f"page {i + 1}: {type(exc).__name__}: {exc}"[:300])
                continue
            parts.append(page_text.strip())
            total += len(page_text)
            if total > job.max_chars:
                warnings.append(f"stopped after page {i + 1} of {len(pages)}: output limit")
                break
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            AssertionError, RecursionError, OSError) as exc:
        raise ExtractionError(f"unreadable PDF: {type(exc).__name__}: {exc}") from exc
    text = "\n\n".join(p for p in parts if p)
    if not text.strip():
        warnings.append("PDF has no text layer (scanned image?)")
    return Parsed(text=text, title=useful_title(title), meta=meta, warnings=warnings)


def _page_text(page: Any) -> str:
    """Layout mode keeps "Label:   value" on one line (plain mode splits table cells onto lines);
    fall back to plain mode where layout mode fails on odd content streams."""
    try:
        text = page.extract_text(extraction_mode="layout") or ""
    except Exception:  # layout mode is the less robust of the two
        text = ""
    if not text.strip():
        text = page.extract_text() or ""
    lines = [re.sub(r" {3,}", "  ", ln.strip()) for ln in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
