"""One file through the index: extract -> chunk -> fields -> embed -> upsert.

Split in three steps so the indexer can embed the chunks of many files in one encoder call
(batching is where the encoder's throughput comes from):

``prepare``  (any thread)    open once (no symlink followed) + fstat + hash; skip unchanged
                             content; extract that descriptor in the sandboxed worker; chunk;
                             structured fields; reuse vectors of unchanged chunks.
``embed``    (encoder thread) encode every missing chunk text of a batch of prepared files at once.
``commit``   (store thread)   write chunk points and the catalog entry.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memexfs import schema
from memexfs.chunking import chunk_document
from memexfs.extract import SNIFF_BYTES, Extracted, Extractor, known_binary
from memexfs.fields import extract_fields
from memexfs.fields_memory import day_number
from memexfs.schema import FileRecord, display, location_payload
from memexfs.store import ChunkPoint, Store
from memexfs.vault import Vault, fd_hash, open_regular, sampled_hash

log = logging.getLogger(__name__)

MAX_CHUNKS = 128  # ~25k tokens of a file are embedded; the rest is still found by name/title
DAY_KEYS = {"doc_date": "doc_day", "issue_date": "issue_day", "due_date": "due_day",
            "sent_date": "sent_day", "period_start": "period_start_day",
            "period_end": "period_end_day"}


# Keys of a catalog entry's ``fields`` that say how they were found, not what the document says:
# kept in the catalog, never copied onto chunks.
NOT_FILTERED = ("field_sources", "warnings")


def flat_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Structured fields as chunk payload keys: dates also as day numbers (``doc_day``...)."""
    out = {k: v for k, v in fields.items() if k not in NOT_FILTERED}
    sources = fields.get("field_sources") or {}
    for key, day_key in DAY_KEYS.items():
        # A date guessed from mtime is shown, but date filters only see dates the text states.
        stated = not (isinstance(sources, dict) and sources.get(key) == "mtime")
        if key in fields and stated:
            out[day_key] = day_number(fields[key])
    return out


@dataclass
class Prepared:
    """A file ready to embed: its record, chunk texts, and vectors found for unchanged chunks."""

    rec: FileRecord
    texts: list[str] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    vectors: list[np.ndarray | None] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)
    skip: bool = False  # unchanged: catalog refreshed only
    gone: bool = False  # vanished before we got to it (or is no regular file, or a symlink)
    transient: bool = False  # extraction failed for a reason not the file's: retry it later

    @property
    def missing(self) -> list[int]:
        return [i for i, v in enumerate(self.vectors) if v is None]


