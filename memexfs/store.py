"""Storage behind a small interface: the catalog and the chunk index.

``Store`` is what the rest of MemexFS codes against; ``EdgeStore`` implements it with Qdrant Edge
in-process (the default). A Qdrant server backend implements the same protocol with qdrant-client.
Filters are expressed in the neutral types below so callers never import a Qdrant module.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, Union

from memexfs.errors import IndexFull, IndexUnavailable
from memexfs.lexical import Lexical
from memexfs.schema import FileRecord, chunk_point_id
from memexfs.store_optimize import (
    IndexBuild,
    IndexPolicy,
    build_dir,
    copy_shard,
    disk_usage,
    finish_swap,
    old_dir,
    recover,
    spawn_builder,
    write_journal,
)

log = logging.getLogger(__name__)

DENSE = "dense"
SPARSE = "bm25"
PAGE = 512  # records per scroll page (and per round trip to a store process)


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


# ---- names that are not UTF-8 -------------------------------------------------------------------
# A file name that is not UTF-8 reaches us as a str with surrogate escapes (os.fsdecode); Qdrant
# payload strings must be UTF-8. At the store boundary each such surrogate U+DC80..U+DCFF becomes
# ESC + two hex digits, and ESC itself (a noncharacter no real name carries) becomes ESC ESC. The
# mapping is per character, so prefixes (``dirs``) and equality filters keep working, and strings
# without either character are stored as before.
ESC = "\U0010ffff"
_NEEDS_ESCAPE = re.compile("[\udc80-\udcff\U0010ffff]")
_ESCAPED = re.compile("\U0010ffff(\U0010ffff|[0-9a-f]{2})")


def escape_str(s: str) -> str:
    """The UTF-8-safe stored form of ``s`` (identity for ordinary strings)."""
    if s.isascii() or not _NEEDS_ESCAPE.search(s):
        return s
    return _NEEDS_ESCAPE.sub(
        lambda m: ESC + ESC if m[0] == ESC else f"{ESC}{ord(m[0]) - 0xDC00:02x}", s)


def unescape_str(s: str) -> str:
    """Inverse of :func:`escape_str`."""
    if ESC not in s:
        return s
    return _ESCAPED.sub(lambda m: ESC if m[1] == ESC else chr(0xDC00 + int(m[1], 16)), s)


def escape_value(v: Any) -> Any:
    """``escape_str`` over every string in a payload value (dicts, lists, tuples)."""
    if isinstance(v, str):
        return escape_str(v)
    if isinstance(v, dict):
        return {escape_str(k) if isinstance(k, str) else k: escape_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [escape_value(x) for x in v]
    return v


def unescape_value(v: Any) -> Any:
    if isinstance(v, str):
        return unescape_str(v)
    if isinstance(v, dict):
        return {unescape_str(k) if isinstance(k, str) else k: unescape_value(x)
                for k, x in v.items()}
    if isinstance(v, list):
        return [unescape_value(x) for x in v]
    return v


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
MIB = 1 << 20
RESERVE_MIN = 64 * MIB  # free space kept on the index's file system (or 1 % of it, if more)
CATCH_UP_OPS = 64  # writes left for the replay that holds every call back
OPEN_LOCKED_WAIT_S = 10.0  # a store process that just lost its daemon may still hold the WAL lock


def is_panic(exc: BaseException) -> bool:
    """A Rust panic surfacing through pyo3 (``pyo3_runtime.PanicException``): not an Exception."""
    return type(exc).__name__ == "PanicException"


def default_reserve(path: str | Path) -> int:
    st = os.statvfs(path)
    return max(RESERVE_MIN, st.f_blocks * st.f_frsize // 100)


class EdgeStore:
    """Qdrant Edge shards in ``root``: ``catalog/`` and ``chunks/``. Thread-safe (one lock).

    The Edge shard is not documented as safe for concurrent mutation, so every call holds
    ``_lock``; searches are short (ms), so this costs little next to encoding.

    The engine holds the GIL while it blocks on disk and dies by SIGBUS on a full disk, so the
    daemon runs this class in a process of its own (``memexfs.store_process``). Writes are refused
    with ``IndexFull`` while the index's file system has less than ``reserve_bytes`` free (default
    :func:`default_reserve`). A shard that cannot be opened (corrupt, locked) is
    ``IndexUnavailable`` with the engine's reason, panics included; ``repair=True`` then moves the
    index aside (``<root>.corrupt-<time>``) and starts an empty one that the indexer refills.

    HNSW is built beside the live chunk shard (``memexfs.store_optimize``): chunk writes take
    ``_wlock`` before ``_lock``, so a build can hold writes back while it copies the shard and
    searches go on. ``index_policy`` starts builds on its own when the vault is idle.
    """

    def __init__(self, root: str | Path, dim: int, *, reserve_bytes: int | None = None,
                 repair: bool = False, index_policy: IndexPolicy | None = None) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self._lock = threading.RLock()
        self._wlock = threading.Lock()  # chunk writes: taken before _lock, never after
        self._swap_lock = threading.Lock()  # one swap at a time; close waits for it
        self._build: IndexBuild | None = None
        self._policy = index_policy
        self._last_write = time.monotonic()
        self._written_since_build = 0  # chunk points written since the last build started
        self._retry_at = 0.0
        self.builds: list[dict[str, float]] = []  # timings of the swaps done
        self._stop = threading.Event()
        self._maintainer: threading.Thread | None = None
        self._bm25 = Lexical()
        self.root = root = Path(root)
        self.moved_aside: Path | None = None  # where a repair put the corrupt index
        root.mkdir(parents=True, exist_ok=True)
        self._reserve = default_reserve(root) if reserve_bytes is None else reserve_bytes
        try:
            self._open_all(dim)
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
        if index_policy is not None:
            self._maintainer = threading.Thread(target=self._maintain_loop,
                                                name="index-maintainer", daemon=True)
            self._maintainer.start()

    def _open_all(self, dim: int) -> None:
        qe = self._qe
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
                self._ensure_indexes()
                # a cheap read of each shard: damage the loader tolerates shows up here
                self._catalog.count(qe.CountRequest(exact=True))
                self._chunks.count(qe.CountRequest(exact=True))
                return
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 (corrupt shards panic: not an Exception)
                self._close_open_shards()
                if "WouldBlock" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.1)  # the previous owner is still closing
                    continue
                kind = "the index engine panicked" if is_panic(exc) else "error"
                raise IndexUnavailable(
                    f"cannot open the index in {self.root} ({kind}): {exc}") from exc

    def _close_open_shards(self) -> None:
        for name in ("_catalog", "_chunks"):
            shard = self.__dict__.pop(name, None)
            if shard is not None:
                try:
                    shard.close()
                except BaseException:  # noqa: BLE001 (a half-open corrupt shard may panic)
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
            return qe.FieldCondition(c.key, match=qe.MatchValue(escape_value(c.value)))
        if isinstance(c, MatchAny):
            return qe.FieldCondition(c.key, match=qe.MatchAny(escape_value(list(c.values))))
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
    @staticmethod
    def _record(payload: Any) -> FileRecord:
        return FileRecord.from_payload(unescape_value(dict(payload or {})))

    def put_file(self, rec: FileRecord) -> None:
        qe = self._qe
        point = qe.Point(rec.file_id, {}, escape_value(rec.to_payload()))
        with self._lock:
            self._check_space()
            self._catalog.update(qe.UpdateOperation.upsert_points([point]))

    def get_file(self, file_id: str) -> FileRecord | None:
        with self._lock:
            recs = self._catalog.retrieve([file_id], with_payload=True, with_vector=False)
        return self._record(recs[0].payload) if recs else None

    def file_by_path(self, path: str) -> FileRecord | None:
        qe = self._qe
        req = qe.ScrollRequest(
            limit=1, filter=self._filter(Filter(must=(Match("path", path),))), with_payload=True
        )
        with self._lock:
            recs, _ = self._catalog.scroll(req)
        return self._record(recs[0].payload) if recs else None

    def update_file(self, file_id: str, **changes: Any) -> None:
        qe = self._qe
        if "path" in changes:
            from memexfs.schema import ancestors

            changes["name"] = changes["path"].rsplit("/", 1)[-1]
            changes["dirs"] = ancestors(changes["path"])
        with self._lock:
            self._check_space()
            self._catalog.update(qe.UpdateOperation.set_payload([file_id], escape_value(changes)))

    def delete_file(self, file_id: str) -> None:
        qe = self._qe
        with self._wlock, self._lock:
            self._check_space()
            self._chunk_write(qe.UpdateOperation.delete_points_by_filter(
                self._file_filter(file_id)))
            self._catalog.update(qe.UpdateOperation.delete_points([file_id]))

    def _page(self, shard: Any, flt: Filter | None, offset: Any, limit: int,
              with_vector: bool = False) -> tuple[list[Any], Any]:
        req = self._qe.ScrollRequest(offset=offset, limit=limit, filter=self._filter(flt),
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
        return [self._record(r.payload) for r in recs], nxt

    def chunks_page(self, flt: Filter | None, offset: Any = None,
                    limit: int = PAGE) -> tuple[list[ChunkHit], Any]:
        recs, nxt = self._page(self._chunks, flt, offset, limit)
        return [ChunkHit(str(r.id), 0.0, unescape_value(dict(r.payload or {}))) for r in recs], nxt

    def iter_files(self, flt: Filter | None = None) -> Iterator[FileRecord]:
        for rec in self._scroll(self._catalog, flt):
            yield self._record(rec.payload)

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
            sparse = self._bm25.document(escape_str(p.bm25_text))
            vec = {DENSE: [float(x) for x in p.dense], SPARSE: sparse}
            new.append(qe.Point(p.point_id, vec, escape_value(
                {**p.payload, "file_id": file_id, "chunk_index": p.index})))
        stale = Filter(must=(Match("file_id", file_id), Range("chunk_index", gte=len(points))))
        with self._wlock, self._lock:
            self._check_space()
            if new:
                self._chunk_write(qe.UpdateOperation.upsert_points(new), len(new))
            self._chunk_write(qe.UpdateOperation.delete_points_by_filter(self._filter(stale)))

    def delete_chunks(self, file_id: str) -> None:
        with self._wlock, self._lock:
            self._check_space()
            self._chunk_write(self._qe.UpdateOperation.delete_points_by_filter(
                self._file_filter(file_id)))

    def move_chunks(self, file_id: str, payload: dict[str, Any]) -> None:
        with self._wlock, self._lock:
            self._check_space()
            self._chunk_write(self._qe.UpdateOperation.set_payload_by_filter(
                self._file_filter(file_id), escape_value(payload)))

    def chunk_vectors(self, file_id: str) -> dict[str, list[float]]:
        """chunk_hash -> dense vector of the file's stored chunks (to skip re-embedding them)."""
        out: dict[str, list[float]] = {}
        for rec in self._scroll(self._chunks, Filter(must=(Match("file_id", file_id),)),
                                with_vector=True):
            vec = rec.vector
            if isinstance(vec, dict) and DENSE in vec and rec.payload:
                out[unescape_str(str(rec.payload.get("chunk_hash", "")))] = list(vec[DENSE])
        return out

    def count_chunks(self, flt: Filter | None = None) -> int:
        with self._lock:
            return int(self._chunks.count(self._qe.CountRequest(exact=True,
                                                                filter=self._filter(flt))))

    def iter_chunks(self, flt: Filter | None = None) -> Iterator[ChunkHit]:
        for rec in self._scroll(self._chunks, flt):
            yield ChunkHit(str(rec.id), 0.0, unescape_value(dict(rec.payload or {})))

    def distinct(self, key: str) -> list[str | int | bool]:
        """Distinct values of an indexed keyword field over all chunks (a facet: milliseconds)."""
        req = self._qe.FacetRequest(key, limit=100_000, exact=True)
        with self._lock:
            resp = self._chunks.facet(req)
        return [unescape_value(hit.value) for hit in resp.hits]

    def _request(self, q: ChunkQuery) -> Any:
        qe = self._qe
        flt = self._filter(q.filter)
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
        return ChunkHit(str(p.id), float(p.score), unescape_value(dict(p.payload or {})), dense)

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
        with self._wlock, self._lock:
            self._catalog.flush()
            self._chunks.flush()

    def close(self) -> None:
        self._stop.set()
        if self._maintainer is not None and self._maintainer is not threading.current_thread():
            self._maintainer.join()
        with self._swap_lock:
            self._abandon_build()
        with self._wlock, self._lock:
            for shard in (self._catalog, self._chunks):
                try:
                    shard.flush()
                    shard.close()
                except Exception:  # closing must not mask the caller's own error
                    log.exception("closing a shard failed")

    def ping(self) -> None:
        """Nothing: a round trip that proves a store process answers."""

    # -- HNSW built in the background (memexfs.store_optimize)
    def _chunk_write(self, op: Any, points: int = 0) -> None:
        """Apply one chunk write (the caller holds ``_wlock`` and ``_lock``); while a build
        runs, log it too, for the replay onto the copy."""
        self._chunks.update(op)
        self._last_write = time.monotonic()
        self._written_since_build += points
        if self._build is not None:
            self._build.log.append(op)

    def index_status(self) -> dict[str, Any]:
        """Chunk points, how many are outside HNSW (searched exactly), and the builds."""
        with self._lock:
            info = self._chunks.info()
        # the engine counts each chunk's BM25 vector as indexed: dense ones are the rest
        unindexed = max(0, 2 * info.points_count - info.indexed_vectors_count)
        return {"points": info.points_count, "unindexed": unindexed,
                "building": self._build is not None, "builds": len(self.builds),
                "builder_running": self._build is not None and self._build.proc.poll() is None,
                "last_build": self.builds[-1] if self.builds else None}

    def start_index_build(self, policy: IndexPolicy | None = None, wait: bool = True) -> bool:
        """Copy the chunk shard and start the builder on the copy (False: one runs already).
        Writes wait for the copy; searches do not. ``wait=False`` copies in a thread of its own
        (what a store process asks for: its request loop stays free)."""
        if not wait:
            threading.Thread(target=self._start_logged, args=(policy,), name="index-copy",
                             daemon=True).start()
            return True
        policy = policy or self._policy or IndexPolicy()
        live = self.root / "chunks"
        with self._wlock:
            if self._build is not None or self._stop.is_set():
                return False
            t = time.monotonic()
            with self._lock:
                self._chunks.flush()
            need = disk_usage(live) + self._reserve
            st = os.statvfs(self.root)
            if st.f_bavail * st.f_frsize < need:
                raise IndexFull(f"no room to build the index beside it ({need // MIB} MiB)")
            dst = build_dir(live)
            try:
                copy_shard(live, dst)
                proc = spawn_builder(dst, policy)
            except BaseException:
                shutil.rmtree(dst, ignore_errors=True)
                raise
            self._build = IndexBuild(dst, proc, time.monotonic(), time.monotonic() - t)
            self._written_since_build = 0
        log.info("building HNSW in %s (copied in %.1f s)", dst, self._build.copy_s)
        return True

    def _start_logged(self, policy: IndexPolicy | None) -> None:
        try:
            self.start_index_build(policy)
        except Exception:
            log.exception("starting an index build failed")

    def poll_index_build(self, wait: bool = True) -> bool:
        """Swap a finished build in (True); drop a failed one; nothing while it runs.
        ``wait=False`` swaps in a thread of its own (True: it started), as a store process
        asks: only the swap's last step (replaying the final writes, reopening) holds calls."""
        b = self._build
        if b is None or b.proc.poll() is None or self._swap_lock.locked():
            return False
        if not wait:
            threading.Thread(target=self._poll_logged, name="index-swap", daemon=True).start()
            return True
        with self._swap_lock:
            if self._build is not b:
                return False  # another caller swapped it meanwhile
            if b.proc.returncode != 0:
                log.error("index build failed (exit %s): keeping the index as it is",
                          b.proc.returncode)
                self._abandon_build()
                self._retry_at = time.monotonic() + (self._policy or IndexPolicy()).retry_s
                return False
            self._swap(b)
            return True

    def _poll_logged(self) -> None:
        try:
            self.poll_index_build()
        except Exception:
            log.exception("swapping the built index in failed")

    def _swap(self, b: IndexBuild) -> None:
        qe = self._qe
        live = self.root / "chunks"
        built = qe.EdgeShard.load(str(b.dir))
        committed = False
        try:
            done = 0
            while True:  # catch up outside the locks: writes and searches continue
                with self._lock:
                    ops = b.log[done:]
                if len(ops) <= CATCH_UP_OPS:
                    break
                for op in ops:
                    built.update(op)
                done += len(ops)
            with self._wlock, self._lock:
                t = time.monotonic()
                for op in b.log[done:]:
                    built.update(op)
                built.flush()
                built.close()
                write_journal(live)  # the copy holds every write: it is the index now
                committed = True
                t_close = time.monotonic()
                self._chunks.flush()
                self._chunks.close()
                finish_swap(live, drop_old=False)
                t_load = time.monotonic()
                self._chunks = qe.EdgeShard.load(str(live))
                self._build = None
                done_at = time.monotonic()
            shutil.rmtree(old_dir(live), ignore_errors=True)  # outside the locks: it is slow
        except BaseException:
            if not committed:
                try:
                    built.close()
                except BaseException:  # noqa: BLE001 (a panicking close must not mask it)
                    log.debug("closing the built shard failed", exc_info=True)
                self._abandon_build()
            else:
                self._reopen_after_failed_swap(live)
            raise
        self.builds.append({"copy_s": round(b.copy_s, 3),
                            "build_s": round(t - b.started, 3),
                            "replayed": len(b.log), "stall_s": round(done_at - t, 3),
                            "stall_replay_s": round(t_close - t, 3),
                            "stall_close_s": round(t_load - t_close, 3),
                            "stall_load_s": round(done_at - t_load, 3)})
        log.info("HNSW index swapped in: %s", self.builds[-1])

    def _reopen_after_failed_swap(self, live: Path) -> None:
        """Past the commit point the copy is the index: finish the renames and open it."""
        with self._wlock, self._lock:
            self._build = None
            try:
                finish_swap(live)
                self._chunks = self._qe.EdgeShard.load(str(live))
                log.error("index swap failed after its commit point; finished it on retry")
            except BaseException:  # noqa: BLE001 (the next open completes it: recover())
                log.critical("index swap failed after its commit point; reopen to finish it",
                             exc_info=True)

    def _abandon_build(self) -> None:
        with self._wlock:
            b, self._build = self._build, None
        if b is None:
            return
        if b.proc.poll() is None:
            b.proc.terminate()
            try:
                b.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                b.proc.kill()
                b.proc.wait()
        shutil.rmtree(b.dir, ignore_errors=True)

    def maintain(self) -> None:
        """One step of ``index_policy``: swap a finished build in, or start one when due."""
        p = self._policy
        if self._build is not None:
            self.poll_index_build()
            return
        now = time.monotonic()
        if p is None or now < self._retry_at or now - self._last_write < p.idle_s:
            return
        if self.builds and self._written_since_build < p.min_unindexed:
            return  # nothing new since our last build (the estimate may be off)
        if self.index_status()["unindexed"] >= p.min_unindexed:
            self.start_index_build()

    def _maintain_loop(self) -> None:
        assert self._policy is not None
        while not self._stop.wait(self._policy.poll_s):
            try:
                self.maintain()
            except Exception:  # a failed build leaves the live index serving: retry later
                log.exception("background index build failed")
                self._retry_at = time.monotonic() + self._policy.retry_s


