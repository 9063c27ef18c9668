"""Extractive summaries: chosen sentences of a document (or a topic), each cited back.

Deterministic and offline. Sentences are split from the text (paragraphs, list items and
headings kept apart, wrapped lines joined), embedded with the encoder, and scored by

    centrality (cosine to the centroid of the document's sentences, or to a topic's centroid)
    + a position/section prior (the document's first sentence, the first one after a heading,
      and a mild decay with position: leads carry the point in notes, mail and reports)

then picked by MMR (maximal marginal relevance) so a near-duplicate of a chosen sentence is
never chosen; the picks are listed in document order. Centrality over sentence embeddings with a
position prior beats plain LexRank/TextRank in published comparisons, and is O(n) per document.

Output format (:func:`format_summary`), one line per sentence::

    - <sentence, whitespace collapsed>  [<path>:<line>]

``line`` is 1-based: the line of the file itself for text files; for extracted formats (PDF,
DOCX, e-mail) the line of the extracted text (:func:`document_text` says which). A sentence is a
verbatim substring of that text once runs of whitespace are collapsed to one space.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from memexfs.store import Filter, Match, Store

if TYPE_CHECKING:
    from embed import Encoder

log = logging.getLogger(__name__)

EncodeFn = Callable[[list[str]], np.ndarray]
BOILERPLATE_FILES = 3  # a sentence found in this many of a topic's summarised files is boilerplate


@dataclass(frozen=True)
class Tuning:
    """Scoring knobs (chosen by reading personal-dev summaries; see bench/graph_eval.py)."""

    lead_bonus: float = 0.10  # first sentence of the document / after a heading
    prose_bonus: float = 0.05  # ends like a sentence, few digits (see is_prose)
    position_weight: float = 0.05  # linear decay from the start to the end
    mmr_lambda: float = 0.7  # relevance vs. novelty
    duplicate_cos: float = 0.90  # never pick a sentence this close to a picked one
    max_sentences: int = 5
    max_candidates: int = 256  # sentences embedded per document (leads always kept)
    min_words: int = 4
    max_words: int = 80


@dataclass(frozen=True)
class Sentence:
    text: str  # whitespace collapsed
    line: int  # 1-based line of its first character
    index: int  # position among the document's sentences
    section: int  # headings seen before it
    lead: bool  # first sentence of the document or of a section
    path: str = ""


@dataclass(frozen=True)
class Picked:
    text: str
    path: str
    line: int
    score: float


# ---- splitting ---------------------------------------------------------------------------------
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S")
_BULLET = re.compile(r"^\s*(?:[-*+\u2022\u25cf\u25aa\x7f]|\d{1,3}[.)])\s+")
_TABLE = re.compile(r"^\s*\|")
_FENCE = re.compile(r"^\s*(```|~~~)")
_RULE = re.compile(r"^\s*([-=*_])\1{2,}\s*$")
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")
_ABBREV = frozenset("""mr mrs ms dr prof sr jr st vs etc e.g i.e fig no vol ch approx inc ltd co
corp dept est jan feb mar apr jun jul aug sep sept oct nov dec""".split())  # noqa: SIM905
_LABEL = re.compile(r"^[\W_]*[\w][\w ./&-]{0,30}:[*_]*\s")  # "Amount due: 149", "**Date:** ..."
_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*$")  # ends like a sentence
_WORDS = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")


def _sentences_of(par: str) -> list[tuple[int, int]]:
    """(start, end) of the sentences of one joined paragraph."""
    out, start = [], 0
    for m in _BOUNDARY.finditer(par):
        before = par[start:m.start()].rstrip(".!?\"')]\u201d\u2019").rsplit(None, 1)
        word = before[-1].lower().rstrip(".") if before else ""
        if word in _ABBREV or (len(word) == 1 and word.isalpha()):
            continue  # "Mr. Pruitt", "J. Smith"
        out.append((start, m.start()))
        start = m.end()
    if par[start:].strip():
        out.append((start, len(par)))
    return out


def _is_title(line: str) -> bool:
    return not _END.search(line) and _words(line) <= 12


def split_sentences(text: str, path: str = "") -> list[Sentence]:
    """Sentences of ``text`` with their lines; headings, table rows and code are not
    sentences (headings mark sections)."""
    out: list[Sentence] = []
    section, lead = 0, True
    para: list[tuple[int, str]] = []  # (line number, stripped line)
    fenced = False

    def flush() -> None:
        nonlocal lead, section
        if not para:
            return
        if not out and not section and len(para) == 1 and _is_title(para[0][1]):
            section += 1  # a document's title line ("QUIZ CARDS - ...") heads it like a heading
            para.clear()
            return
        joined, starts = "", []
        for no, ln in para:
            starts.append((len(joined), no))
            joined += ln + " "
        offsets = [s for s, _ in starts]
        for s, e in _sentences_of(joined):
            chunk = joined[s:e]
            body = " ".join(chunk.split())
            if not body:
                continue
            skip = len(chunk) - len(chunk.lstrip())
            line = starts[bisect.bisect_right(offsets, s + skip) - 1][1]
            out.append(Sentence(body, line, len(out), section, lead, path))
            lead = False
        para.clear()

    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if _FENCE.match(line):
            flush()
            fenced = not fenced
            continue
        if fenced:
            continue
        if not line or _RULE.match(line) or _TABLE.match(line):
            flush()
            continue
        if _HEADING.match(line):
            flush()
            section += 1
            lead = True
            continue
        bullet = _BULLET.match(line)
        if bullet:
            flush()
            line = line[bullet.end():]
        if _LABEL.match(line):  # "**Term:** meaning" rows stand alone, like list items
            flush()
            para.append((no, line))
            flush()
            continue
        para.append((no, line))
    flush()
    return out


def _words(s: str) -> int:
    return len(_WORDS.findall(s))


def is_prose(s: Sentence) -> bool:
    """Ends like a sentence and is mostly words (not an address line or a flattened table)."""
    digits = sum(ch.isdigit() for ch in s.text)
    return bool(_END.search(s.text)) and digits <= 0.15 * len(s.text)


def candidates(sentences: Sequence[Sentence], t: Tuning) -> list[Sentence]:
    """Sentences fit to be summary lines: text of reasonable length, mostly letters, not a
    short ``label: value`` row; relaxed to anything of two words when a document has none of
    those (an invoice may have nothing else)."""
    def plain(s: Sentence) -> bool:
        n = _words(s.text)
        if n < t.min_words or n > t.max_words:
            return False
        letters = sum(ch.isalpha() for ch in s.text)
        if letters < 0.5 * len(s.text):
            return False
        return not (_LABEL.match(s.text) and n < 8)

    good = [s for s in sentences if plain(s)]
    if not good:
        good = [s for s in sentences if _words(s.text) >= 2 and len(s.text) <= 400]
    if len(good) > t.max_candidates:  # keep every lead, spread the rest evenly
        leads = [s for s in good if s.lead]
        rest = [s for s in good if not s.lead]
        room = max(0, t.max_candidates - len(leads))
        step = len(rest) / room if room else math.inf
        spread = [rest[int(i * step)] for i in range(room)] if room else []
        good = sorted({*leads[: t.max_candidates], *spread}, key=lambda s: (s.path, s.index))
    return good


# ---- choosing ----------------------------------------------------------------------------------
def select(sentences: Sequence[Sentence], vectors: np.ndarray, t: Tuning | None = None,
           centroid: np.ndarray | None = None, k: int | None = None,
           per_source: int | None = None) -> list[Picked]:
    """Pick up to ``k`` sentences: centrality + position prior, MMR against redundancy.

    ``vectors`` are the sentences' unit vectors (rows in the same order); ``centroid`` defaults
    to their normalised mean. ``per_source`` caps picks per path (topic summaries).
    """
    t = t or Tuning()
    n = len(sentences)
    if n == 0:
        return []
    vecs = np.asarray(vectors, dtype=np.float32)
    cen = vecs.mean(axis=0) if centroid is None else np.asarray(centroid, dtype=np.float32)
    cen = cen / max(float(np.linalg.norm(cen)), 1e-9)
    central = vecs @ cen
    last = max(1, max(s.index for s in sentences))
    prior = np.array([(t.lead_bonus if s.lead else 0.0) + (t.prose_bonus if is_prose(s) else 0.0)
                      + t.position_weight * (1.0 - s.index / last) for s in sentences])
    relevance = central + prior
    if k is None:
        k = max(1, min(t.max_sentences, round(math.sqrt(n))))
    chosen: list[int] = []
    seen_text: set[str] = set()
    per: dict[str, int] = {}
    best_sim = np.full(n, -1.0, dtype=np.float32)
    alive = np.ones(n, dtype=bool)
    while len(chosen) < k and alive.any():
        redundancy = np.where(best_sim > -1.0, best_sim, 0.0)
        mmr = t.mmr_lambda * relevance - (1 - t.mmr_lambda) * redundancy
        mmr = np.where(alive, mmr, -np.inf)
        i = int(np.argmax(mmr))  # ties: the earliest sentence
        alive[i] = False
        s = sentences[i]
        key = s.text.casefold()
        if key in seen_text or best_sim[i] >= t.duplicate_cos:
            continue
        if per_source is not None and per.get(s.path, 0) >= per_source:
            continue
        chosen.append(i)
        seen_text.add(key)
        per[s.path] = per.get(s.path, 0) + 1
        best_sim = np.maximum(best_sim, vecs @ vecs[i])
    chosen.sort(key=lambda j: (sentences[j].path, sentences[j].index))
    return [Picked(sentences[j].text, sentences[j].path, sentences[j].line,
                   round(float(relevance[j]), 4)) for j in chosen]


def _encode(encoder: Encoder | EncodeFn, texts: list[str]) -> np.ndarray:
    if callable(encoder):
        return np.asarray(encoder(texts), dtype=np.float32)
    return np.asarray(encoder.encode(texts), dtype=np.float32)


def summarize(text: str, path: str, encoder: Encoder | EncodeFn, t: Tuning | None = None,
              k: int | None = None) -> list[Picked]:
    """A document's summary sentences, cited to ``path`` and their lines."""
    t = t or Tuning()
    cands = candidates(split_sentences(text, path), t)
    if not cands:
        return []
    return select(cands, _encode(encoder, [s.text for s in cands]), t, k=k)


