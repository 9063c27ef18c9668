"""Test doubles for the graph engine: a deterministic bag-of-words encoder and a store filler.

The hashing encoder makes "same words, close vectors": enough to test the plumbing of topics,
bridges and summaries (determinism, exclusions, citations). Quality is measured with the real
encoder (tests/component/test_topics.py's Cortex test, bench/graph_eval.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from memexfs.schema import FileRecord, location_payload
from memexfs.store import ChunkPoint, Store

DIM = 256


class HashEncoder:
    """Bag of words hashed into DIM signed buckets, L2-normalised."""

    name = "hash-graph-1"
    dim = DIM
    max_tokens = 256

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for w in re.findall(r"\w+", text.lower()):
                h = hashlib.blake2b(w.encode(), digest_size=4).digest()
                out[row, int.from_bytes(h[:2], "big") % DIM] += 1.0 if h[2] & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm:
                out[row] /= norm
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2


def file_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def fill(store: Store, docs: Sequence[tuple[str, Sequence[str]]], enc: HashEncoder,
         start: int = 0) -> dict[str, str]:
    """Index ``docs`` ((path, chunk texts)) as files; returns path -> file_id."""
    ids = {}
    for n, (path, chunks) in enumerate(docs, start):
        fid = file_id(n)
        ids[path] = fid
        vecs = enc.encode(list(chunks))
        hashes = [hashlib.blake2b(c.encode(), digest_size=16).hexdigest() for c in chunks]
        store.put_chunks(fid, [
            ChunkPoint(fid, i, vecs[i].tolist(), text,
                       {**location_payload(path), "doc_type": "text", "title": path,
                        "body": text, "chunk_index": i, "chunk_hash": hashes[i],
                        "content_hash": f"h{n}", "encoder": enc.name})
            for i, text in enumerate(chunks)])
        store.put_file(FileRecord(file_id=fid, path=path, size=1, mtime_ns=1, status="indexed",
                                  chunks=len(chunks), content_hash=f"h{n}", encoder=enc.name))
    return ids
