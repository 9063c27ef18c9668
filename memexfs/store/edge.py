"""The default backend: Qdrant Edge shards in the vault, ``catalog/`` and ``chunks/``.

The engine holds the GIL while it blocks on disk and dies by SIGBUS on a full disk, so the daemon
runs this class in a process of its own (``memexfs.store.process``); tests and tools use it
in-process. The HNSW half lives in ``memexfs.store.edge_index``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from memexfs.errors import IndexFull, IndexUnavailable
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
    IndexTooNew,
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
from memexfs.store.edge_index import MIB, BackgroundIndex
from memexfs.store.lexical import Lexical
from memexfs.store.migrations import check_version, migrate
from memexfs.store.optimize import IndexPolicy, recover

log = logging.getLogger(__name__)

RESERVE_MIN = 64 * MIB  # free space kept on the index's file system (or 1 % of it, if more)
OPEN_LOCKED_WAIT_S = 10.0  # a store process that just lost its daemon may still hold the WAL lock
VERSION_FILE = "schema.json"  # {"version": n}: the schema migrations this index has had
_KINDS = {"keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer,
          "float": qe.PayloadSchemaType.Float}


def is_panic(exc: BaseException) -> bool:
    """A Rust panic surfacing through pyo3 (``pyo3_runtime.PanicException``): not an Exception."""
    return type(exc).__name__ == "PanicException"


def default_reserve(path: str | Path) -> int:
    st = os.statvfs(path)
    return max(RESERVE_MIN, st.f_blocks * st.f_frsize // 100)


class EdgeSyntax:
    """``qdrant_edge``'s spelling of the filter conditions (``memexfs.store.filters``)."""

    def match(self, key: str, value: Any) -> Any:
        return qe.FieldCondition(key, match=qe.MatchValue(value))

    def match_any(self, key: str, values: list[Any]) -> Any:
        return qe.FieldCondition(key, match=qe.MatchAny(values))

    def range(self, key: str, gte: float | None, lte: float | None, gt: float | None,
              lt: float | None) -> Any:
        return qe.FieldCondition(key, range=qe.RangeFloat(gte=gte, lte=lte, gt=gt, lt=lt))

    def is_empty(self, key: str) -> Any:
        return qe.IsEmptyCondition(key)

    def filter(self, must: list[Any] | None, should: list[Any] | None,
               must_not: list[Any] | None) -> Any:
        return qe.Filter(must=must, should=should, must_not=must_not)


_SYNTAX = EdgeSyntax()


def _filter(f: Filter | None) -> Any:
    return filters.translate(f, _SYNTAX)


