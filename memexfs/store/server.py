"""The Store protocol on a Qdrant server or cluster, through qdrant-client.

For a user who outgrows one machine: ``memexfs mount --qdrant-url http://host:6333 ...``. The same
two collections as ``EdgeStore`` (named per vault, so one server can hold many vaults), the same
payloads, filters (``memexfs.store.filters``), payload indexes and schema migrations, and the same
ranking: hybrid search fuses with the query's RRF ``rrf_k`` and ``weights`` (or DBSF) on the
server, as Edge does in-process. BM25 sparse vectors are made in-process by the same tokenizer as
Edge's, and the server applies IDF. A third collection, ``<prefix>_meta``, holds the schema
version. Tests run it against qdrant-client's local mode, which speaks the same API.

On a cluster (``docs/scale.md``), :class:`Sharding` puts many vaults in one collection pair: each
vault is a shard key of its own (``sharding_method=custom``), every catalog and chunk call carries
it, and shards are replicated. A server that cannot serve (unreachable, timed out, a write short
of its ``write_consistency_factor`` while a node is down) raises ``IndexUnavailable``, so the
daemon keeps plain files working and retries queued files with backoff.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from memexfs.errors import IndexUnavailable
from memexfs.schema import FileRecord, IndexKind
from memexfs.store import filters
from memexfs.store.api import (
    DENSE,
    PAGE,
    SPARSE,
    ChunkHit,
    ChunkPoint,
    ChunkQuery,
    Filter,
)
from memexfs.store.codec import (
    chunk_payload,
    escape_str,
    escape_value,
    file_changes,
    hit_of,
    record_of,
    unescape_value,
    vectors_by_hash,
)
from memexfs.store.lexical import Lexical
from memexfs.store.migrations import check_version, migrate

log = logging.getLogger(__name__)

TIMEOUT_S = 10
_VERSION_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "memexfs:schema-version"))


@dataclass(frozen=True)
class Sharding:
    """A vault's place in a catalog/chunks pair shared by many vaults (Qdrant's user-defined
    sharding): its own ``shard_key`` (the vault's id), ``shards`` per key (fixed once the key
    exists: plan for growth), each on ``replication_factor`` nodes, a write acknowledged by
    ``write_consistency_factor`` of them. The defaults survive the loss of one node for reads;
    writes to that node's shards fail (``IndexUnavailable``) until its replica is back."""

    shard_key: str
    shards: int = 1
    replication_factor: int = 2
    write_consistency_factor: int = 2


def collection_prefix(vault_root: str) -> str:
    """Collections are named after the vault's path, so several vaults can share one server."""
    return "memexfs_" + hashlib.blake2b(vault_root.encode(), digest_size=6).hexdigest()


def unavailable(exc: Exception) -> str | None:
    """Why ``exc`` means the server cannot serve now (None: a bug or a bad request, which
    retrying would not cure): no answer or a timeout, a rate limit, a 5xx (a write that reached
    fewer replicas than ``write_consistency_factor`` is one)."""
    from pydantic import ValidationError
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, UnexpectedResponse):
        code = exc.status_code or 0
        if code < 500 and code not in (408, 429):
            return None
        try:
            return f"HTTP {code}: {exc.structured()['status']['error']}"
        except Exception:  # no JSON body: the status line says enough
            return f"HTTP {code} {exc.reason_phrase}"
    if isinstance(exc, ResponseHandlingException):  # the transport failed, or a reply's shape
        return None if isinstance(exc.source, ValidationError) else str(exc.source) or repr(exc)
    if isinstance(exc, ResourceExhaustedResponse):
        return f"rate limited ({exc})"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return str(exc) or type(exc).__name__
    return None


