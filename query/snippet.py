"""One-line snippets for results (``.results`` is tab-separated, so no tabs or newlines).

The snippet is the passage of the best chunk that matched: the window holding the most distinct
query words, from the chunk's lines minus the ones repeated across many files of the vault
(letterheads, footers, legal lines: :mod:`query.boilerplate`). A repeated line holding a query
word is left out all the same: every Acme invoice says "Questions about this invoice? Contact
Acme Corp", which tells none of them apart; only one holding the whole query (of two words or
more: "thank you for your business") stays, since then it is what was asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from query.boilerplate import lines as split_lines
from query.boilerplate import normalise

_WORD = re.compile(r"\w+", re.UNICODE)
# C0/C1 controls and DEL (PDF bullets come out as \x7f): never in a snippet or an xattr.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_STOP = frozenset({
    "a", "an", "and", "are", "for", "from", "in", "is", "of", "on", "or", "the", "to", "with",
    "what", "which", "how", "my",
})  # fmt: skip
_MAX_STARTS = 64  # candidate windows looked at per snippet


def terms(query_text: str) -> list[tuple[str, ...]]:
    """The query words a snippet looks for, each with the forms that count as it ("invoices"
    is found as "invoice" too); short words and stopwords say little."""
    out: list[tuple[str, ...]] = []
    for w in _WORD.findall(query_text.lower()):
        if len(w) >= 3 and w not in _STOP and all(w != forms[0] for forms in out):
            out.append((w, w[:-1]) if len(w) > 4 and w.endswith("s") else (w,))
    return out


def _best_start(low: str, words: list[tuple[str, ...]], width: int) -> int:
    """Start of the ``width`` window (a quarter of it before a query word) that holds the most
    query words, the words nearest the front of the query breaking ties (the first words are
    usually the subject), then the earliest window; 0 when no word occurs."""
    starts = sorted({max(0, m.start() - width // 4) for forms in words for form in forms
                     for m in re.finditer(re.escape(form), low)})[:_MAX_STARTS]
    best, most = 0, (0, 0)
    for s in starts:
        window = low[s : s + width]
        found = [i for i, forms in enumerate(words) if any(f in window for f in forms)]
        if found and (len(found), -found[0]) > most:
            best, most = s, (len(found), -found[0])
    return best


def snippet(body: str, query_text: str, width: int = 160,
            common: Callable[[str], bool] | None = None) -> str:
    """``width`` characters of ``body`` around its best match for the query words; lines for
    which ``common`` is true are left out unless they hold the whole query (or nothing else is
    left)."""
    words = terms(query_text)
    if common is not None:
        phrase = normalise(query_text)
        phrase = phrase if " " in phrase else ""
        kept = [ln for ln in split_lines(body)
                if not common(ln) or (phrase and phrase in normalise(ln))]
        body = "\n".join(kept) if kept else body
    flat = " ".join(_CONTROL.sub(" ", body).split())
    if len(flat) <= width:
        return flat
    start = _best_start(flat.lower(), words, width)
    if start:  # begin at a word boundary
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    piece = flat[start : start + width]
    return ("…" if start else "") + piece.rstrip() + ("…" if start + width < len(flat) else "")
