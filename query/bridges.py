"""Bridges and connections: what ties files and subjects together across topics and folders.

``bridges(path)``: files close in meaning to this one (chunk against chunk, the store's dense
search) that sit in another folder and, when topics are known, another (most specific) topic, and
are not already linked to it — the neighbours Smart Connections users ask to see once the linked
and same-folder ones are hidden. Each comes with why: the pair of passages that matched best.

``connect(A, B)``: files close to both subjects, ranked by the harmonic mean of their best-chunk
cosines to A and to B (a file must be near *both*; a mean would let one side carry it); where no
file is, a two-step chain: a file near A linked to (or very like) a file near B.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from memexfs.errors import NotFound
from memexfs.store import ChunkHit, ChunkQuery, Filter, Match, MatchAny, Store
from query.links import LinkGraph
from query.topics import UNSORTED_ID, TopicModel, mean_vector

if TYPE_CHECKING:
    from embed import Encoder

log = logging.getLogger(__name__)

# Same floor as related() (query.engine.Tuning.related_floor, measured on personal-dev with
# Cortex): below 0.40 a neighbour shares the source's kind barely more often than chance.
FLOOR = 0.40
# connect(): a file whose harmonic-mean cosine to the two subjects is under this ties nothing.
# personal-dev, Cortex, four subject pairs: the lists above 0.20 hold on-subject notes (French
# revolution + economics -> the industrial-revolution summary first); under it recipes and a
# car log appear. One-word subjects ("economics") reach only 0.3-0.5 against their own notes.
CONNECT_FLOOR = 0.20
# A chain step "very like" needs file vectors at least this close (or a link).
CHAIN_COS = 0.60
CHAIN_DISCOUNT = 0.9  # two steps tie less than one file near both
PASSAGE_CHARS = 240


@dataclass(frozen=True)
class Passage:
    path: str
    chunk_index: int
    text: str  # the chunk body, cut at a word boundary


@dataclass(frozen=True)
class Bridge:
    path: str
    score: float  # cosine of the best-matching chunk pair
    topic: int  # the target's most specific topic id (UNSORTED_ID: none / unknown)
    source: Passage  # the passage of the source file...
    target: Passage  # ...and of this file that matched


@dataclass(frozen=True)
class Connection:
    path: str
    score: float  # harmonic mean of sim_a and sim_b (chains: the weakest of the three steps)
    sim_a: float  # best-chunk cosine of ``path`` to A
    sim_b: float  # ... of ``path`` to B (chains: of ``via`` to B)
    why_a: Passage | None
    why_b: Passage | None  # chains: the passage of ``via``
    via: str | None = None  # a chain: ``path`` (near A) -> ``via`` (near B)

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path,) if self.via is None else (self.path, self.via)


def _cut(text: str, limit: int = PASSAGE_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " …"


def _passage(hit: ChunkHit) -> Passage:
    p = hit.payload
    idx = p.get("chunk_index", 0)
    return Passage(str(p.get("path", "")), idx if isinstance(idx, int) else 0,
                   _cut(str(p.get("body", ""))))


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def source_chunks(store: Store, file_id: str, limit: int
                  ) -> list[tuple[Passage, np.ndarray]]:
    """Up to ``limit`` of a file's chunks (spread evenly over it) with their vectors."""
    vecs = store.chunk_vectors(file_id)
    hits = sorted(store.iter_chunks(Filter(must=(Match("file_id", file_id),))),
                  key=lambda h: int(h.payload.get("chunk_index", 0)))
    out = [(_passage(h), np.asarray(vecs[str(h.payload.get("chunk_hash", ""))], np.float32))
           for h in hits if str(h.payload.get("chunk_hash", "")) in vecs]
    if len(out) > limit:
        step = len(out) / limit
        out = [out[int(i * step)] for i in range(limit)]
    return out


def bridges(store: Store, path: str, topics: TopicModel | None = None,
            links: LinkGraph | None = None, k: int = 20, floor: float = FLOOR,
            other_topic: bool = True, chunks: int = 8, fetch: int = 200) -> list[Bridge]:
    """Files like ``path`` in other folders (and other topics, when ``topics`` is given and
    ``other_topic``), not linked to it, strongest first."""
    rec = store.file_by_path(path)
    if rec is None:
        raise NotFound(f"{path} is not in the index")
    src = source_chunks(store, rec.file_id, chunks)
    if not src:
        return []
    leaf = topics.topic_of() if topics is not None else {}
    mine = leaf.get(path, UNSORTED_ID)
    exclude = [rec.file_id]
    if other_topic and topics is not None and mine != UNSORTED_ID:
        t = topics.by_id(mine)
        if t is not None and len(t.file_ids) <= 5000:  # inside the search: k survive it
            exclude += [f for f in t.file_ids if f != rec.file_id]
    flt = Filter(must_not=(MatchAny("file_id", tuple(exclude)),))
    linked = links.neighbours(path) if links is not None else set()
    here = _parent(path)
    reqs = [ChunkQuery(limit=fetch, dense=v.tolist(), mode="dense", filter=flt) for _, v in src]
    best: dict[str, Bridge] = {}
    for (passage, _), hits in zip(src, store.search_batch(reqs), strict=True):
        for h in hits:
            target = str(h.payload.get("path", ""))
            if (not target or target == path or target in linked or _parent(target) == here
                    or h.score < floor):
                continue
            topic = leaf.get(target, UNSORTED_ID)
            if other_topic and topics is not None and mine != UNSORTED_ID and topic == mine:
                continue
            old = best.get(target)
            if old is None or h.score > old.score:
                best[target] = Bridge(target, round(float(h.score), 4), topic, passage,
                                      _passage(h))
    return sorted(best.values(), key=lambda b: (-b.score, b.path))[:k]


