"""Storage behind a small interface: the catalog and the chunk index.

``Store`` is what the rest of MemexFS codes against; ``EdgeStore`` implements it with Qdrant Edge
in-process (the default). A Qdrant server backend implements the same protocol with qdrant-client.
Filters are expressed in the neutral types below so callers never import a Qdrant module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Union

from memexfs.errors import IndexUnavailable
from memexfs.schema import FileRecord, chunk_point_id

log = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "bm25"


# ---- neutral filter language ------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    """Field equals value (for list fields: contains value)."""

    key: str
    value: str | int | bool


@dataclass(frozen=True)
class MatchAny:
    key: str
    values: tuple[str, ...] | tuple[int, ...]


@dataclass(frozen=True)
class Range:
    key: str
    gte: float | None = None
    lte: float | None = None
    gt: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class IsEmpty:
    """Field missing, null or empty list."""

    key: str


@dataclass(frozen=True)
class Filter:
    must: tuple[Condition, ...] = ()
    should: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.must or self.should or self.must_not)


Condition = Union[Match, MatchAny, Range, IsEmpty, Filter]  # noqa: UP007 (a runtime alias)


# ---- records ------------------------------------------------------------------------------------
@dataclass
class ChunkPoint:
    """One chunk to store. ``bm25_text`` feeds the sparse vector (the store computes it)."""

    file_id: str
    index: int
    dense: Sequence[float]
    bm25_text: str
    payload: dict[str, Any]

    @property
    def point_id(self) -> str:
        return chunk_point_id(self.file_id, self.index)


@dataclass
class ChunkHit:
    point_id: str
    score: float
    payload: dict[str, Any]
    dense: list[float] | None = None


SearchMode = Literal["hybrid", "dense", "sparse"]


@dataclass
class ChunkQuery:
    """One search over chunks. ``hybrid`` fuses dense and BM25 inside the store (RRF by default)."""

    limit: int
    dense: Sequence[float] | None = None
    text: str = ""  # BM25 query text
    mode: SearchMode = "hybrid"
    filter: Filter = field(default_factory=Filter)
    prefetch_limit: int = 100
    fusion: Literal["rrf", "dbsf"] = "rrf"
    rrf_k: int = 60
    weights: tuple[float, float] | None = None  # (dense, sparse) weights for RRF
    score_threshold: float | None = None
    with_dense: bool = False


class Store(Protocol):
    """The catalog (one point per file) and the chunk index (dense + BM25 per chunk)."""

    # catalog
    def put_file(self, rec: FileRecord) -> None: ...
    def get_file(self, file_id: str) -> FileRecord | None: ...
    def file_by_path(self, path: str) -> FileRecord | None: ...
    def update_file(self, file_id: str, **changes: Any) -> None: ...
    def delete_file(self, file_id: str) -> None: ...
    def iter_files(self, flt: Filter | None = None) -> Iterator[FileRecord]: ...
    def count_files(self, flt: Filter | None = None) -> int: ...

    # chunks
    def put_chunks(self, file_id: str, points: Sequence[ChunkPoint]) -> None: ...
    def delete_chunks(self, file_id: str) -> None: ...
    def move_chunks(self, file_id: str, payload: dict[str, Any]) -> None: ...
    def chunk_vectors(self, file_id: str) -> dict[str, list[float]]: ...
    def count_chunks(self, flt: Filter | None = None) -> int: ...
    def search(self, q: ChunkQuery) -> list[ChunkHit]: ...
    def search_batch(self, qs: Sequence[ChunkQuery]) -> list[list[ChunkHit]]: ...
    def iter_chunks(self, flt: Filter | None = None) -> Iterator[ChunkHit]: ...
    def distinct(self, key: str) -> list[str | int | bool]: ...

    def flush(self) -> None: ...
    def close(self) -> None: ...


# ---- Qdrant Edge ------------------------------------------------------------------------------
class EdgeStore:
    """Qdrant Edge shards in ``root``: ``catalog/`` and ``chunks/``. Thread-safe (one lock).

    The Edge shard is not documented as safe for concurrent mutation, so every call holds
    ``_lock``; searches are short (ms), so this costs little next to encoding.
    """

    def __init__(self, root: str | Path, dim: int) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self._lock = threading.RLock()
        self._bm25 = qe.Bm25(qe.Bm25Config(language="english"))
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        try:
            self._catalog = self._open(
                root / "catalog",
                qe.EdgeConfig(sparse_vectors={"none": qe.EdgeSparseVectorParams()}),
            )
            self._chunks = self._open(
                root / "chunks",
                qe.EdgeConfig(
                    vectors={DENSE: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
                    sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
                ),
            )
        except Exception as exc:  # the engine reports corrupt or locked shards as plain errors
            raise IndexUnavailable(f"cannot open the index in {root}: {exc}") from exc
        self._ensure_indexes()

    def _open(self, path: Path, config: Any) -> Any:
        qe = self._qe
        if (path / "edge_config.json").exists() or (path.exists() and any(path.iterdir())):
            return qe.EdgeShard.load(str(path))
        path.mkdir(parents=True, exist_ok=True)
        return qe.EdgeShard.create(str(path), config)

    def _ensure_indexes(self) -> None:
        qe = self._qe
        kw = qe.PayloadSchemaType.Keyword
        for shard, keys in (
            (self._catalog, {"path": kw, "status": kw, "dirs": kw}),
            (
                self._chunks,
                {
                    "file_id": kw,
                    "dirs": kw,
                    "ext": kw,
                    "doc_type": kw,
                    "kind": kw,
                    "vendor": kw,
                    "status": kw,
                    "doc_day": qe.PayloadSchemaType.Integer,
                },
            ),
        ):
            have = shard.info().payload_schema
            for key, schema in keys.items():
                if key not in have:
                    shard.update(qe.UpdateOperation.create_field_index(key, schema))

    # -- translation
    def _cond(self, c: Condition) -> Any:
        qe = self._qe
        if isinstance(c, Match):
            return qe.FieldCondition(c.key, match=qe.MatchValue(c.value))
        if isinstance(c, MatchAny):
            return qe.FieldCondition(c.key, match=qe.MatchAny(list(c.values)))
        if isinstance(c, Range):
            return qe.FieldCondition(
                c.key, range=qe.RangeFloat(gte=c.gte, lte=c.lte, gt=c.gt, lt=c.lt)
            )
        if isinstance(c, IsEmpty):
            return qe.IsEmptyCondition(c.key)
        return self._filter(c)

    def _filter(self, f: Filter | None) -> Any:
        if not f:
            return None
        qe = self._qe
        return qe.Filter(
            must=[self._cond(c) for c in f.must] or None,
            should=[self._cond(c) for c in f.should] or None,
            must_not=[self._cond(c) for c in f.must_not] or None,
        )

    def _file_filter(self, file_id: str) -> Any:
        return self._filter(Filter(must=(Match("file_id", file_id),)))

    # -- catalog
    def put_file(self, rec: FileRecord) -> None:
        qe = self._qe
        point = qe.Point(rec.file_id, {}, rec.to_payload())
        with self._lock:
            self._catalog.update(qe.UpdateOperation.upsert_points([point]))

    def get_file(self, file_id: str) -> FileRecord | None:
        with self._lock:
            recs = self._catalog.retrieve([file_id], with_payload=True, with_vector=False)
        return FileRecord.from_payload(recs[0].payload) if recs else None

    def file_by_path(self, path: str) -> FileRecord | None:
        qe = self._qe
        req = qe.ScrollRequest(
            limit=1, filter=self._filter(Filter(must=(Match("path", path),))), with_payload=True
        )
        with self._lock:
            recs, _ = self._catalog.scroll(req)
        return FileRecord.from_payload(recs[0].payload) if recs else None

    def update_file(self, file_id: str, **changes: Any) -> None:
        qe = self._qe
        if "path" in changes:
            from memexfs.schema import ancestors

            changes["name"] = changes["path"].rsplit("/", 1)[-1]
            changes["dirs"] = ancestors(changes["path"])
        with self._lock:
            self._catalog.update(qe.UpdateOperation.set_payload([file_id], changes))

    def delete_file(self, file_id: str) -> None:
        qe = self._qe
        with self._lock:
            self._chunks.update(qe.UpdateOperation.delete_points_by_filter(
                self._file_filter(file_id)))
            self._catalog.update(qe.UpdateOperation.delete_points([file_id]))

    def _scroll(self, shard: Any, flt: Filter | None, with_vector: bool = False,
                page: int = 512) -> Iterator[Any]:
        qe = self._qe
        offset = None
        while True:
            req = qe.ScrollRequest(offset=offset, limit=page, filter=self._filter(flt),
                                   with_payload=True, with_vector=with_vector)
            with self._lock:
                recs, offset = shard.scroll(req)
            yield from recs
            if offset is None:
                return

    def iter_files(self, flt: Filter | None = None) -> Iterator[FileRecord]:
        for rec in self._scroll(self._catalog, flt):
            yield FileRecord.from_payload(rec.payload)

    def count_files(self, flt: Filter | None = None) -> int:
        with self._lock:
            return int(self._catalog.count(self._qe.CountRequest(exact=True,
                                                                 filter=self._filter(flt))))

    # -- chunks
    def put_chunks(self, file_id: str, points: Sequence[ChunkPoint]) -> None:
        """Replace the file's chunks: upsert the new ones, delete indexes beyond the new count."""
        qe = self._qe
        new = []
        for p in points:
            sparse = self._bm25.embed_document(p.bm25_text)
            vec = {DENSE: [float(x) for x in p.dense], SPARSE: sparse}
            new.append(qe.Point(p.point_id, vec, {**p.payload, "file_id": file_id,
                                                   "chunk_index": p.index}))
        stale = Filter(must=(Match("file_id", file_id), Range("chunk_index", gte=len(points))))
        with self._lock:
            if new:
                self._chunks.update(qe.UpdateOperation.upsert_points(new))
            self._chunks.update(qe.UpdateOperation.delete_points_by_filter(self._filter(stale)))

    def delete_chunks(self, file_id: str) -> None:
        with self._lock:
            self._chunks.update(self._qe.UpdateOperation.delete_points_by_filter(
                self._file_filter(file_id)))

    def move_chunks(self, file_id: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self._chunks.update(self._qe.UpdateOperation.set_payload_by_filter(
                self._file_filter(file_id), payload))

    def chunk_vectors(self, file_id: str) -> dict[str, list[float]]:
        """chunk_hash -> dense vector of the file's stored chunks (to skip re-embedding them)."""
        out: dict[str, list[float]] = {}
        for rec in self._scroll(self._chunks, Filter(must=(Match("file_id", file_id),)),
                                with_vector=True):
            vec = rec.vector
            if isinstance(vec, dict) and DENSE in vec and rec.payload:
                out[str(rec.payload.get("chunk_hash", ""))] = list(vec[DENSE])
        return out

    def count_chunks(self, flt: Filter | None = None) -> int:
        with self._lock:
            return int(self._chunks.count(self._qe.CountRequest(exact=True,
                                                                filter=self._filter(flt))))

    def iter_chunks(self, flt: Filter | None = None) -> Iterator[ChunkHit]:
        for rec in self._scroll(self._chunks, flt):
            yield ChunkHit(str(rec.id), 0.0, dict(rec.payload or {}))

    def distinct(self, key: str) -> list[str | int | bool]:
        """Distinct values of an indexed keyword field over all chunks (a facet: milliseconds)."""
        req = self._qe.FacetRequest(key, limit=100_000, exact=True)
        with self._lock:
            resp = self._chunks.facet(req)
        return [hit.value for hit in resp.hits]

    def _request(self, q: ChunkQuery) -> Any:
        qe = self._qe
        flt = self._filter(q.filter)
        dense_q = (qe.Query.Nearest([float(x) for x in q.dense], using=DENSE)
                   if q.dense is not None else None)
        sparse_q = (qe.Query.Nearest(self._bm25.embed_query(q.text), using=SPARSE)
                    if q.text.strip() else None)
        common = dict(limit=q.limit, filter=flt, with_payload=True,
                      with_vector=[DENSE] if q.with_dense else False)
        if q.mode == "dense" or (q.mode == "hybrid" and sparse_q is None):
            if dense_q is None:
                raise ValueError("dense search needs a dense vector")
            return qe.QueryRequest(query=dense_q, score_threshold=q.score_threshold, **common)
        if q.mode == "sparse" or dense_q is None:
            if sparse_q is None:
                raise ValueError("sparse search needs query text")
            return qe.QueryRequest(query=sparse_q, **common)
        fusion = (qe.Fusion.Dbsf() if q.fusion == "dbsf"
                  else qe.Fusion.Rrf(k=q.rrf_k,
                                     weights=list(q.weights) if q.weights else None))
        prefetches = [
            qe.Prefetch(limit=q.prefetch_limit, query=dense_q, filter=flt,
                        score_threshold=q.score_threshold),
            qe.Prefetch(limit=q.prefetch_limit, query=sparse_q, filter=flt),
        ]
        return qe.QueryRequest(query=fusion, prefetches=prefetches, **common)

    @staticmethod
    def _hit(p: Any) -> ChunkHit:
        vec = p.vector
        dense = list(vec[DENSE]) if isinstance(vec, dict) and DENSE in vec else None
        return ChunkHit(str(p.id), float(p.score), dict(p.payload or {}), dense)

    def search(self, q: ChunkQuery) -> list[ChunkHit]:
        req = self._request(q)
        with self._lock:
            points = self._chunks.query(req)
        return [self._hit(p) for p in points]

    def search_batch(self, qs: Sequence[ChunkQuery]) -> list[list[ChunkHit]]:
        reqs = [self._request(q) for q in qs]
        with self._lock:
            results = self._chunks.query_batch(self._qe.QueryBatchRequest(reqs))
        return [[self._hit(p) for p in pts] for pts in results]

    def flush(self) -> None:
        with self._lock:
            self._catalog.flush()
            self._chunks.flush()

    def close(self) -> None:
        with self._lock:
            for shard in (self._catalog, self._chunks):
                try:
                    shard.flush()
                    shard.close()
                except Exception:  # closing must not mask the caller's own error
                    log.exception("closing a shard failed")


def open_store(vault: Any, qdrant_url: str | None = None, dim: int = 384) -> Store:
    """The vault's store: Qdrant Edge in ``.memexfs/index`` or, once a vault was given a
    ``qdrant_url`` (remembered in ``.memexfs/config.json``), collections on that server."""
    config = vault.read_json("config.json")
    url = qdrant_url or config.get("qdrant_url")
    if not url:
        return EdgeStore(vault.index_dir, dim)
    from memexfs.store_server import ServerStore, collection_prefix

    store = ServerStore(dim, url=str(url), prefix=collection_prefix(str(vault.root)))
    if qdrant_url and config.get("qdrant_url") != qdrant_url:  # remembered once it worked
        vault.write_json("config.json", {**config, "qdrant_url": qdrant_url})
    return store
