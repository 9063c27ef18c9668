"""Test doubles shared by the layers: deterministic encoders, a store filler, a recording index
sink and a FUSE request context. Fakes stand in only for what a test is *not* about; the layers
they replace have their own tests with the real thing (the real encoder in tests/embed and
tests/e2e, real mounts in tests/mount).

The hashing encoders make "same words, close vectors": enough to test the plumbing of topics,
bridges, summaries and the pipeline (determinism, exclusions, citations, which texts get
embedded). Quality is measured with the real encoder (bench/graph_eval.py, the Cortex test).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from pyfuse3 import RequestContext

from memexfs.schema import FileRecord, location_payload
from memexfs.store import ChunkPoint, Store
from mount.ops import NullSink

HASH_DIM = 256
COUNT_DIM = 64


def _word_bucket(word: str, dim: int) -> tuple[int, float]:
    h = hashlib.blake2b(word.encode(), digest_size=4).digest()
    return int.from_bytes(h[:2], "big") % dim, 1.0 if h[2] & 1 else -1.0


class HashEncoder:
    """Bag of words hashed into HASH_DIM signed buckets, L2-normalised."""

    name = "hash-graph-1"
    dim = HASH_DIM
    max_tokens = 256

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), HASH_DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for w in re.findall(r"\w+", text.lower()):
                col, sign = _word_bucket(w, HASH_DIM)
                out[row, col] += sign
            norm = float(np.linalg.norm(out[row]))
            if norm:
                out[row] /= norm
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2


class CountingEncoder:
    """Bag of hashed words in COUNT_DIM buckets, L2-normalised (never the zero vector);
    remembers every text it was asked to encode."""

    name = "count-test-1"
    dim = COUNT_DIM
    max_tokens = 256

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        out = np.zeros((len(texts), COUNT_DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for w in re.findall(r"\w+", text.lower()):
                col, sign = _word_bucket(w, COUNT_DIM)
                out[row, col] += sign
            out[row, 0] += 1e-3
            out[row] /= float(np.linalg.norm(out[row]))
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2


def long_note(topic: str, paragraphs: int = 6) -> str:
    """Paragraphs long enough that the chunker makes several chunks."""
    return "\n\n".join(
        f"Paragraph {i} about {topic}. " + " ".join(f"{topic}{i}word{j}" for j in range(120))
        for i in range(paragraphs))


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


class RecordingSink(NullSink):
    """An ``IndexSink`` (mount.ops) that records what the mount told the index, in order.

    ``calls`` holds ``(method, *paths)``; ``status``/``errors`` answer the index xattrs (the
    other questions get ``NullSink``'s "nothing known").
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, ...]] = []
        self.status: dict[str, str] = {}
        self.errors: dict[str, str] = {}

    def changed(self, path: str) -> None:
        self.calls.append(("changed", path))

    def removed(self, path: str) -> None:
        self.calls.append(("removed", path))

    def moved(self, old: str, new: str) -> None:
        self.calls.append(("moved", old, new))

    def exchanged(self, a: str, b: str) -> None:
        self.calls.append(("exchanged", a, b))

    def status_of(self, path: str) -> str | None:
        return self.status.get(path)

    def error_of(self, path: str) -> str | None:
        return self.errors.get(path)

    def replay(self, paths: dict[str, object]) -> dict[str, object]:
        """What an index holding ``paths`` (path -> identity) holds after the recorded calls:
        the net effect of the moves, whatever intermediate names they went through."""
        out = dict(paths)

        def under(top: str) -> list[str]:
            return [p for p in out if p == top or p.startswith(top + "/")]

        for call in self.calls:
            if call[0] == "removed":
                out.pop(call[1], None)
            elif call[0] == "moved":
                old, new = call[1], call[2]
                for p in under(old):
                    out[new + p[len(old):]] = out.pop(p)
            elif call[0] == "exchanged":
                a, b = call[1], call[2]
                swap = {b + p[len(a):]: out.pop(p) for p in under(a)}
                swap.update({a + p[len(b):]: out.pop(p) for p in under(b)})
                out.update(swap)
        return out


@dataclass(frozen=True)
class FakeContext:
    """pyfuse3's ``RequestContext`` is read-only and only made by pyfuse3 itself; the
    operations read just these four fields (``pid`` for supplementary groups)."""

    uid: int = 0
    gid: int = 0
    pid: int = os.getpid()
    umask: int = 0o022


def request_context(uid: int = 0, gid: int = 0, pid: int | None = None,
                    umask: int = 0o022) -> RequestContext:
    return cast(RequestContext, FakeContext(uid, gid, os.getpid() if pid is None else pid, umask))
