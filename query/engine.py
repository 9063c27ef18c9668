"""Search the chunk index for a :class:`Query`: one ranked result per file.

Flow: filters go inside the store search (so ``k`` results survive them) -> dense and BM25 chunk
searches in one batch -> chunks grouped per file (best chunk wins) -> file-level fusion
(:mod:`query.fusion`) -> boosts for soft hints (vendor, kind, status, the strict reading of an
ambiguous date) -> negated words dropped -> floors: nothing is listed when the best cosine is
below ``Tuning.floor`` (or ``lexical_floor`` when no file shares a word with the query, which is
how gibberish scores 0.3 by meaning alone), and files far below the best one on both the cosine
and the fused score, matching no hint, are dropped (``rel_cosine``/``rel_fused``). ``min:`` in a
query replaces all of these with the user's own threshold.

``FileHit.score`` is the ranking score: the fused score with boosts, divided by the best one
possible for the query (a file on top of both lists matching every hint: 1.0), so it never goes
up as the rank goes down. ``FileHit.cosine`` is the cosine of the query and the file's best
chunk: fused scores are relative to one query, cosines are comparable across queries, which is
what a ``min:`` threshold and the calibrated floors need.

Size: search, related and browse share the fusion, filters, per-file collapsing and
floors defined here; split when a fourth entry point appears.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from memexfs.errors import NotFound
from memexfs.fields_memory import DocFields
from memexfs.store import ChunkHit, ChunkQuery, Filter, IsEmpty, Match, MatchAny, Store
from query.boilerplate import LineFrequency, LineTable
from query.filters import build_filter, hint_matches
from query.fusion import FusionName, fuse
from query.parse import Query, date_window
from query.snippet import snippet

if TYPE_CHECKING:
    from embed import Encoder

log = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "sparse"]


@dataclass(frozen=True)
class FileHit:
    path: str
    file_id: str
    score: float  # ranking score in [0, 1], non-increasing with rank (see the module docstring)
    rank: int  # 1-based
    snippet: str
    title: str
    fields: DocFields | None = None  # extracted fields, from the best chunk's payload
    cosine: float | None = None  # of the query and the best chunk; None for a filters-only query


@dataclass
class SearchResult:
    hits: list[FileHit]
    reason: str | None = None  # why there are no hits (below threshold, empty window, ...)


@dataclass(frozen=True)
class Tuning:
    """Knobs measured by ``bench/retrieval_eval.py``; defaults are the chosen values."""

    fusion: FusionName | Literal["store-rrf", "store-dbsf"] = "convex"
    alpha: float = 0.7  # dense weight (convex: 0.7 best on both eval sets)
    rrf_k: int = 60
    fetch_per_file: int = 6  # chunks fetched per wanted file (grouping needs over-fetch)
    min_fetch: int = 100
    # Absolute floor on the best cosine. MiniLM on personal-dev: eval queries' best >= 0.31;
    # off-topic queries that share a word with some document 0.19-0.27.
    floor: float = 0.27
    # When no candidate shares a single word with the query (BM25 found nothing), the dense
    # side alone must be convincing: gibberish reaches 0.32 by cosine, eval queries always
    # have a BM25 hit.
    lexical_floor: float = 0.35
    # Relative floor: a file far below the best one on *both* scales, matching none of the
    # query's hints, is noise (a 0.14 hit listed under a 0.40 best). On personal-dev's top 20s
    # (46 queries) this drops 306 of 692 unlabelled files and 3 grade-1 (no grade-2) files.
    rel_cosine: float = 0.5
    rel_fused: float = 0.6
    boosts: dict[str, float] = field(default_factory=lambda: {
        "vendor": 0.3, "kind": 0.15, "status": 0.2, "date": 0.2, "amount": 0.3,
        "currency": 0.3, "due": 0.3})
    related_chunks: int = 8  # chunk vectors of the source file used as related() queries
    # Dense pseudo-relevance feedback (Rocchio): the query vector moves towards the best
    # chunks of the first ``prf_files`` files of the first ranking (weight ``prf_weight``), and
    # the dense side is searched again. 0 = off: on the dev splits it helped CACM (+0.027 at
    # 3 files, weight 1.0) and CISI (+0.005) but cost personal-dev 0.005-0.013.
    prf_files: int = 0
    prf_weight: float = 0.0
    # Dense weight for a query that reads as a paragraph (more than ``long_words`` words):
    # a long query carries more lexical evidence, and a single sentence vector of it blurs.
    # Dev splits (nDCG@10, alpha 0.7 -> 0.4 for such queries): CACM 0.466 -> 0.522, CISI
    # 0.395 -> 0.403, personal-dev 0.884 unchanged (at 12 words its one 14-word query lost).
    alpha_long: float | None = 0.4
    long_words: int = 15
    # related(): neighbours whose best chunk cosine is under this are not listed. Chosen on
    # personal-dev with Cortex (every file's top 20, 5,054 pairs): pairs under 0.40 share
    # the source's kind (and subject, for study notes) 17-36% of the time, barely above the
    # 12% of two random files; 0.40-0.60 ~30%, above 0.65 57-100%. 14% of pairs are dropped.
    related_floor: float = 0.40
    # Snippets leave out lines held by more than this many distinct chunks of the vault
    # (letterheads, footers: query.boilerplate). personal-dev dev queries' top 10s (206
    # snippets): holding such a line 57% -> 0.5%; holding the invoice number or amount of an
    # invoice hit 17% -> 25%; more than 5 chunks: 20% and 25%. More than 2 does as well as 3
    # here but would take the three renderings of one invoice (PDF, e-mail, portal page) for
    # boilerplate.
    boiler_chunks: int = 3
    boiler_wait: float = 1.0  # first search: seconds to wait for the first line table


@dataclass
class _File:
    """Best chunks of one file across the dense and BM25 lists."""

    file_id: str
    dense: float | None = None
    sparse: float | None = None
    cosine: float = -1.0
    best: ChunkHit | None = None  # the chunk with the best cosine (snippet, payload)
    hinted: bool = False  # matches a soft hint of the query (vendor, status, ...)


class SearchEngine:
    """Hybrid search over a :class:`Store` with an :class:`Encoder`; thread-safe."""

    def __init__(self, store: Store, encoder: Encoder, tuning: Tuning | None = None) -> None:
        self.store = store
        self.encoder = encoder
        self.tuning = tuning or Tuning()
        self._vendors: frozenset[str] | None = None
        self._epoch = 0  # bumped by invalidate()
        self._lock = threading.Lock()
        # Query text -> vector. Encoding is most of a cold search (~10x the store search) and a
        # vector depends only on the text and the encoder, so it outlives index changes: after
        # a change every open query folder is searched again, without re-encoding.
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self.vector_cache_size = 512
        self.lines = LineFrequency(store)  # line document frequencies, for snippets

    # -- catalog facts -------------------------------------------------------------------------
    def known_vendors(self) -> frozenset[str]:
        """Distinct vendor slugs in the chunk payloads (cached until :meth:`invalidate`).

        Uses the store's optional ``distinct(key)`` (a facet over the keyword index: ~5 ms at
        100k chunks) when it has one; otherwise scrolls every vendor chunk (~1.5 s at 100k
        chunks — paid by the first search after each index change). The scan runs outside the
        engine lock so other searches keep going.
        """
        with self._lock:
            if self._vendors is not None:
                return self._vendors
            epoch = self._epoch
        distinct = getattr(self.store, "distinct", None)
        if callable(distinct):
            vendors = frozenset(str(v) for v in distinct("vendor") if v)
        else:
            flt = Filter(must_not=(IsEmpty("vendor"),))
            vendors = frozenset(str(h.payload["vendor"]) for h in self.store.iter_chunks(flt)
                                if h.payload.get("vendor"))
        with self._lock:
            if self._epoch == epoch:  # not invalidated while we scanned
                self._vendors = vendors
        return vendors

    def invalidate(self) -> None:
        """The index changed: forget cached catalog facts."""
        with self._lock:
            self._vendors = None
            self._epoch += 1
        self.lines.invalidate()

    # -- search --------------------------------------------------------------------------------
    def search(self, q: Query, mode: Mode = "hybrid") -> SearchResult:
        result = self._search(q, mode)
        if result.hits or not q.phrase_dated or not q.text.strip():
            return result
        # A time phrase read as a window on the documents' dates left nothing: the documents
        # may carry no date, or the phrase meant something else. Rank with it as a hint.
        lo, hi = date_window(q)
        wider = self._search(replace(q, date_hint_only=True), mode)
        if not wider.hits:
            return result
        window = f"{lo or '…'} to {hi or '…'}"
        wider.reason = (f"no document dated {window} matches; ranked by meaning instead, "
                        f"files from that window first")
        return wider

    def _search(self, q: Query, mode: Mode) -> SearchResult:
        flt = build_filter(q)
        if not q.text.strip():
            return self._browse(q, flt)
        t = self.tuning
        vec = self.query_vector(q.text)
        limit = max(t.min_fetch, q.k * t.fetch_per_file)
        files = self._retrieve(q.text, vec, flt, limit, mode)
        if not files:
            return SearchResult([], "no indexed document matches the filters")
        dense = {f.file_id: f.dense for f in files.values() if f.dense is not None}
        sparse = {f.file_id: f.sparse for f in files.values() if f.sparse is not None}
        alpha = t.alpha
        if t.alpha_long is not None and len(q.text.split()) > t.long_words:
            alpha = t.alpha_long
        if t.prf_files and t.prf_weight and mode != "sparse" and t.fusion in (
                "convex", "rrf", "dbsf"):
            first = (dense if mode == "dense"
                     else fuse(dense, sparse, t.fusion, alpha, t.rrf_k))
            dense = self._feedback(vec, flt, limit, files, first)
        if mode == "dense":
            scores = {fid: s for fid, s in dense.items()}
        elif mode == "sparse":
            scores = {fid: s / max(sparse.values()) for fid, s in sparse.items()}
        elif t.fusion == "store-rrf" or t.fusion == "store-dbsf":
            scores = dense  # the store already fused; ``dense`` holds its fused chunk score
        else:
            scores = fuse(dense, sparse, t.fusion, alpha, t.rrf_k)
        ranked = self._boost(q, files, scores)
        ranked = self._drop_negated(q, ranked)
        return self._finish(q, ranked, files)

    def _feedback(self, vec: np.ndarray, flt: Filter, limit: int, files: dict[str, _File],
                  first: dict[str, float]) -> dict[str, float]:
        """Rocchio on the dense side: per-file dense scores of a second search with the query
        vector moved towards the top files' best chunks. Cosines (floors, display) stay those
        of the original query."""
        t = self.tuning
        top = sorted(first, key=lambda fid: (-first[fid], fid))[: t.prf_files]
        bests = [files[fid].best for fid in top]
        vecs = [np.asarray(b.dense, dtype=np.float32) for b in bests
                if b is not None and b.dense is not None]
        if not vecs:
            return {f.file_id: f.dense for f in files.values() if f.dense is not None}
        moved = vec + t.prf_weight * np.mean(vecs, axis=0)
        moved /= max(float(np.linalg.norm(moved)), 1e-9)
        hits = self.store.search(ChunkQuery(limit=limit, dense=moved.tolist(), mode="dense",
                                            filter=flt, with_dense=True))
        second: dict[str, float] = {}
        for h in hits:
            fid = str(h.payload.get("file_id", ""))
            if not fid:
                continue
            second[fid] = max(second.get(fid, -1.0), h.score)
            f = files.setdefault(fid, _File(fid))
            if h.dense is not None:
                cos = float(np.dot(vec, np.asarray(h.dense, dtype=np.float32)))
                if cos > f.cosine:
                    f.cosine, f.best = cos, h
            if f.best is None:
                f.best = h
        return second

    def query_vector(self, text: str) -> np.ndarray:
        """The encoder's vector for ``text`` (LRU-cached; see ``_vectors``)."""
        with self._lock:
            vec = self._vectors.get(text)
            if vec is not None:
                self._vectors.move_to_end(text)
                return vec
        vec = np.asarray(self.encoder.encode([text])[0], dtype=np.float32)
        with self._lock:
            self._vectors[text] = vec
            while len(self._vectors) > self.vector_cache_size:
                self._vectors.popitem(last=False)
        return vec

    def _retrieve(self, text: str, vec: np.ndarray, flt: Filter, limit: int,
                  mode: Mode) -> dict[str, _File]:
        t = self.tuning
        dq = ChunkQuery(limit=limit, dense=vec.tolist(), mode="dense", filter=flt,
                        with_dense=t.prf_files > 0)
        sq = ChunkQuery(limit=limit, text=text, mode="sparse", filter=flt, with_dense=True)
        files: dict[str, _File] = {}
        if mode == "hybrid" and t.fusion in ("store-rrf", "store-dbsf"):
            hq = ChunkQuery(limit=limit, dense=vec.tolist(), text=text, mode="hybrid",
                            filter=flt, prefetch_limit=limit, with_dense=True,
                            fusion="rrf" if t.fusion == "store-rrf" else "dbsf", rrf_k=t.rrf_k)
            self._group(files, self.store.search(hq), vec, "dense")
            return files
        wanted = [dq] if mode == "dense" else [sq] if mode == "sparse" else [dq, sq]
        results = self.store.search_batch(wanted) if len(wanted) > 1 else [
            self.store.search(wanted[0])]
        for which, hits in zip([w.mode for w in wanted], results, strict=True):
            self._group(files, hits, vec, "dense" if which == "dense" else "sparse")
        return files

    @staticmethod
    def _group(files: dict[str, _File], hits: Iterable[ChunkHit], vec: np.ndarray,
               which: str) -> None:
        for h in hits:
            fid = str(h.payload.get("file_id", ""))
            if not fid:
                continue
            f = files.setdefault(fid, _File(fid))
            if which == "dense":
                if f.dense is None or h.score > f.dense:
                    f.dense = h.score
            elif f.sparse is None or h.score > f.sparse:
                f.sparse = h.score
            cos = (float(np.dot(vec, np.asarray(h.dense, dtype=np.float32)))
                   if h.dense is not None else h.score if which == "dense" else None)
            if cos is not None and cos > f.cosine:
                f.cosine, f.best = cos, h
            elif f.best is None:
                f.best = h

    def _boost(self, q: Query, files: dict[str, _File],
               scores: dict[str, float]) -> list[tuple[str, float]]:
        boosts = self.tuning.boosts
        out = []
        for fid, s in scores.items():
            best = files[fid].best
            if best is not None:
                for hint, ok in hint_matches(q, best.payload).items():
                    if ok:
                        s += boosts.get(hint, 0.0)
                        files[fid].hinted = True
            out.append((fid, s))
        out.sort(key=lambda x: (-x[1], x[0]))
        return out

    def _drop_negated(self, q: Query, ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """Drop files that contain a negated word (BM25 over the candidates only)."""
        if not q.negations or not ranked:
            return ranked
        ids = tuple(fid for fid, _ in ranked)
        banned: set[str] = set()
        known = self.known_vendors()
        for neg in q.negations:
            cond = Filter(must=(MatchAny("file_id", ids),))
            hits = self.store.search(ChunkQuery(limit=len(ids) * 4, text=neg, mode="sparse",
                                                filter=cond))
            banned.update(str(h.payload.get("file_id")) for h in hits if h.score > 0)
            if neg.replace(" ", "-") in known or neg in known:
                vend = Filter(must=(MatchAny("file_id", ids), Match("vendor", neg)))
                banned.update(str(h.payload.get("file_id")) for h in self.store.iter_chunks(vend))
        return [(fid, s) for fid, s in ranked if fid not in banned]

    def _finish(self, q: Query, ranked: list[tuple[str, float]],
                files: dict[str, _File]) -> SearchResult:
        if not ranked:
            return SearchResult([], "every match contains a negated word")
        t = self.tuning
        best = max(files[fid].cosine for fid, _ in ranked)
        lexical = any(files[fid].sparse for fid, _ in ranked)
        if q.min_score is not None:
            floor, why = q.min_score, "min:"
        elif lexical:
            floor, why = t.floor, "the relevance threshold"
        else:
            floor = max(t.floor, t.lexical_floor)
            why = "the threshold for matches that share no word with the query"
        if best < floor:
            return SearchResult([], f"nothing relevant: best cosine {best:.2f} is below {why} "
                                    f"({floor:.2f})")
        best_fused = max(s for _, s in ranked)
        # The best fused score possible: 1 (the store's fusions are not scaled: their best),
        # plus every boost the query's hints can give.
        top = best_fused if t.fusion in ("store-rrf", "store-dbsf") else 1.0
        ceiling = max(top + sum(t.boosts.get(h, 0.0) for h in hint_matches(q, {})),
                      best_fused) or 1.0
        lines = self._line_table()
        hits: list[FileHit] = []
        for fid, fused in ranked:
            f = files[fid]
            if q.min_score is not None:
                if f.cosine < q.min_score:
                    continue
            elif (not f.hinted and f.cosine < t.rel_cosine * best
                  and fused < t.rel_fused * best_fused):
                continue
            hits.append(self._hit(f, q.text, len(hits) + 1, max(fused, 0.0) / ceiling,
                                  f.cosine, lines))
            if len(hits) >= q.k:
                break
        return SearchResult(hits, None)

    def _line_table(self) -> LineTable | None:
        return self.lines.table(wait=self.tuning.boiler_wait)

    def _hit(self, f: _File, text: str, rank: int, score: float, cosine: float | None,
             lines: LineTable | None) -> FileHit:
        p: dict[str, Any] = f.best.payload if f.best is not None else {}
        path = str(p.get("path", ""))
        t = self.tuning
        common = None if lines is None else lambda line: lines.common(line, t.boiler_chunks)
        return FileHit(
            path=path, file_id=f.file_id, score=round(float(score), 4), rank=rank,
            snippet=snippet(str(p.get("body", "")), text, common=common),
            title=str(p.get("title") or p.get("name") or path.rsplit("/", 1)[-1]),
            fields=DocFields.from_payload(p),
            cosine=None if cosine is None else round(float(cosine), 4))

    def _browse(self, q: Query, flt: Filter) -> SearchResult:
        """A query of filters only: matching files, hinted ones first, newest first."""
        files: dict[str, _File] = {}
        for h in self.store.iter_chunks(flt if flt else None):
            fid = str(h.payload.get("file_id", ""))
            if fid and (fid not in files or h.payload.get("chunk_index", 0) == 0):
                files[fid] = _File(fid, best=h)
        if not files:
            return SearchResult([], "no indexed document matches the filters")
        boosts = self.tuning.boosts

        def key(f: _File) -> tuple[float, int, str]:
            p = f.best.payload if f.best else {}
            hint = sum(boosts.get(h, 0.0) for h, ok in hint_matches(q, p).items() if ok)
            day = p.get("doc_day")
            return -hint, -(day if isinstance(day, int) else -(10**9)), str(p.get("path", ""))

        order = sorted(files.values(), key=key)
        kept = dict(self._drop_negated(q, [(f.file_id, 1.0) for f in order]))
        lines = self._line_table()
        hits = [self._hit(f, "", i + 1, 1.0, None, lines)
                for i, f in enumerate(f for f in order if f.file_id in kept)][: q.k]
        return SearchResult(hits, None if hits else "every match contains a negated word")

    # -- related -------------------------------------------------------------------------------
    def related(self, path: str, k: int = 20) -> SearchResult:
        """Files like ``path``: its chunk vectors (and their mean) as dense queries, max-pooled."""
        rec = self.store.file_by_path(path)
        if rec is None:
            raise NotFound(f"{path} is not in the index")
        vecs = list(self.store.chunk_vectors(rec.file_id).values())
        if not vecs:
            return SearchResult([], f"{path} has no indexed text")
        mat = np.asarray(vecs, dtype=np.float32)
        mean = mat.mean(axis=0)
        mean /= max(float(np.linalg.norm(mean)), 1e-9)
        queries: Sequence[np.ndarray] = [mean, *mat[: self.tuning.related_chunks]]
        flt = Filter(must_not=(Match("file_id", rec.file_id),))
        limit = max(self.tuning.min_fetch, k * self.tuning.fetch_per_file)
        reqs = [ChunkQuery(limit=limit, dense=v.tolist(), mode="dense", filter=flt)
                for v in queries]
        files: dict[str, _File] = {}
        for v, hits in zip(queries, self.store.search_batch(reqs), strict=True):
            self._group(files, hits, v, "dense")
        order = sorted(files.values(), key=lambda f: (-f.cosine, f.file_id))
        floor = self.tuning.related_floor
        close = [f for f in order if f.cosine >= floor][:k]
        title = rec.title or path.rsplit("/", 1)[-1]
        if not close:
            best = order[0].cosine if order else 0.0
            return SearchResult([], f"nothing similar enough: best cosine {best:.2f} is below "
                                    f"{floor:.2f}")
        lines = self._line_table()  # ranked by cosine: the ranking score is the cosine
        return SearchResult([self._hit(f, title, i + 1, f.cosine, f.cosine, lines)
                             for i, f in enumerate(close)], None)