def summarize_topic(docs: Iterable[tuple[str, str]], centroid: np.ndarray,
                    encoder: Encoder | EncodeFn, t: Tuning | None = None, k: int = 5,
                    per_doc: int = 24) -> list[Picked]:
    """A topic's summary: sentences of its most central files (``docs``: (path, text), most
    central first) closest to the topic's centroid, at most two per file, MMR across files;
    sentences repeated in ``BOILERPLATE_FILES`` of the files are left out.

    Only the first ``per_doc`` candidate sentences of each file are embedded: leads carry a
    document's point, and this keeps a topic summary cheap (~5 files × 24 sentences).
    """
    t = t or Tuning()
    pool: list[Sentence] = []
    for path, text in docs:
        pool += candidates(split_sentences(text, path), t)[:per_doc]
    # boilerplate ("Questions about your bill?") repeats across a topic's files: it says
    # nothing about the topic, however central it is
    spread = Counter(s.text.casefold() for s in {(x.path, x.text): x for x in pool}.values())
    pool = [s for s in pool if spread[s.text.casefold()] < BOILERPLATE_FILES]
    if not pool:
        return []
    return select(pool, _encode(encoder, [s.text for s in pool]), t, centroid=centroid, k=k,
                  per_source=2)


def format_summary(picks: Sequence[Picked]) -> str:
    """``- sentence  [path:line]`` lines (the text of ``summary/<path>`` and of ``.topic``)."""
    return "".join(f"- {p.text}  [{p.path}:{p.line}]\n" for p in picks)


