"""The schema version on a real Edge index and on qdrant-client's local mode: recorded at
creation, read at open, old indexes migrated (their missing payload indexes created), newer ones
refused and left as they are, even by a repair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import qdrant_edge as qe

from memexfs.schema import PAYLOAD_INDEXES, SCHEMA_VERSION
from memexfs.store import EdgeStore, IndexTooNew, ServerStore
from memexfs.store.process import ProcessStore

pytestmark = pytest.mark.timeout(60)

DIM = 8
M002_CHUNK_KEYS = ("path",)


def _version(index: Path) -> int:
    return int(json.loads((index / "schema.json").read_text())["version"])


def _payload_schema(index: Path, shard: str) -> set[str]:
    s = qe.EdgeShard.load(str(index / shard))
    try:
        return set(s.info().payload_schema)
    finally:
        s.close()


def test_a_new_edge_index_records_the_current_version_and_every_index(tmp_path: Path) -> None:
    EdgeStore(tmp_path / "index", DIM).close()
    assert _version(tmp_path / "index") == SCHEMA_VERSION
    for shard in ("catalog", "chunks"):
        assert _payload_schema(tmp_path / "index", shard) == set(PAYLOAD_INDEXES[shard])


def test_an_edge_index_from_before_versions_is_migrated(tmp_path: Path) -> None:
    index = tmp_path / "index"
    EdgeStore(index, DIM).close()
    # what the first release left: the m001 indexes and no version file
    s = qe.EdgeShard.load(str(index / "chunks"))
    for key in M002_CHUNK_KEYS:
        s.update(qe.UpdateOperation.delete_field_index(key))
    s.flush()
    s.close()
    c = qe.EdgeShard.load(str(index / "catalog"))
    c.update(qe.UpdateOperation.delete_field_index("encoder"))
    c.flush()
    c.close()
    (index / "schema.json").unlink()
    assert not set(M002_CHUNK_KEYS) & _payload_schema(index, "chunks")
    assert "encoder" not in _payload_schema(index, "catalog")
    EdgeStore(index, DIM).close()
    assert _version(index) == SCHEMA_VERSION
    assert set(M002_CHUNK_KEYS) <= _payload_schema(index, "chunks")
    assert "encoder" in _payload_schema(index, "catalog")


def test_a_newer_edge_index_is_refused_and_not_repaired_away(tmp_path: Path) -> None:
    index = tmp_path / "index"
    EdgeStore(index, DIM).close()
    (index / "schema.json").write_text(json.dumps({"version": SCHEMA_VERSION + 1}))
    for repair in (False, True):
        with pytest.raises(IndexTooNew, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
            EdgeStore(index, DIM, repair=repair)
    assert _version(index) == SCHEMA_VERSION + 1
    assert not list(tmp_path.glob("index.corrupt-*"))


@pytest.mark.expected_log("newer than this MemexFS")
def test_a_store_process_says_why_a_newer_index_is_unavailable(tmp_path: Path) -> None:
    index = tmp_path / "index"
    EdgeStore(index, DIM).close()
    (index / "schema.json").write_text(json.dumps({"version": SCHEMA_VERSION + 1}))
    ps = ProcessStore(index, DIM, timeout=20)
    try:
        with pytest.raises(IndexTooNew, match="newer than this MemexFS"):
            ps.ping()
    finally:
        ps.close()


def test_the_server_backend_keeps_the_same_version(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient

    path = str(tmp_path / "qdrant")
    ServerStore(DIM, client=QdrantClient(path=path), prefix="v").close()
    client = QdrantClient(path=path)
    (rec,) = client.scroll("v_meta", with_payload=True)[0]
    assert rec.payload == {"version": SCHEMA_VERSION}
    client.set_payload("v_meta", {"version": SCHEMA_VERSION + 1}, points=[rec.id])
    with pytest.raises(IndexTooNew, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        ServerStore(DIM, client=client, prefix="v")
