"""One-line snippets for results (``.results`` is tab-separated, so no tabs or newlines)."""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)
# C0/C1 controls and DEL (PDF bullets come out as \x7f): never in a snippet or an xattr.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_STOP = frozenset({
    "a", "an", "and", "are", "for", "from", "in", "is", "of", "on", "or", "the", "to", "with",
    "what", "which", "how", "my",
})  # fmt: skip


def snippet(body: str, query_text: str, width: int = 160) -> str:
    """``width`` characters of ``body`` around the first query word it contains."""
    flat = " ".join(_CONTROL.sub(" ", body).split())
    if len(flat) <= width:
        return flat
    low = flat.lower()
    start = 0
    for w in _WORD.findall(query_text.lower()):
        if len(w) < 3 or w in _STOP:
            continue
        pos = low.find(w)
        if pos >= 0:
            start = max(0, pos - width // 4)
            break
    if start:  # begin at a word boundary
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    piece = flat[start : start + width]
    return ("…" if start else "") + piece.rstrip() + ("…" if start + width < len(flat) else "")