# ---- where the text comes from -----------------------------------------------------------------
# formats whose extracted text is the file's own text, so lines can be cited in the file itself
TEXT_EXTS = frozenset({"md", "markdown", "txt", "rst", "org", "text", "log", "csv", "tsv", "py",
                       "json", "yaml", "yml", "toml", "tex"})
Origin = Literal["file", "extracted"]
MAX_TEXT_BYTES = 4 << 20


def merge_bodies(bodies: Sequence[str], max_overlap: int = 2000) -> str:
    """The extracted text again from chunk bodies in order: consecutive bodies overlap by a few
    sentences (chunking), so each is appended from where the text so far stops matching."""
    out = ""
    for body in bodies:
        if not out:
            out = body
            continue
        tail = out[-min(len(out), len(body), max_overlap):]
        i = tail.find(body[0]) if body else -1
        while i >= 0:  # the first match in the tail is the longest overlap
            if body.startswith(tail[i:]):
                out += body[len(tail) - i:]
                break
            i = tail.find(body[0], i + 1)
        else:
            out += "\n\n" + body
    return out


def document_text(store: Store, path: str, root: str | os.PathLike[str] | None = None
                  ) -> tuple[str, Origin]:
    """The text a summary of ``path`` cites: the file itself for text formats (read-only from
    the vault ``root``), else the extracted text rebuilt from the stored chunk bodies."""
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if root is not None and ext in TEXT_EXTS:
        full = os.path.join(os.fspath(root), path)
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                data = os.pread(fd, MAX_TEXT_BYTES, 0)
            except OSError:
                data = b""
            finally:
                os.close(fd)
            if data and b"\0" not in data[:4096]:
                return data.decode("utf-8", "replace"), "file"
    rec = store.file_by_path(path)
    if rec is None:
        return "", "extracted"
    chunks = sorted(store.iter_chunks(Filter(must=(Match("file_id", rec.file_id),))),
                    key=lambda h: int(h.payload.get("chunk_index", 0)))
    return merge_bodies([str(h.payload.get("body", "")) for h in chunks]), "extracted"