class Pipeline:
    def __init__(self, vault: Vault, store: Store, encoder: Any, extractor: Extractor) -> None:
        self.vault = vault
        self.store = store
        self.encoder = encoder
        self.extractor = extractor

    # ---------------------------------------------------------------- prepare
    def prepare(self, path: str) -> Prepared:
        """Open the file once and work from that descriptor only: what is hashed, extracted and
        indexed is the inode found at ``path`` without following a symlink, even if the path is
        swapped for a link meanwhile."""
        rec = self.store.file_by_path(path)
        opened = open_regular(self.vault.root, path)
        if opened is None:
            return Prepared(rec or FileRecord("", path, 0, 0), gone=True)
        fd, st = opened
        try:
            return self._prepare_open(path, rec, fd, st)
        finally:
            os.close(fd)

    def _prepare_open(self, path: str, rec: FileRecord | None, fd: int,
                      st: os.stat_result) -> Prepared:
        if rec is None:
            rec = FileRecord(str(uuid.uuid4()), path, st.st_size, st.st_mtime_ns, st.st_ino)
        elif (rec.status != schema.PENDING and rec.size == st.st_size
              and rec.mtime_ns == st.st_mtime_ns and rec.encoder == self.encoder.name):
            return Prepared(rec, skip=True)  # stat unchanged: nothing to read
        digest = self._identity(fd, st)
        unchanged = (rec.content_hash == digest and rec.encoder == self.encoder.name
                     and rec.status in (schema.INDEXED, schema.METADATA_ONLY, schema.FAILED))
        rec.size, rec.mtime_ns, rec.ino = st.st_size, st.st_mtime_ns, st.st_ino
        if unchanged:
            return Prepared(rec, skip=True)
        ext = self.extractor.extract(self.vault.abspath(path), fd=fd)
        return self._chunks(rec, ext, digest, st.st_mtime)

    def _identity(self, fd: int, st: os.stat_result) -> str:
        """The content key. Files the worker will not extract (over the size limit, or binary by
        their magic) get a sampled identity: hashing 30 GB to learn that would stall indexing."""
        limit = self.extractor.limits.max_input_bytes
        if st.st_size > limit or known_binary(os.pread(fd, SNIFF_BYTES, 0)):
            return sampled_hash(fd, st)
        return fd_hash(fd, limit + 1)  # a file growing meanwhile is not read without end

    def _chunks(self, rec: FileRecord, ext: Extracted, digest: str, mtime: float) -> Prepared:
        if ext.transient:
            # A timeout on a busy machine or a dead worker says nothing about the file: keep no
            # hash, so the next change retries it, and a size that never matches, so the next
            # mount (reconcile) does.
            digest, rec.size = "", -1
        rec.content_hash = digest
        rec.doc_type = ext.doc_type
        rec.title = ext.title
        rec.error = ext.error
        rec.status = {"ok": schema.INDEXED, "failed": schema.FAILED}.get(
            ext.status, schema.METADATA_ONLY)
        if rec.status == schema.INDEXED and not ext.text.strip():
            # Read, but no text in it (a scanned PDF): only its name can be found, and the
            # file says why rather than claiming to be indexed.
            rec.status = schema.METADATA_ONLY
            rec.error = ext.warnings[0] if ext.warnings else "no text in the file"
        try:
            fields = extract_fields(ext.text, path=rec.path, title=ext.title,
                                    doc_type=ext.doc_type, meta=dict(ext.meta), mtime=mtime)
        except Exception as exc:  # a rule bug must not lose the file's text
            log.exception("field extraction failed for %s", rec.path)
            fields = {"field_sources": {"error": str(exc)}}
        if ext.warnings:  # kept in the catalog: an unchanged file is not extracted again
            fields["warnings"] = list(ext.warnings)
        rec.fields = fields
        counter = getattr(self.encoder, "count_tokens", None)
        max_tokens = min(200, int(getattr(self.encoder, "max_tokens", 256)) - 16)
        chunks = chunk_document(ext.text if ext.status == "ok" else "",
                                title=display(ext.title), path=display(rec.path),
                                count_tokens=counter, max_tokens=max_tokens,
                                max_chunks=MAX_CHUNKS)
        prep = Prepared(rec, transient=ext.transient)
        prep.texts = [c.text for c in chunks]
        prep.bodies = [c.body for c in chunks]
        prep.hashes = [hashlib.blake2b(t.encode(), digest_size=16).hexdigest()
                       for t in prep.texts]
        # Vectors are reusable only if the same encoder made them (an encoder change re-embeds).
        same = rec.encoder == self.encoder.name
        known = self.store.chunk_vectors(rec.file_id) if rec.chunks and same else {}
        prep.vectors = [np.asarray(known[h], dtype=np.float32) if h in known else None
                        for h in prep.hashes]
        prep.payload = {
            **location_payload(rec.path),
            "doc_type": ext.doc_type,
            "title": ext.title,
            "content_hash": digest,
            "encoder": self.encoder.name,
            **flat_fields(fields),
        }
        return prep

    # ---------------------------------------------------------------- embed
    def embed(self, batch: Sequence[Prepared]) -> int:
        """Fill in every missing vector of the batch with one encoder call; returns the count."""
        todo = [(p, i) for p in batch if not (p.skip or p.gone) for i in p.missing]
        if not todo:
            return 0
        # Similar lengths together keep padding (wasted work) small.
        order = sorted(range(len(todo)), key=lambda j: len(todo[j][0].texts[todo[j][1]]))
        vecs = self.encoder.encode([todo[j][0].texts[todo[j][1]] for j in order])
        for row, j in enumerate(order):
            p, i = todo[j]
            p.vectors[i] = vecs[row]
        return len(todo)

    # ---------------------------------------------------------------- commit
    def commit(self, prep: Prepared) -> str:
        """Write a prepared file; returns what happened: indexed/skipped/removed."""
        rec = prep.rec
        if prep.gone:
            if rec.file_id:
                self.store.delete_file(rec.file_id)
                return "removed"
            return "skipped"
        if prep.skip:
            self.store.put_file(rec)
            return "skipped"
        points = []
        for i, (vec, body) in enumerate(zip(prep.vectors, prep.bodies, strict=True)):
            assert vec is not None
            payload = {**prep.payload, "body": body, "chunk_hash": prep.hashes[i]}
            points.append(ChunkPoint(rec.file_id, i, vec.tolist(), prep.texts[i], payload))
        self.store.put_chunks(rec.file_id, points)
        rec.chunks = len(points)
        rec.encoder = self.encoder.name
        rec.indexed_at = time.time()
        self.store.put_file(rec)
        return rec.status

    def index_paths(self, paths: Sequence[str]) -> dict[str, str]:
        """Synchronous bulk path (CLI ``index``, benchmarks): prepare all, embed once, commit."""
        preps = [self.prepare(p) for p in paths]
        self.embed(preps)
        return {p.rec.path: self.commit(p) for p in preps}