def open_store(vault: Any, qdrant_url: str | None = None, dim: int = 384, *,
               in_process: bool = False, repair: bool = False,
               log_to: str | Path | None = None) -> Store:
    """The vault's store: Qdrant Edge in ``.memexfs/index`` or, once a vault was given a
    ``qdrant_url`` (remembered in ``.memexfs/config.json``), collections on that server.

    Edge runs in a store process of its own (``ProcessStore``) unless ``in_process``: its native
    code can hold the GIL, panic or die by SIGBUS, and none of that may stop or kill the caller.
    ``repair`` moves an index that cannot be opened aside and starts an empty one; ``log_to``
    takes the store process's stderr (default: ours).
    """
    config = vault.read_json("config.json")
    url = qdrant_url or config.get("qdrant_url")
    if not url:
        if in_process:
            return EdgeStore(vault.index_dir, dim, repair=repair)
        from memexfs.store_process import ProcessStore

        return ProcessStore(vault.index_dir, dim, repair=repair, log_to=log_to)
    from memexfs.store_server import ServerStore, collection_prefix

    store = ServerStore(dim, url=str(url), prefix=collection_prefix(str(vault.root)))
    if qdrant_url and config.get("qdrant_url") != qdrant_url:  # remembered once it worked
        vault.write_json("config.json", {**config, "qdrant_url": qdrant_url})
    return store
