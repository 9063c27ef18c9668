"""EdgeStore against a real Qdrant Edge shard in a temp dir: the catalog and chunk operations the
indexer relies on (replace a file's chunks, move payload without vectors, delete, survive reopen),
the same contract through a store process (ProcessStore) and on qdrant-client, and names that are
not UTF-8.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from memexfs.schema import FileRecord, location_payload
from memexfs.store import (
    ChunkPoint,
    ChunkQuery,
    EdgeStore,
    Filter,
    Match,
    MatchAny,
    Store,
    escape_str,
    unescape_str,
)
from memexfs.store.process import ProcessStore
from memexfs.store.server import ServerStore

pytestmark = pytest.mark.timeout(60)

DIM = 8


def _vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return (v / np.linalg.norm(v)).tolist()


def _points(fid: str, path: str, texts: list[str], seed: int = 0) -> list[ChunkPoint]:
    return [ChunkPoint(fid, i, _vec(seed + i), t,
                       {**location_payload(path), "body": t, "chunk_hash": f"h{seed + i}",
                        "content_hash": "c", "encoder": "test"})
            for i, t in enumerate(texts)]


@pytest.fixture(params=["edge", "process", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every backend must keep the same contract; the server one runs on qdrant-client's local
    mode (the same API a Qdrant server answers)."""
    s: Store
    if request.param == "edge":
        s = EdgeStore(tmp_path / "index", DIM)
    elif request.param == "process":
        s = ProcessStore(tmp_path / "index", DIM, timeout=20)
    else:
        from qdrant_client import QdrantClient

        s = ServerStore(DIM, client=QdrantClient(location=":memory:"), prefix="t")
    yield s
    s.close()


def _fid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def test_catalog_round_trip_and_lookup_by_path(store: Store) -> None:
    rec = FileRecord(_fid(1), "a/b/c.txt", 10, 5, ino=7, fields={"kind": "note"})
    store.put_file(rec)
    assert store.get_file(rec.file_id) == rec
    assert store.file_by_path("a/b/c.txt") == rec
    assert store.file_by_path("a/b/other.txt") is None
    store.update_file(rec.file_id, path="x/c.txt", status="indexed")
    got = store.file_by_path("x/c.txt")
    assert got is not None
    assert got.status == "indexed"
    assert got.fields == {"kind": "note"}
    assert store.file_by_path("a/b/c.txt") is None
    # the folder index follows the rename
    assert [r.path for r in store.iter_files(Filter(must=(Match("dirs", "x"),)))] == ["x/c.txt"]
    assert store.count_files(Filter(must=(Match("dirs", "a"),))) == 0


def test_put_chunks_replaces_and_trims_the_tail(store: Store) -> None:
    fid = _fid(2)
    store.put_chunks(fid, _points(fid, "n.md", ["one", "two", "three"]))
    assert store.count_chunks(Filter(must=(Match("file_id", fid),))) == 3
    store.put_chunks(fid, _points(fid, "n.md", ["uno"], seed=10))
    hits = list(store.iter_chunks(Filter(must=(Match("file_id", fid),))))
    assert [h.payload["body"] for h in hits] == ["uno"]
    assert set(store.chunk_vectors(fid)) == {"h10"}
    assert np.allclose(store.chunk_vectors(fid)["h10"], _vec(10), atol=1e-6)


def test_every_chunk_has_dense_and_sparse_vectors(store: Store) -> None:
    fid = _fid(3)
    store.put_chunks(fid, _points(fid, "r.txt", ["zebra crossing", "kettle boil"], seed=20))
    sparse = store.search(ChunkQuery(limit=5, text="zebra", mode="sparse"))
    assert [h.payload["body"] for h in sparse] == ["zebra crossing"]
    dense = store.search(ChunkQuery(limit=1, dense=_vec(21), mode="dense"))
    assert dense[0].payload["body"] == "kettle boil"
    assert dense[0].score == pytest.approx(1.0, abs=1e-5)


def test_move_changes_payload_only(store: Store) -> None:
    fid = _fid(4)
    store.put_chunks(fid, _points(fid, "old/n.md", ["alpha", "beta"], seed=30))
    before = store.chunk_vectors(fid)
    store.move_chunks(fid, location_payload("new/deeper/n2.md"))
    hits = list(store.iter_chunks(Filter(must=(Match("file_id", fid),))))
    assert {h.payload["path"] for h in hits} == {"new/deeper/n2.md"}
    assert {tuple(h.payload["dirs"]) for h in hits} == {("new", "new/deeper")}
    assert store.chunk_vectors(fid) == before
    assert store.count_chunks(Filter(must=(Match("dirs", "old"),))) == 0


