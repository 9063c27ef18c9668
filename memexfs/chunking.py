"""Token-aware chunking that follows the document's own structure.

Chunks break at section headings first, then paragraphs, lines, sentences and words (raw characters
only for pathological input such as a 2 MB line). Consecutive chunks of one section overlap by a few
tokens so a sentence cut at a boundary is still whole in one of them. Every chunk's embedding text
starts with a short header (title · path · section) so short files and terse sections embed with
their context.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = ["Chunk", "chunk_document", "estimate_tokens"]


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str  # what the encoder embeds: a short header (title · path · section heading) + body
    body: str  # the body only (for snippets and BM25)
    start: int  # char offsets of body in the document text: body == text[start:end]
    end: int


_TOKEN_RE = re.compile(r"[^\W\d_]+|\d+|[^\w\s]|_")


def estimate_tokens(text: str) -> int:
    """A cheap stand-in for a WordPiece tokenizer; errs on the high side so chunks stay in budget.

    Common words are one token, long or rare ones a few, numbers about one per 3-4 digits and each
    punctuation mark one.
    """
    n = 0
    for m in _TOKEN_RE.finditer(text):
        w = m.group()
        if w[0].isdigit():
            n += 1 + (len(w) - 1) // 3
        elif len(w) > 1:
            n += 1 + len(w) // 7
        else:
            n += 1
    return n


_HEADING_RE = re.compile(r"^[ \t]{0,3}(#{1,6})[ \t]+(\S.*?)[ \t#]*$", re.MULTILINE)
_PARA_SEP_RE = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?;])[\"')\]]*\s+")
_SPACE_RE = re.compile(r"\s+")
_HEADER_SEP = " · "


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    section: int  # index into the section list
    para_start: bool  # first unit of a paragraph


@dataclass(frozen=True)
class _Section:
    heading: str
    start: int
    end: int


def chunk_document(
    text: str,
    *,
    title: str,
    path: str,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int = 200,
    overlap_tokens: int = 32,
    max_chunks: int = 2000,
) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``max_tokens`` (header included, as counted by
    ``count_tokens``). Empty text gives one chunk of title and path, so every file is findable by
    name. Beyond ``max_chunks`` the rest of the document is not chunked (logged)."""
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    count = count_tokens or estimate_tokens
    # Only the first max_chunks * max_tokens tokens can be emitted; a token is rarely longer than
    # 10 characters, so splitting (and tokenizing) text beyond this bound is wasted work.
    text = text[: max_chunks * max_tokens * 10]
    overlap_tokens = max(0, min(overlap_tokens, max_tokens // 3))
    sections = _sections(text)
    headers = [_header(title, path, s.heading, count, max_tokens // 4) for s in sections]
    budgets = [max(max_tokens - count(h) - 1, max_tokens // 2) for h in headers]
    if not text.strip():
        header = _header(title, path, "", count, max_tokens)
        return [Chunk(0, header, "", 0, 0)]

    chunks: list[Chunk] = []

    def emit(start: int, end: int, section: int) -> None:
        body = text[start:end]
        chunks.append(Chunk(len(chunks), f"{headers[section]}\n{body}", body, start, end))

    section_tokens = [0] * len(sections)
    units: list[_Unit] = []
    for si, sec in enumerate(sections):
        for u in _units(text, sec, si, budgets[si], count):
            units.append(u)
            section_tokens[si] += u.tokens

    cur_start = -1  # char offset where the current chunk's body starts
    cur_end = -1
    cur_section = 0
    cur_tokens = 0
    for i, u in enumerate(units):
        budget = budgets[cur_section] if cur_start >= 0 else budgets[u.section]
        if cur_start >= 0:
            new_section = u.section != units[i - 1].section
            room = budget - cur_tokens
            if new_section:
                # A whole small section may join the chunk; otherwise it starts a fresh one.
                rest = sum(x.tokens for x in units[i:] if x.section == u.section)
                brk = rest > room
            elif u.tokens > room:
                brk = True
            elif u.para_start and cur_tokens >= budget // 2:
                # Break before a paragraph that would not fit whole, rather than cut it.
                brk = _para_tokens(units, i) > room
            else:
                brk = False
            if brk:
                emit(cur_start, cur_end, cur_section)
                if len(chunks) >= max_chunks:
                    log.info("chunking stopped at %d chunks (%s)", max_chunks, path)
                    return chunks
                if new_section or overlap_tokens == 0:
                    cur_start, cur_tokens = -1, 0
                else:
                    cur_start = _overlap_start(text, cur_start, cur_end, overlap_tokens, count)
                    cur_tokens = count(text[cur_start:cur_end]) if cur_start < cur_end else 0
                    if cur_tokens + u.tokens > budgets[u.section]:
                        cur_start, cur_tokens = -1, 0
        if cur_start < 0:
            cur_start, cur_section = u.start, u.section
        cur_end = u.end
        cur_tokens += u.tokens
    if cur_start >= 0:
        emit(cur_start, cur_end, cur_section)
    return chunks


def _para_tokens(units: list[_Unit], i: int) -> int:
    total = units[i].tokens
    for u in units[i + 1 :]:
        if u.para_start or u.section != units[i].section:
            break
        total += u.tokens
    return total


def _sections(text: str) -> list[_Section]:
    """Split at markdown-style headings (the HTML and DOCX extractors emit them too)."""
    sections: list[_Section] = []
    prev_start, prev_heading = 0, ""
    for m in _HEADING_RE.finditer(text):
        if m.start() > prev_start and text[prev_start : m.start()].strip():
            sections.append(_Section(prev_heading, prev_start, m.start()))
        elif m.start() > prev_start:
            pass  # only whitespace before the first heading
        prev_start, prev_heading = m.start(), _clean_heading(m.group(2))
    sections.append(_Section(prev_heading, prev_start, len(text)))
    return sections


def _clean_heading(s: str) -> str:
    return re.sub(r"[*_`]+", "", s).strip()[:120]


def _header(title: str, path: str, heading: str, count: Callable[[str], int], limit: int) -> str:
    parts: list[str] = []
    for p in (title.strip(), path.strip(), heading.strip()):
        p = " ".join(p.split())
        if p and all(p.lower() != q.lower() for q in parts):
            parts.append(p)
    header = _HEADER_SEP.join(parts)
    while header and count(header) > limit:
        header = header[: max(len(header) * 3 // 4, 1)].rstrip()
        if len(header) <= 1:
            break
    return header


def _units(text: str, sec: _Section, si: int, budget: int, count: Callable[[str], int]) -> (
    Iterator[_Unit]
):
    pos = sec.start
    for m in [*_PARA_SEP_RE.finditer(text, sec.start, sec.end), None]:
        end = m.start() if m is not None else sec.end
        s, e = _strip(text, pos, end)
        if s < e:
            first = True
            for ps, pe, tok in _split(text, s, e, budget, count, level=0):
                yield _Unit(ps, pe, tok, si, first)
                first = False
        if m is not None:
            pos = m.end()


def _strip(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


_SPLITTERS: tuple[re.Pattern[str], ...] = (re.compile(r"\n"), _SENTENCE_END_RE)


def _split(text: str, s: int, e: int, budget: int, count: Callable[[str], int], level: int) -> (
    Iterator[tuple[int, int, int]]
):
    """Yield (start, end, tokens) pieces of text[s:e], each within ``budget`` tokens, splitting by
    lines, then sentences, then whitespace-snapped windows."""
    tokens = count(text[s:e])
    if tokens <= budget:
        yield s, e, tokens
        return
    while level < len(_SPLITTERS):
        seps = list(_SPLITTERS[level].finditer(text, s, e))
        level += 1
        if seps:
            pos = s
            for m in seps:
                ps, pe = _strip(text, pos, m.start())
                if ps < pe:
                    yield from _split(text, ps, pe, budget, count, level)
                pos = max(pos, m.end())
            ps, pe = _strip(text, pos, e)
            if ps < pe:
                yield from _split(text, ps, pe, budget, count, level)
            return
    yield from _windows(text, s, e, tokens, budget, count)


def _windows(text: str, s: int, e: int, tokens: int, budget: int, count: Callable[[str], int]) -> (
    Iterator[tuple[int, int, int]]
):
    """Cut a piece with no usable separators into windows, snapped to whitespace when possible."""
    chars_per_token = max((e - s) / max(tokens, 1), 0.5)
    pos = s
    while pos < e:
        size = max(int(budget * chars_per_token * 0.9), 1)
        while True:
            end = min(pos + size, e)
            if end < e:
                space = text.rfind(" ", pos + size // 2, end)
                if space > pos:
                    end = space
            n = count(text[pos:end])
            if n <= budget or end - pos <= 1:
                break
            size = max(int(size * 0.75), 1)
        ps, pe = _strip(text, pos, end)
        if ps < pe:
            yield ps, pe, n
        pos = end


def _overlap_start(text: str, start: int, end: int, overlap: int, count: Callable[[str], int]) -> (
    int
):
    """Where the next chunk begins: at most ``overlap`` tokens before ``end``, on a sentence start
    when one is near, else on a word start."""
    window_start = max(start, end - overlap * 12)
    words = [m.start() for m in re.finditer(r"\S+", text[window_start:end])]
    if len(words) <= 1:
        return end
    # Binary search over word starts for the longest suffix within the overlap budget.
    lo, hi = 1, len(words) - 1  # never the whole previous window's first word
    best = end
    while lo <= hi:
        mid = (lo + hi) // 2
        cand = window_start + words[mid]
        if count(text[cand:end]) <= overlap:
            best, hi = cand, mid - 1
        else:
            lo = mid + 1
    if best >= end:
        return end
    # Prefer starting at a sentence boundary inside the overlap.
    m = _SENTENCE_END_RE.search(text, best, end)
    if m is not None and m.end() < end:
        return m.end()
    return best
