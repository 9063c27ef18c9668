"""The catalog and chunk payloads: what each field means and which invariants hold.

Two Qdrant collections (Edge shards) live in ``<vault>/.memexfs/``:

``catalog`` — one point per regular file in the vault.
    point id   = ``file_id`` (uuid4 string), assigned when the file is first seen and kept across
                 renames made through the mount (and across outside renames that reconcile can pair
                 by inode or content hash).
    payload    = :class:`FileRecord` fields.

``chunks`` — one point per chunk of an indexed file.
    point id   = :func:`chunk_point_id` (uuid5 of file_id and chunk index), so re-indexing a
                 file overwrites its points in place and stale tail chunks are deleted by index.
    vectors    = ``dense`` (encoder, cosine) and ``bm25`` (Qdrant's BM25 sparse, IDF in the shard).
    payload    = ``CHUNK_KEYS`` plus the file's structured fields, copied onto every chunk so
                 each filter runs inside the vector search.

Strings in both payloads are the names as Python sees them (``os.fsdecode``: a name that is not
UTF-8 carries surrogate escapes); the store keeps them in a reversible UTF-8 form
(``memexfs.store.codec``) and gives them back unchanged, filters included.

Payload indexes: :data:`PAYLOAD_INDEXES` lists the indexed fields per collection (the filters'
and facets' fields, a few left out on purpose); the store's numbered migrations
(``memexfs.store.migrations``) create them. ``SCHEMA_VERSION`` is the number of those
migrations: a new index records it, an open reads it, runs the migrations it lacks, and refuses
an index newer than this code (``IndexTooNew``).

Invariants (checked by ``memexfs check``):
    * every chunk's ``file_id`` has a catalog point whose ``status`` is ``indexed``;
    * every chunk carries the catalog's ``content_hash`` and ``encoder`` of its file;
    * a catalog point's ``path`` exists in the vault as a regular file (after reconcile);
    * ``chunks`` in the catalog equals the number of chunk points of that file.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

SCHEMA_VERSION = 2  # == len(memexfs.store.migrations.MIGRATIONS)

# Index states of a catalog entry.
PENDING = "pending"  # changed since last indexed; the indexer will pick it up (durable queue)
INDEXED = "indexed"  # text extracted, chunks embedded and stored
METADATA_ONLY = "metadata-only"  # binary/unknown/empty: findable by name and type only
FAILED = "failed"  # extraction failed; ``error`` says why
STATES = (PENDING, INDEXED, METADATA_ONLY, FAILED)

_CHUNK_NAMESPACE = uuid.UUID("6f0c1c8e-58a4-4e53-9d0f-2d8f7d1b7a11")


def chunk_point_id(file_id: str, index: int) -> str:
    """Deterministic id, so a re-index overwrites instead of accumulating points."""
    return str(uuid.uuid5(_CHUNK_NAMESPACE, f"{file_id}:{index}"))


def ancestors(path: str) -> list[str]:
    """Folder prefixes of a vault-relative path, for ``in:`` filters: a/b/c.txt -> [a, a/b]."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def display(text: str) -> str:
    """A name as text for people and text models: bytes that are not UTF-8 (surrogate escapes
    from ``os.fsdecode``) become U+FFFD. Lossy: for headers, snippets and tokenizers, never for
    a path that must reopen the file."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass
class FileRecord:
    """One catalog entry. ``path`` is vault-relative with ``/`` separators, no leading slash."""

    file_id: str
    path: str
    size: int
    mtime_ns: int
    ino: int = 0
    content_hash: str = ""  # blake2b-256 hex of the bytes last indexed ("" until indexed)
    doc_type: str = ""
    status: str = PENDING
    error: str | None = None
    encoder: str = ""
    chunks: int = 0
    title: str = ""
    indexed_at: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)  # structured fields (see memexfs.fields)

    def to_payload(self) -> dict[str, Any]:
        payload = dataclasses.asdict(self)
        payload["name"] = self.path.rsplit("/", 1)[-1]
        payload["dirs"] = ancestors(self.path)
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> FileRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in names})


# Keys of a chunk payload. ``fields`` of the file are flattened into it (kind, doc_day, vendor,
# status, amount, currency, ...), so filters are plain field conditions.
CHUNK_KEYS = (
    "file_id",  # catalog point id
    "path",  # vault-relative path (moved by set_payload on rename; vectors untouched)
    "name",  # basename
    "dirs",  # ancestor folders, for in: filters
    "ext",  # lowercase extension without dot
    "doc_type",  # extractor's type: pdf, docx, email, text, ...
    "chunk_index",
    "title",
    "body",  # chunk body, for snippets
    "content_hash",  # of the whole file, as in the catalog
    "chunk_hash",  # of the embedded text: lets a re-index reuse unchanged chunks' vectors
    "encoder",  # encoder name that made the dense vector
    "doc_day",  # document date as days since 1970-01-01 (int), for range filters
)


def location_payload(path: str) -> dict[str, Any]:
    """The part of a chunk payload that a rename changes."""
    name = path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name.lstrip(".") else ""
    return {"path": path, "name": name, "dirs": ancestors(path), "ext": ext}


# Payload indexes per collection, created by the store's migrations (m001, m002). Qdrant filters
# an unindexed field by reading each candidate's payload, and Edge's facet needs a keyword index.
# Left unindexed on purpose: ``amount``, ``currency``, ``due_day`` (rare, in should-clauses with
# IsEmpty) and ``chunk_index`` (always with ``file_id``): each chunk-shard index adds to the HNSW
# build (20k chunks with those four too: 12.6-18.5 s against 10.6-12.4 s without, one thread,
# a loaded machine), so they wait for a measurement at scale (issue 13).
IndexKind = Literal["keyword", "integer", "float"]
PAYLOAD_INDEXES: dict[str, dict[str, IndexKind]] = {
    "catalog": {"path": "keyword", "status": "keyword", "dirs": "keyword", "encoder": "keyword"},
    "chunks": {
        "file_id": "keyword", "dirs": "keyword", "path": "keyword", "ext": "keyword",
        "doc_type": "keyword", "kind": "keyword", "vendor": "keyword", "status": "keyword",
        "doc_day": "integer",
    },
}
