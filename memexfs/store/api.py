"""What the rest of MemexFS codes against: the ``Store`` protocol and its neutral types.

Filters, queries and hits are plain dataclasses here, so no caller imports a Qdrant module; each
backend translates them (``memexfs.store.filters``) into its own client's types.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Union

from memexfs.errors import IndexUnavailable
from memexfs.schema import FileRecord, chunk_point_id

DENSE = "dense"
SPARSE = "bm25"
PAGE = 512  # records per scroll page (and per round trip to a store process)


class IndexTooNew(IndexUnavailable):
    """The index was written by a newer MemexFS (its schema version is above ours): it is left
    untouched, never migrated down nor repaired away."""


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
    """One search over chunks. ``hybrid`` fuses the top ``prefetch_limit`` of dense and of BM25
    inside the store: RRF, where each list adds ``1 / (rank / w + rrf_k - 1)`` (rank from 1, ``w``
    from ``weights`` = (dense, sparse), default 1: plain ``1 / (rank + k - 1)``), or DBSF. Every
    backend ranks with exactly these knobs (tests/component/test_store_congruence.py)."""

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