class Guarded:
    """A qdrant-client with every call's "server cannot serve now" raised as
    ``IndexUnavailable`` (the daemon's signal to serve plain files and retry later)."""

    def __init__(self, client: Any, where: str) -> None:
        self._client = client
        self._where = where

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        return self._guard(attr) if callable(attr) else attr

    def _guard(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return call(*args, **kwargs)
            except Exception as exc:
                reason = unavailable(exc)
                if reason is None:
                    raise
                raise IndexUnavailable(f"{self._where} unavailable: {reason}") from exc
        return guarded


class ClientSyntax:
    """``qdrant_client.models``' spelling of the filter conditions (``memexfs.store.filters``)."""

    def __init__(self, models: Any) -> None:
        self._m = models

    def match(self, key: str, value: Any) -> Any:
        return self._m.FieldCondition(key=key, match=self._m.MatchValue(value=value))

    def match_any(self, key: str, values: list[Any]) -> Any:
        return self._m.FieldCondition(key=key, match=self._m.MatchAny(any=values))

    def range(self, key: str, gte: float | None, lte: float | None, gt: float | None,
              lt: float | None) -> Any:
        return self._m.FieldCondition(key=key, range=self._m.Range(gte=gte, lte=lte, gt=gt,
                                                                   lt=lt))

    def is_empty(self, key: str) -> Any:
        return self._m.IsEmptyCondition(is_empty=self._m.PayloadField(key=key))

    def filter(self, must: list[Any] | None, should: list[Any] | None,
               must_not: list[Any] | None) -> Any:
        return self._m.Filter(must=must, should=should, must_not=must_not)


class ServerStore:
    """``Store`` over qdrant-client. Thread-safe (the client is; a lock orders replace-chunks)."""

    def __init__(self, dim: int, *, url: str | None = None, client: Any = None,
                 prefix: str = "memexfs", sharding: Sharding | None = None) -> None:
        import qdrant_client
        from qdrant_client import models

        self._m = models
        self._syntax = ClientSyntax(models)
        self._lock = threading.RLock()
        self._bm25 = Lexical()
        self._sharding = sharding
        # every catalog and chunk call's routing: the vault's shard key, or nothing at all
        self._key: dict[str, Any] = ({"shard_key_selector": sharding.shard_key} if sharding
                                     else {})
        # The version check only warns; _ensure below is the real reachability check.
        self._client = Guarded(client or qdrant_client.QdrantClient(
            url=url, timeout=TIMEOUT_S, check_compatibility=False), f"Qdrant at {url or 'client'}")
        self.catalog = f"{prefix}_catalog"
        self.chunks = f"{prefix}_chunks"
        self.meta = f"{prefix}_meta"
        where = f"Qdrant at {url or 'client'} ({prefix})"
        try:
            self._ensure(dim, where)
        except IndexUnavailable:  # IndexTooNew too: its own message
            self.close()
            raise
        except Exception as exc:  # wrong dim, auth, a bad request: one clear line upstream
            self.close()
            raise IndexUnavailable(f"Qdrant at {url or 'client'} unavailable: {exc}") from exc

    def _ensure(self, dim: int, where: str) -> None:
        m, c = self._m, self._client
        found = self._stored_version()
        check_version(found, where)
        if not c.collection_exists(self.catalog):
            c.create_collection(self.catalog, vectors_config={}, **self._placement(True))
        if not c.collection_exists(self.chunks):
            c.create_collection(
                self.chunks,
                vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE)},
                sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
                **self._placement(True),
            )
        if self._sharding is not None:
            for coll in (self.catalog, self.chunks):
                self._ensure_shard_key(coll, self._sharding)
        migrate(self, found, self._record_version, where)

    def _placement(self, sharded: bool) -> dict[str, Any]:
        """``create_collection``'s sharding and replication arguments (none without
        ``Sharding``: the server's defaults, today's behaviour)."""
        s = self._sharding
        if s is None:
            return {}
        kw: dict[str, Any] = dict(replication_factor=s.replication_factor,
                                  write_consistency_factor=s.write_consistency_factor)
        if sharded:  # in custom sharding, shard_number counts shards per shard key
            kw.update(sharding_method=self._m.ShardingMethod.CUSTOM, shard_number=s.shards)
        return kw

    def _ensure_shard_key(self, coll: str, s: Sharding) -> None:
        """Create the vault's shard key in ``coll``; the first open of each vault does, later
        ones are told it exists (400, "already exists")."""
        from qdrant_client.http.exceptions import UnexpectedResponse

        try:
            self._client.create_shard_key(coll, s.shard_key, shards_number=s.shards,
                                          replication_factor=s.replication_factor)
            log.info("created shard key %s in %s", s.shard_key, coll)
        except UnexpectedResponse as exc:
            if exc.status_code != 400 or b"already exists" not in exc.content:
                raise

    # -- the schema version
    def _stored_version(self) -> int:
        """As ``EdgeStore``'s: 1 for collections from before versions were recorded."""
        c = self._client
        if c.collection_exists(self.meta):
            recs = c.retrieve(self.meta, [_VERSION_ID], with_payload=True)
            if recs:
                return int((recs[0].payload or {})["version"])
        return 1 if c.collection_exists(self.catalog) else 0

    def _record_version(self, version: int) -> None:
        c = self._client
        if not c.collection_exists(self.meta):  # one per collection pair, not per vault
            c.create_collection(self.meta, vectors_config={}, **self._placement(False))
        c.upsert(self.meta, [self._m.PointStruct(id=_VERSION_ID, vector={},
                                                 payload={"version": version})])

    def create_index(self, collection: str, key: str, kind: IndexKind) -> None:
        """A payload index (a schema migration's step; the server ignores one it has)."""
        m = self._m
        schema = {"keyword": m.PayloadSchemaType.KEYWORD, "integer": m.PayloadSchemaType.INTEGER,
                  "float": m.PayloadSchemaType.FLOAT}[kind]
        with warnings.catch_warnings():  # local mode (tests) says indexes do nothing
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            self._client.create_payload_index(self.catalog if collection == "catalog"
                                              else self.chunks, key, field_schema=schema)

    # -- translation
    def _filter(self, f: Filter | None) -> Any:
        return filters.translate(f, self._syntax)

    def _sparse(self, vec: Any) -> Any:
        return self._m.SparseVector(indices=list(vec.indices), values=list(vec.values))

    # -- catalog
    def put_file(self, rec: FileRecord) -> None:
        self._client.upsert(self.catalog, [self._m.PointStruct(
            id=rec.file_id, vector={}, payload=escape_value(rec.to_payload()))], **self._key)

    def get_file(self, file_id: str) -> FileRecord | None:
        recs = self._client.retrieve(self.catalog, [file_id], with_payload=True, **self._key)
        return record_of(recs[0].payload) if recs else None

    def file_by_path(self, path: str) -> FileRecord | None:
        recs, _ = self._client.scroll(self.catalog, limit=1, with_payload=True,
                                      scroll_filter=self._filter(filters.by_path(path)),
                                      **self._key)
        return record_of(recs[0].payload) if recs else None

    def update_file(self, file_id: str, **changes: Any) -> None:
        self._client.set_payload(self.catalog, payload=file_changes(changes), points=[file_id],
                                 **self._key)

    def delete_file(self, file_id: str) -> None:
        m = self._m
        with self._lock:
            self._client.delete(self.chunks, m.FilterSelector(
                filter=self._filter(filters.of_file(file_id))), **self._key)
            self._client.delete(self.catalog, m.PointIdsList(points=[file_id]), **self._key)

    def _scroll(self, coll: str, flt: Filter | None, with_vectors: Any = False,
                page: int = PAGE) -> Iterator[Any]:
        offset = None
        while True:
            recs, offset = self._client.scroll(coll, scroll_filter=self._filter(flt), limit=page,
                                               offset=offset, with_payload=True,
                                               with_vectors=with_vectors, **self._key)
            yield from recs
            if offset is None:
                return

    def iter_files(self, flt: Filter | None = None) -> Iterator[FileRecord]:
        for rec in self._scroll(self.catalog, flt):
            yield record_of(rec.payload)

    def count_files(self, flt: Filter | None = None) -> int:
        return int(self._client.count(self.catalog, count_filter=self._filter(flt),
                                      exact=True, **self._key).count)

    # -- chunks
    def put_chunks(self, file_id: str, points: Sequence[ChunkPoint]) -> None:
        m = self._m
        structs = [m.PointStruct(
            id=p.point_id,
            vector={DENSE: [float(x) for x in p.dense],
                    SPARSE: self._sparse(self._bm25.document(escape_str(p.bm25_text)))},
            payload=chunk_payload(file_id, p)) for p in points]
        stale = self._filter(filters.tail_of(file_id, len(points)))
        with self._lock:
            if structs:
                self._client.upsert(self.chunks, structs, **self._key)
            self._client.delete(self.chunks, m.FilterSelector(filter=stale), **self._key)

    def delete_chunks(self, file_id: str) -> None:
        self._client.delete(self.chunks, self._m.FilterSelector(
            filter=self._filter(filters.of_file(file_id))), **self._key)

    def move_chunks(self, file_id: str, payload: dict[str, Any]) -> None:
        self._client.set_payload(self.chunks, payload=escape_value(payload),
                                 points=self._filter(filters.of_file(file_id)), **self._key)

    def chunk_vectors(self, file_id: str) -> dict[str, list[float]]:
        return vectors_by_hash(self._scroll(self.chunks, filters.of_file(file_id),
                                            with_vectors=[DENSE]))

    def count_chunks(self, flt: Filter | None = None) -> int:
        return int(self._client.count(self.chunks, count_filter=self._filter(flt),
                                      exact=True, **self._key).count)

    def iter_chunks(self, flt: Filter | None = None) -> Iterator[ChunkHit]:
        for rec in self._scroll(self.chunks, flt):
            yield hit_of(rec.id, 0.0, rec.payload)

    def distinct(self, key: str) -> list[str | int | bool]:
        resp = self._client.facet(self.chunks, key=key, limit=100_000, exact=True,
                                  **self._key)
        return [unescape_value(hit.value) for hit in resp.hits]

    def _request(self, q: ChunkQuery) -> dict[str, Any]:
        """``query_points``' arguments for ``q``: the same three shapes as Edge's request."""
        m = self._m
        flt = self._filter(q.filter)
        dense = [float(x) for x in q.dense] if q.dense is not None else None
        sparse = (self._sparse(self._bm25.query(escape_str(q.text))) if q.text.strip()
                  else None)
        common: dict[str, Any] = dict(limit=q.limit, filter=flt, with_payload=True,
                                      with_vector=[DENSE] if q.with_dense else False)
        if q.mode == "dense" or (q.mode == "hybrid" and sparse is None):
            if dense is None:
                raise ValueError("dense search needs a dense vector")
            return dict(query=dense, using=DENSE, score_threshold=q.score_threshold, **common)
        if q.mode == "sparse" or dense is None:
            if sparse is None:
                raise ValueError("sparse search needs query text")
            return dict(query=sparse, using=SPARSE, **common)
        fusion = (m.FusionQuery(fusion=m.Fusion.DBSF) if q.fusion == "dbsf"
                  else m.RrfQuery(rrf=m.Rrf(k=q.rrf_k,
                                            weights=list(q.weights) if q.weights else None)))
        prefetch = [m.Prefetch(query=dense, using=DENSE, limit=q.prefetch_limit, filter=flt,
                               score_threshold=q.score_threshold),
                    m.Prefetch(query=sparse, using=SPARSE, limit=q.prefetch_limit, filter=flt)]
        return dict(prefetch=prefetch, query=fusion, **common)

    def search(self, q: ChunkQuery) -> list[ChunkHit]:
        return self._hits(self._client.query_points(self.chunks, **self._call(q), **self._key))

    def search_batch(self, qs: Sequence[ChunkQuery]) -> list[list[ChunkHit]]:
        key = self._sharding.shard_key if self._sharding else None  # a request's own field
        reqs = [self._m.QueryRequest(**self._request(q), shard_key=key) for q in qs]
        return [self._hits(r) for r in self._client.query_batch_points(self.chunks, reqs)]

    def _call(self, q: ChunkQuery) -> dict[str, Any]:
        """``_request`` in ``query_points``' keyword names."""
        kw = self._request(q)
        kw["query_filter"] = kw.pop("filter")
        kw["with_vectors"] = kw.pop("with_vector")
        return kw

    @staticmethod
    def _hits(res: Any) -> list[ChunkHit]:
        return [hit_of(p.id, p.score, p.payload, p.vector) for p in res.points]

    def flush(self) -> None:
        """The server persists on its own (WAL); nothing to do."""

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing must not mask the caller's own error
            log.exception("closing the Qdrant client failed")