def test_delete_file_removes_catalog_and_points_only_of_that_file(store: Store) -> None:
    a, b = _fid(5), _fid(6)
    for fid, path in ((a, "a.txt"), (b, "b.txt")):
        store.put_file(FileRecord(fid, path, 1, 1, status="indexed", chunks=2))
        store.put_chunks(fid, _points(fid, path, ["x", "y"]))
    store.delete_file(a)
    assert store.get_file(a) is None
    assert store.count_chunks(Filter(must=(Match("file_id", a),))) == 0
    assert store.count_chunks(Filter(must=(Match("file_id", b),))) == 2
    assert store.count_files() == 1


def test_data_survives_reopen(tmp_path: Path) -> None:
    s = EdgeStore(tmp_path / "ix", DIM)
    fid = _fid(7)
    s.put_file(FileRecord(fid, "keep.txt", 3, 3, status="indexed", chunks=1))
    s.put_chunks(fid, _points(fid, "keep.txt", ["persist me"]))
    s.close()
    s2 = EdgeStore(tmp_path / "ix", DIM)
    try:
        assert s2.file_by_path("keep.txt") is not None
        assert s2.count_chunks() == 1
    finally:
        s2.close()


def test_unreachable_server_is_one_clear_error_and_not_remembered(tmp_path: Path) -> None:
    from memexfs.errors import IndexUnavailable
    from memexfs.store import open_store
    from memexfs.vault import Vault

    vault = Vault.open(tmp_path)
    with pytest.raises(IndexUnavailable, match="unavailable"):
        open_store(vault, "http://127.0.0.1:9")  # the discard port: nothing listens
    assert "qdrant_url" not in vault.read_json("config.json")
    open_store(vault).close()  # still the local Edge store


NAME = os.fsdecode(b"caf\xe9.txt")  # a Latin-1 name on a UTF-8 system: 'caf\udce9.txt'
FOLDER = os.fsdecode(b"d\xfcr")


def test_escape_round_trips_and_leaves_ordinary_strings_alone() -> None:
    for s in (NAME, f"{FOLDER}/{NAME}", "caf\u00e9.txt", "plain", "\U0010ffff", "\U0010ffffe9"):
        stored = escape_str(s)
        stored.encode()  # valid UTF-8: what Qdrant requires
        assert unescape_str(stored) == s
    assert escape_str("caf\u00e9/n.txt") == "caf\u00e9/n.txt"


def test_non_utf8_names_round_trip(store: Store) -> None:
    path = f"{FOLDER}/{NAME}"
    rec = FileRecord(_fid(8), path, 4, 4, error=f"cannot read {path}")
    store.put_file(rec)
    assert store.get_file(rec.file_id) == rec
    assert store.file_by_path(path) == rec
    assert [r.path for r in store.iter_files()] == [path]
    assert [r.path for r in store.iter_files(Filter(must=(Match("dirs", FOLDER),)))] == [path]
    assert store.count_files(Filter(must=(MatchAny("path", (path, "x")),))) == 1
    assert store.file_by_path(f"{FOLDER}/cafe.txt") is None
    store.put_chunks(rec.file_id, _points(rec.file_id, path, [f"text about {NAME}"]))
    hits = list(store.iter_chunks(Filter(must=(Match("path", path),))))
    assert [(h.payload["path"], h.payload["name"], h.payload["dirs"]) for h in hits] == [
        (path, NAME, [FOLDER])]
    assert store.distinct("dirs") == [FOLDER]
    found = store.search(ChunkQuery(limit=3, dense=_vec(0), text=NAME,
                                    filter=Filter(must=(Match("dirs", FOLDER),))))
    assert [h.payload["path"] for h in found] == [path]
    # a rename moves the escaped payload along, catalog and chunks
    moved = os.fsdecode(b"new/\xe9t\xe9.txt")
    store.update_file(rec.file_id, path=moved)
    store.move_chunks(rec.file_id, location_payload(moved))
    assert store.file_by_path(moved) is not None
    assert [h.payload["path"] for h in store.iter_chunks()] == [moved]