def _best_per_file(hits: Sequence[ChunkHit]) -> dict[str, tuple[float, ChunkHit]]:
    out: dict[str, tuple[float, ChunkHit]] = {}
    for h in hits:
        fid = str(h.payload.get("file_id", ""))
        if fid and (fid not in out or h.score > out[fid][0]):
            out[fid] = (float(h.score), h)
    return out


def _encode(encoder: Encoder, texts: list[str]) -> np.ndarray:
    return np.asarray(encoder.encode(texts), dtype=np.float32)


def connect(store: Store, encoder: Encoder, a: str, b: str, links: LinkGraph | None = None,
            k: int = 20, floor: float = CONNECT_FLOOR, fetch: int = 200,
            chain_pool: int = 8) -> list[Connection]:
    """Files that tie subject ``a`` to subject ``b``, strongest first (see module doc)."""
    va, vb = _encode(encoder, [a, b])
    ha, hb = store.search_batch([ChunkQuery(limit=fetch, dense=va.tolist(), mode="dense"),
                                 ChunkQuery(limit=fetch, dense=vb.tolist(), mode="dense")])
    fa, fb = _best_per_file(ha), _best_per_file(hb)
    # a file found near one subject only: its best chunk for the other, searched among those files
    for mine, other, vec in ((fa, fb, vb), (fb, fa, va)):
        missing = tuple(sorted(set(mine) - set(other)))
        if missing:
            q = ChunkQuery(limit=min(4000, 16 * len(missing)), dense=vec.tolist(), mode="dense",
                           filter=Filter(must=(MatchAny("file_id", missing),)))
            for fid, got in _best_per_file(store.search(q)).items():
                other.setdefault(fid, got)
    out: list[Connection] = []
    for fid in set(fa) & set(fb):
        sa, sb = max(fa[fid][0], 0.0), max(fb[fid][0], 0.0)
        hm = 2 * sa * sb / (sa + sb) if sa + sb > 0 else 0.0
        if hm >= floor:
            out.append(Connection(str(fa[fid][1].payload.get("path", "")), round(hm, 4),
                                  round(sa, 4), round(sb, 4), _passage(fa[fid][1]),
                                  _passage(fb[fid][1])))
    out.sort(key=lambda c: (-c.score, c.path))
    if len(out) < k:
        direct = {fid for fid in set(fa) & set(fb)
                  if str(fa[fid][1].payload.get("path", "")) in {c.path for c in out}}
        out += _chains(store, fa, fb, links, direct, chain_pool, floor)
        out.sort(key=lambda c: (-c.score, c.path))
    return out[:k]


def _chains(store: Store, fa: dict[str, tuple[float, ChunkHit]],
            fb: dict[str, tuple[float, ChunkHit]], links: LinkGraph | None, direct: set[str],
            pool: int, floor: float) -> list[Connection]:
    """Pairs (x near A, y near B), neither already a direct connection, joined by a link or by
    very similar file vectors; scored by their weakest step, discounted."""
    def top(f: dict[str, tuple[float, ChunkHit]], other: dict[str, tuple[float, ChunkHit]]
            ) -> list[tuple[str, float, ChunkHit]]:
        # near this subject and clearly nearer to it than to the other one
        rows = [(fid, s, h) for fid, (s, h) in f.items()
                if fid not in direct and s >= floor and s > other.get(fid, (0.0, h))[0]]
        return sorted(rows, key=lambda r: (-r[1], r[0]))[:pool]

    side_a, side_b = top(fa, fb), top(fb, fa)
    vec: dict[str, np.ndarray | None] = {}
    for fid, _, _ in side_a + side_b:
        if fid not in vec:
            vec[fid] = mean_vector(store.chunk_vectors(fid).values())
    out = []
    for xa, sa, hxa in side_a:
        for yb, sb, hyb in side_b:
            if xa == yb:
                continue
            px, py = str(hxa.payload.get("path", "")), str(hyb.payload.get("path", ""))
            linked = links is not None and links.linked(px, py)
            vx, vy = vec.get(xa), vec.get(yb)
            sim = float(vx @ vy) if vx is not None and vy is not None else 0.0
            if not linked and sim < CHAIN_COS:
                continue
            score = CHAIN_DISCOUNT * min(sa, sb, 1.0 if linked else sim)
            out.append(Connection(px, round(score, 4), round(sa, 4), round(sb, 4),
                                  _passage(hxa), _passage(hyb), via=py))
    best: dict[str, Connection] = {}
    for c in sorted(out, key=lambda c: (-c.score, c.path, c.via or "")):
        best.setdefault(c.path, c)
    return list(best.values())