class EdgeStore(BackgroundIndex):
    """Qdrant Edge shards in ``root``. Thread-safe (one lock).

    The Edge shard is not documented as safe for concurrent mutation, so every call holds
    ``_lock``; searches are short (ms), so this costs little next to encoding. Writes are refused
    with ``IndexFull`` while the index's file system has less than ``reserve_bytes`` free (default
    :func:`default_reserve`). A shard that cannot be opened (corrupt, locked) is
    ``IndexUnavailable`` with the engine's reason, panics included; ``repair=True`` then moves the
    index aside (``<root>.corrupt-<time>``) and starts an empty one that the indexer refills. An
    index of a newer schema is ``IndexTooNew`` and never repaired away. ``index_policy`` starts
    background HNSW builds (``BackgroundIndex``).
    """

    def __init__(self, root: str | Path, dim: int, *, reserve_bytes: int | None = None,
                 repair: bool = False, index_policy: IndexPolicy | None = None) -> None:
        self._qe = qe
        self._lock = threading.RLock()
        self._wlock = threading.Lock()  # chunk writes: taken before _lock, never after
        self._init_background(index_policy)
        self._bm25 = Lexical()
        self.root = root = Path(root)
        self.moved_aside: Path | None = None  # where a repair put the corrupt index
        root.mkdir(parents=True, exist_ok=True)
        self._reserve = default_reserve(root) if reserve_bytes is None else reserve_bytes
        try:
            self._open_all(dim)
        except IndexTooNew:
            raise
        except IndexUnavailable as exc:
            if not repair or "WouldBlock" in str(exc):  # in use by another process: not damage
                raise
            stamp = time.strftime("%Y%m%d-%H%M%S")
            self.moved_aside = root.with_name(f"{root.name}.corrupt-{stamp}")
            if self.moved_aside.exists():
                self.moved_aside = root.with_name(f"{root.name}.corrupt-{stamp}-{os.getpid()}")
            os.replace(root, self.moved_aside)
            log.warning("index in %s could not be opened: moved to %s, starting an empty one",
                        root, self.moved_aside)
            root.mkdir(parents=True)
            self._open_all(dim)
        self._start_background()

    # -- opening and the schema version
    def _open_all(self, dim: int) -> None:
        found = self._stored_version()
        check_version(found, str(self.root))  # before the engine reads a newer format
        deadline = time.monotonic() + OPEN_LOCKED_WAIT_S
        while True:
            try:
                self._catalog = self._open(
                    self.root / "catalog",
                    qe.EdgeConfig(sparse_vectors={"none": qe.EdgeSparseVectorParams()}),
                )
                # the catalog's lock is ours: no other store works on these directories
                recover(self.root / "chunks")
                self._chunks = self._open(
                    self.root / "chunks",
                    qe.EdgeConfig(
                        vectors={DENSE: qe.EdgeVectorParams(size=dim,
                                                            distance=qe.Distance.Cosine)},
                        sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(
                            modifier=qe.Modifier.Idf)},
                    ),
                )
                migrate(self, found, self._record_version, str(self.root))
                # a cheap read of each shard: damage the loader tolerates shows up here
                self._catalog.count(qe.CountRequest(exact=True))
                self._chunks.count(qe.CountRequest(exact=True))
                return
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # corrupt shards panic: not an Exception
                self._close_open_shards()
                if "WouldBlock" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.1)  # the previous owner is still closing
                    continue
                kind = "the index engine panicked" if is_panic(exc) else "error"
                raise IndexUnavailable(
                    f"cannot open the index in {self.root} ({kind}): {exc}") from exc

    def _stored_version(self) -> int:
        """The schema version recorded in ``root``; 1 for an index from before versions were
        recorded (it has shards but no file), 0 for a new one."""
        try:
            return int(json.loads((self.root / VERSION_FILE).read_text())["version"])
        except FileNotFoundError:
            catalog = self.root / "catalog"
            return 1 if catalog.is_dir() and any(catalog.iterdir()) else 0
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexUnavailable(f"unreadable {VERSION_FILE} in {self.root}: {exc}") from exc

    def _record_version(self, version: int) -> None:
        path = self.root / VERSION_FILE
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"version": version}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def create_index(self, collection: str, key: str, kind: IndexKind) -> None:
        """A payload index on the catalog or chunk shard (a schema migration's step)."""
        shard = self._catalog if collection == "catalog" else self._chunks
        if key not in shard.info().payload_schema:
            shard.update(qe.UpdateOperation.create_field_index(key, _KINDS[kind]))

    def _close_open_shards(self) -> None:
        for name in ("_catalog", "_chunks"):
            shard = self.__dict__.pop(name, None)
            if shard is not None:
                try:
                    shard.close()
                except BaseException:  # a half-open corrupt shard may panic
                    log.debug("closing a half-open shard failed", exc_info=True)

    def _check_space(self) -> None:
        """Refuse a write before the engine can hit a full disk (SIGBUS in its mmapped files)."""
        if not self._reserve:
            return
        st = os.statvfs(self.root)
        free = st.f_bavail * st.f_frsize
        if free < self._reserve:
            raise IndexFull(f"index disk full: {free // MIB} MiB free in {self.root} "
                            f"(reserve {self._reserve // MIB} MiB)")

    @staticmethod
    def _open(path: Path, config: Any) -> Any:
        if (path / "edge_config.json").exists() or (path.exists() and any(path.iterdir())):
            return qe.EdgeShard.load(str(path))
        path.mkdir(parents=True, exist_ok=True)
        return qe.EdgeShard.create(str(path), config)

    # -- catalog
    def put_file(self, rec: FileRecord) -> None:
        point = qe.Point(rec.file_id, {}, escape_value(rec.to_payload()))
        with self._lock:
            self._check_space()
            self._catalog.update(qe.UpdateOperation.upsert_points([point]))

    def get_file(self, file_id: str) -> FileRecord | None:
        with self._lock:
            recs = self._catalog.retrieve([file_id], with_payload=True, with_vector=False)
        return record_of(recs[0].payload) if recs else None

    def file_by_path(self, path: str) -> FileRecord | None:
        req = qe.ScrollRequest(limit=1, filter=_filter(filters.by_path(path)), with_payload=True)
        with self._lock:
            recs, _ = self._catalog.scroll(req)
        return record_of(recs[0].payload) if recs else None

    def update_file(self, file_id: str, **changes: Any) -> None:
        op = qe.UpdateOperation.set_payload([file_id], file_changes(changes))
        with self._lock:
            self._check_space()
            self._catalog.update(op)

    def delete_file(self, file_id: str) -> None:
        with self._wlock, self._lock:
            self._check_space()
            self._chunk_write(qe.UpdateOperation.delete_points_by_filter(
                _filter(filters.of_file(file_id))))
            self._catalog.update(qe.UpdateOperation.delete_points([file_id]))

    def _page(self, shard: Any, flt: Filter | None, offset: Any, limit: int,
              with_vector: bool = False) -> tuple[list[Any], Any]:
        req = qe.ScrollRequest(offset=offset, limit=limit, filter=_filter(flt),
                               with_payload=True, with_vector=with_vector)
        with self._lock:
            recs, nxt = shard.scroll(req)
        return list(recs), nxt

    def _scroll(self, shard: Any, flt: Filter | None, with_vector: bool = False,
                page: int = PAGE) -> Iterator[Any]:
        offset = None
        while True:
            recs, offset = self._page(shard, flt, offset, page, with_vector)
            yield from recs
            if offset is None:
                return

    def files_page(self, flt: Filter | None, offset: Any = None,
                   limit: int = PAGE) -> tuple[list[FileRecord], Any]:
        """One page of ``iter_files`` and the offset of the next (None at the end): what a
        store in another process fetches per round trip."""
        recs, nxt = self._page(self._catalog, flt, offset, limit)
        return [record_of(r.payload) for r in recs], nxt

    def chunks_page(self, flt: Filter | None, offset: Any = None,
                    limit: int = PAGE) -> tuple[list[ChunkHit], Any]:
        recs, nxt = self._page(self._chunks, flt, offset, limit)
        return [hit_of(r.id, 0.0, r.payload) for r in recs], nxt

    def iter_files(self, flt: Filter | None = None) -> Iterator[FileRecord]:
        for rec in self._scroll(self._catalog, flt):
            yield record_of(rec.payload)

    def count_files(self, flt: Filter | None = None) -> int:
        with self._lock:
            return int(self._catalog.count(qe.CountRequest(exact=True, filter=_filter(flt))))

    # -- chunks
    def put_chunks(self, file_id: str, points: Sequence[ChunkPoint]) -> None:
        """Replace the file's chunks: upsert the new ones, delete indexes beyond the new count."""
        new = [qe.Point(p.point_id, {DENSE: [float(x) for x in p.dense],
                                     SPARSE: self._bm25.document(escape_str(p.bm25_text))},
                        chunk_payload(file_id, p))
               for p in points]
        stale = _filter(filters.tail_of(file_id, len(points)))
        with self._wlock, self._lock:
            self._check_space()
            if new:
                self._chunk_write(qe.UpdateOperation.upsert_points(new), len(new))
            self._chunk_write(qe.UpdateOperation.delete_points_by_filter(stale))

    def delete_chunks(self, file_id: str) -> None:
        with self._wlock, self._lock:
            self._check_space()
            self._chunk_write(qe.UpdateOperation.delete_points_by_filter(
                _filter(filters.of_file(file_id))))

    def move_chunks(self, file_id: str, payload: dict[str, Any]) -> None:
        with self._wlock, self._lock:
            self._check_space()
            self._chunk_write(qe.UpdateOperation.set_payload_by_filter(
                _filter(filters.of_file(file_id)), escape_value(payload)))

    def chunk_vectors(self, file_id: str) -> dict[str, list[float]]:
        """chunk_hash -> dense vector of the file's stored chunks (to skip re-embedding them)."""
        return vectors_by_hash(self._scroll(self._chunks, filters.of_file(file_id),
                                            with_vector=True))

    def count_chunks(self, flt: Filter | None = None) -> int:
        with self._lock:
            return int(self._chunks.count(qe.CountRequest(exact=True, filter=_filter(flt))))

    def iter_chunks(self, flt: Filter | None = None) -> Iterator[ChunkHit]:
        for rec in self._scroll(self._chunks, flt):
            yield hit_of(rec.id, 0.0, rec.payload)

    def distinct(self, key: str) -> list[str | int | bool]:
        """Distinct values of an indexed keyword field over all chunks (a facet: milliseconds)."""
        req = qe.FacetRequest(key, limit=100_000, exact=True)
        with self._lock:
            resp = self._chunks.facet(req)
        return [unescape_value(hit.value) for hit in resp.hits]

    def _request(self, q: ChunkQuery) -> Any:
        flt = _filter(q.filter)
        dense_q = (qe.Query.Nearest([float(x) for x in q.dense], using=DENSE)
                   if q.dense is not None else None)
        sparse_q = (qe.Query.Nearest(self._bm25.query(escape_str(q.text)), using=SPARSE)
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
        fusion: Any = (qe.Fusion.Dbsf() if q.fusion == "dbsf"  # (the stubs: Rrf is no Fusion)
                       else qe.Fusion.Rrf(k=q.rrf_k,
                                          weights=list(q.weights) if q.weights else None))
        prefetches = [
            qe.Prefetch(limit=q.prefetch_limit, query=dense_q, filter=flt,
                        score_threshold=q.score_threshold),
            qe.Prefetch(limit=q.prefetch_limit, query=sparse_q, filter=flt),
        ]
        return qe.QueryRequest(query=fusion, prefetches=prefetches, **common)

    def search(self, q: ChunkQuery) -> list[ChunkHit]:
        req = self._request(q)
        with self._lock:
            points = self._chunks.query(req)
        return [hit_of(p.id, p.score, p.payload, p.vector) for p in points]

    def search_batch(self, qs: Sequence[ChunkQuery]) -> list[list[ChunkHit]]:
        reqs = [self._request(q) for q in qs]
        with self._lock:
            results = self._chunks.query_batch(qe.QueryBatchRequest(reqs))
        return [[hit_of(p.id, p.score, p.payload, p.vector) for p in pts] for pts in results]

    def flush(self) -> None:
        with self._wlock, self._lock:
            self._catalog.flush()
            self._chunks.flush()

    def close(self) -> None:
        self._stop_background()
        with self._wlock, self._lock:
            for shard in (self._catalog, self._chunks):
                try:
                    shard.flush()
                    shard.close()
                except Exception:  # closing must not mask the caller's own error
                    log.exception("closing a shard failed")

    def ping(self) -> None:
        """Nothing: a round trip that proves a store process answers."""
