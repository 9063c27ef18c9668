"""The Store protocol on a Qdrant server or cluster, through qdrant-client.

For a user who outgrows one machine: ``memexfs mount --qdrant-url http://host:6333 ...``. The same
two collections as ``EdgeStore`` (named per vault, so one server can hold many vaults), the same
payloads and filters; BM25 sparse vectors are made in-process by the same tokenizer as Edge's, and
the server applies IDF. Tests run it against qdrant-client's local mode, which speaks the same API.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from memexfs.errors import IndexUnavailable
from memexfs.lexical import Lexical
from memexfs.schema import FileRecord, ancestors
from memexfs.store import (
    DENSE,
    SPARSE,
    ChunkHit,
    ChunkPoint,
    ChunkQuery,
    Condition,
    Filter,
    IsEmpty,
    Match,
    MatchAny,
    Range,
    escape_str,
    escape_value,
    unescape_str,
    unescape_value,
)

log = logging.getLogger(__name__)

TIMEOUT_S = 10


def collection_prefix(vault_root: str) -> str:
    """Collections are named after the vault's path, so several vaults can share one server."""
    return "memexfs_" + hashlib.blake2b(vault_root.encode(), digest_size=6).hexdigest()


class ServerStore:
    """``Store`` over qdrant-client. Thread-safe (the client is; a lock orders replace-chunks)."""

    def __init__(self, dim: int, *, url: str | None = None, client: Any = None,
                 prefix: str = "memexfs") -> None:
        import qdrant_client
        from qdrant_client import models

        self._m = models
        self._lock = threading.RLock()
        self._bm25 = Lexical()
        # The version check only warns; _ensure below is the real reachability check.
        self._client = client or qdrant_client.QdrantClient(url=url, timeout=TIMEOUT_S,
                                                             check_compatibility=False)
        self.catalog = f"{prefix}_catalog"
        self.chunks = f"{prefix}_chunks"
        try:
            self._ensure(dim)
        except Exception as exc:  # unreachable server, wrong dim, auth: one clear line upstream
            self.close()
            raise IndexUnavailable(f"Qdrant at {url or 'client'} unavailable: {exc}") from exc

    def _ensure(self, dim: int) -> None:
        m, c = self._m, self._client
        if not c.collection_exists(self.catalog):
            c.create_collection(self.catalog, vectors_config={})
        if not c.collection_exists(self.chunks):
            c.create_collection(
                self.chunks,
                vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE)},
                sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
            )
        kw, integer = m.PayloadSchemaType.KEYWORD, m.PayloadSchemaType.INTEGER
        for coll, keys in ((self.catalog, {"path": kw, "status": kw, "dirs": kw}),
                           (self.chunks, {"file_id": kw, "dirs": kw, "ext": kw, "doc_type": kw,
                                          "kind": kw, "vendor": kw, "status": kw,
                                          "doc_day": integer, "chunk_index": integer})):
            for key, schema in keys.items():
                with warnings.catch_warnings():  # local mode (tests) says indexes do nothing
                    warnings.filterwarnings("ignore", message="Payload indexes have no effect")
                    c.create_payload_index(coll, key, field_schema=schema)

    # -- translation
    def _cond(self, cond: Condition) -> Any:
        m = self._m
        if isinstance(cond, Match):
            return m.FieldCondition(key=cond.key,
                                    match=m.MatchValue(value=escape_value(cond.value)))
        if isinstance(cond, MatchAny):
            return m.FieldCondition(key=cond.key,
                                    match=m.MatchAny(any=escape_value(list(cond.values))))
        if isinstance(cond, Range):
            return m.FieldCondition(key=cond.key, range=m.Range(gte=cond.gte, lte=cond.lte,
                                                                gt=cond.gt, lt=cond.lt))
        if isinstance(cond, IsEmpty):
            return m.IsEmptyCondition(is_empty=m.PayloadField(key=cond.key))
        return self._filter(cond)

    def _filter(self, f: Filter | None) -> Any:
        if not f:
            return None
        return self._m.Filter(must=[self._cond(c) for c in f.must] or None,
                              should=[self._cond(c) for c in f.should] or None,
                              must_not=[self._cond(c) for c in f.must_not] or None)

    def _of_file(self, file_id: str) -> Any:
        return self._filter(Filter(must=(Match("file_id", file_id),)))

    def _sparse(self, vec: Any) -> Any:
        return self._m.SparseVector(indices=list(vec.indices), values=list(vec.values))

    # -- catalog (strings cross in escaped form: see ``memexfs.store.escape_str``)
    @staticmethod
    def _record(payload: Any) -> FileRecord:
        return FileRecord.from_payload(unescape_value(dict(payload or {})))

    def put_file(self, rec: FileRecord) -> None:
        self._client.upsert(self.catalog, [self._m.PointStruct(
            id=rec.file_id, vector={}, payload=escape_value(rec.to_payload()))])

    def get_file(self, file_id: str) -> FileRecord | None:
        recs = self._client.retrieve(self.catalog, [file_id], with_payload=True)
        return self._record(recs[0].payload) if recs else None

    def file_by_path(self, path: str) -> FileRecord | None:
        recs, _ = self._client.scroll(self.catalog, limit=1, with_payload=True,
                                      scroll_filter=self._filter(Filter(must=(Match("path",
                                                                                    path),))))
        return self._record(recs[0].payload) if recs else None

    def update_file(self, file_id: str, **changes: Any) -> None:
        if "path" in changes:
            changes["name"] = changes["path"].rsplit("/", 1)[-1]
            changes["dirs"] = ancestors(changes["path"])
        self._client.set_payload(self.catalog, payload=escape_value(changes), points=[file_id])

    def delete_file(self, file_id: str) -> None:
        m = self._m
        with self._lock:
            self._client.delete(self.chunks, m.FilterSelector(filter=self._of_file(file_id)))
            self._client.delete(self.catalog, m.PointIdsList(points=[file_id]))

    def _scroll(self, coll: str, flt: Filter | None, with_vectors: Any = False,
                page: int = 512) -> Iterator[Any]:
        offset = None
        while True:
            recs, offset = self._client.scroll(coll, scroll_filter=self._filter(flt), limit=page,
                                               offset=offset, with_payload=True,
                                               with_vectors=with_vectors)
            yield from recs
            if offset is None:
                return

    def iter_files(self, flt: Filter | None = None) -> Iterator[FileRecord]:
        for rec in self._scroll(self.catalog, flt):
            yield self._record(rec.payload)

    def count_files(self, flt: Filter | None = None) -> int:
        return int(self._client.count(self.catalog, count_filter=self._filter(flt),
                                      exact=True).count)

    # -- chunks
    def put_chunks(self, file_id: str, points: Sequence[ChunkPoint]) -> None:
        m = self._m
        structs = [m.PointStruct(
            id=p.point_id,
            vector={DENSE: [float(x) for x in p.dense],
                    SPARSE: self._sparse(self._bm25.document(escape_str(p.bm25_text)))},
            payload=escape_value({**p.payload, "file_id": file_id, "chunk_index": p.index}))
            for p in points]
        stale = Filter(must=(Match("file_id", file_id), Range("chunk_index", gte=len(points))))
        with self._lock:
            if structs:
                self._client.upsert(self.chunks, structs)
            self._client.delete(self.chunks, m.FilterSelector(filter=self._filter(stale)))

    def delete_chunks(self, file_id: str) -> None:
        self._client.delete(self.chunks, self._m.FilterSelector(filter=self._of_file(file_id)))

    def move_chunks(self, file_id: str, payload: dict[str, Any]) -> None:
        self._client.set_payload(self.chunks, payload=escape_value(payload),
                                 points=self._of_file(file_id))

    def chunk_vectors(self, file_id: str) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for rec in self._scroll(self.chunks, Filter(must=(Match("file_id", file_id),)),
                                with_vectors=[DENSE]):
            vec = rec.vector
            if isinstance(vec, dict) and DENSE in vec and rec.payload:
                out[unescape_str(str(rec.payload.get("chunk_hash", "")))] = list(vec[DENSE])
        return out

    def count_chunks(self, flt: Filter | None = None) -> int:
        return int(self._client.count(self.chunks, count_filter=self._filter(flt),
                                      exact=True).count)

    def iter_chunks(self, flt: Filter | None = None) -> Iterator[ChunkHit]:
        for rec in self._scroll(self.chunks, flt):
            yield ChunkHit(str(rec.id), 0.0, unescape_value(dict(rec.payload or {})))

    def distinct(self, key: str) -> list[str | int | bool]:
        resp = self._client.facet(self.chunks, key=key, limit=100_000, exact=True)
        return [unescape_value(hit.value) for hit in resp.hits]

    def search(self, q: ChunkQuery) -> list[ChunkHit]:
        m = self._m
        flt = self._filter(q.filter)
        dense = [float(x) for x in q.dense] if q.dense is not None else None
        sparse = (self._sparse(self._bm25.query(escape_str(q.text))) if q.text.strip()
                  else None)
        common: dict[str, Any] = dict(limit=q.limit, query_filter=flt, with_payload=True,
                                      with_vectors=[DENSE] if q.with_dense else False)
        if q.mode == "dense" or (q.mode == "hybrid" and sparse is None):
            if dense is None:
                raise ValueError("dense search needs a dense vector")
            res = self._client.query_points(self.chunks, query=dense, using=DENSE,
                                            score_threshold=q.score_threshold, **common)
        elif q.mode == "sparse" or dense is None:
            if sparse is None:
                raise ValueError("sparse search needs query text")
            res = self._client.query_points(self.chunks, query=sparse, using=SPARSE, **common)
        else:
            fusion = m.Fusion.DBSF if q.fusion == "dbsf" else m.Fusion.RRF
            prefetch = [m.Prefetch(query=dense, using=DENSE, limit=q.prefetch_limit, filter=flt,
                                   score_threshold=q.score_threshold),
                        m.Prefetch(query=sparse, using=SPARSE, limit=q.prefetch_limit,
                                   filter=flt)]
            res = self._client.query_points(self.chunks, prefetch=prefetch,
                                            query=m.FusionQuery(fusion=fusion), **common)
        return [self._hit(p) for p in res.points]

    @staticmethod
    def _hit(p: Any) -> ChunkHit:
        vec = p.vector
        dense = list(vec[DENSE]) if isinstance(vec, dict) and DENSE in vec else None
        return ChunkHit(str(p.id), float(p.score), unescape_value(dict(p.payload or {})), dense)

    def search_batch(self, qs: Sequence[ChunkQuery]) -> list[list[ChunkHit]]:
        return [self.search(q) for q in qs]

    def flush(self) -> None:
        """The server persists on its own (WAL); nothing to do."""

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing must not mask the caller's own error
            log.exception("closing the Qdrant client failed")
