"""The server backend on a cluster (``docs/scale.md``): a vault as a shard key of its own in a
collection pair shared by many vaults, and a node loss as ``IndexUnavailable``.

qdrant-client's local mode cannot shard: ``create_shard_key`` raises NotImplementedError, and it
accepts ``sharding_method`` and ``shard_key_selector`` but ignores them (checked below). So these
tests run the store on local mode through a recording client: the store really works (its
answers are checked), and each request is checked for what a cluster needs — the shard key on
every catalog and chunk call, the sharding and replication settings on create, none on the
schema-version collection. Where a server would answer differently (a shard key that exists, a
write short of its replicas) the recorder answers as Qdrant does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from memexfs.errors import IndexUnavailable
from memexfs.schema import FileRecord, location_payload
from memexfs.store import ChunkPoint, ChunkQuery, Filter, Match, open_store
from memexfs.store.server import ServerStore, Sharding
from memexfs.vault import Vault

pytestmark = pytest.mark.timeout(60)

DIM = 8
KEY = "vault-7f3a"
# the store's calls on the shared catalog and chunk collections: each must carry the shard key
DATA_CALLS = {"upsert", "retrieve", "scroll", "set_payload", "delete", "count", "facet",
              "query_points", "query_batch_points"}


def _error(status: int, message: str) -> UnexpectedResponse:
    body = json.dumps({"status": {"error": message}, "time": 0.0}).encode()
    return UnexpectedResponse(status, "", body, httpx.Headers())


class Recorder:
    """qdrant-client local mode, recording every call (its keywords, and ``args`` after the
    collection); shard keys kept as a server does
    (a second ``create_shard_key`` of one key is a 400); ``fail[name]`` raises on that call."""

    def __init__(self) -> None:
        self.client = QdrantClient(location=":memory:")
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.shard_keys: set[tuple[str, str]] = set()
        self.fail: dict[str, Exception] = {}

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            coll = args[0] if args else kwargs.get("collection_name", "")
            self.calls.append((name, coll, {**kwargs, "args": args[1:]}))
            if name in self.fail:
                raise self.fail[name]
            if name == "create_shard_key":
                if (coll, args[1]) in self.shard_keys:
                    raise _error(400, f"Wrong input: Shard key {args[1]} already exists")
                self.shard_keys.add((coll, args[1]))
                return True
            return real(*args, **kwargs)
        return call

    def close(self) -> None:
        """A store's close ends its connection, not the server: the next store finds the data."""

    def of(self, *names: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [c for c in self.calls if c[0] in names]


def _vec(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM)
    return (v / np.linalg.norm(v)).tolist()


def _fid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _points(fid: str, path: str, texts: list[str]) -> list[ChunkPoint]:
    return [ChunkPoint(fid, i, _vec(i), t, {**location_payload(path), "body": t,
                                            "chunk_hash": f"h{i}", "encoder": "test"})
            for i, t in enumerate(texts)]


def _use_every_call(s: ServerStore) -> None:
    """Every Store method that reaches the catalog or the chunks, with its answers checked."""
    fid = _fid(1)
    s.put_file(FileRecord(fid, "inbox/acme.txt", 10, 5))
    s.put_chunks(fid, _points(fid, "inbox/acme.txt", ["acme invoice paid", "rent lease"]))
    assert s.get_file(fid) is not None
    assert s.file_by_path("inbox/acme.txt") is not None
    s.update_file(fid, status="indexed")
    assert [r.status for r in s.iter_files()] == ["indexed"]
    assert (s.count_files(), s.count_chunks()) == (1, 2)
    hits = s.search(ChunkQuery(limit=5, dense=_vec(0), text="acme invoice"))
    assert hits[0].payload["chunk_index"] == 0
    (batch,) = s.search_batch([ChunkQuery(limit=5, dense=_vec(1), mode="dense")])
    assert batch[0].payload["chunk_index"] == 1
    assert s.distinct("ext") == ["txt"]
    s.move_chunks(fid, location_payload("done/acme.txt"))
    assert {h.payload["path"] for h in s.iter_chunks(Filter(must=(Match("file_id", fid),)))} == \
        {"done/acme.txt"}
    assert set(s.chunk_vectors(fid)) == {"h0", "h1"}
    s.delete_chunks(fid)
    s.delete_file(fid)
    assert (s.count_files(), s.count_chunks()) == (0, 0)


@pytest.fixture
def rec() -> Iterator[Recorder]:
    r = Recorder()
    yield r
    r.client.close()


def test_local_mode_cannot_shard_so_requests_are_checked_instead() -> None:
    """Why the recorder: if local mode learns custom sharding, test against it instead."""
    c = QdrantClient(location=":memory:")
    c.create_collection("x", vectors_config={}, sharding_method=models.ShardingMethod.CUSTOM)
    with pytest.raises(NotImplementedError):
        c.create_shard_key("x", KEY)
    c.upsert("x", [models.PointStruct(id=1, vector={})], shard_key_selector="a")
    assert c.count("x", shard_key_selector="b").count == 1  # the key is ignored
    c.close()


def test_every_catalog_and_chunk_call_carries_the_vaults_shard_key(rec: Recorder) -> None:
    s = ServerStore(DIM, client=rec, prefix="shared",
                    sharding=Sharding(KEY, shards=3, replication_factor=2,
                                      write_consistency_factor=2))
    _use_every_call(s)
    s.close()

    created = {coll: kw for _, coll, kw in rec.of("create_collection")}
    for coll in ("shared_catalog", "shared_chunks"):
        assert created[coll]["sharding_method"] == models.ShardingMethod.CUSTOM
        assert (created[coll]["shard_number"], created[coll]["replication_factor"],
                created[coll]["write_consistency_factor"]) == (3, 2, 2)
    # the schema version belongs to the pair, not to a vault: replicated, not sharded
    assert "sharding_method" not in created["shared_meta"]
    assert created["shared_meta"]["replication_factor"] == 2
    assert rec.shard_keys == {("shared_catalog", KEY), ("shared_chunks", KEY)}
    assert {(kw["shards_number"], kw["replication_factor"])
            for *_, kw in rec.of("create_shard_key")} == {(3, 2)}

    data = [(n, coll, kw) for n, coll, kw in rec.of(*DATA_CALLS) if coll != "shared_meta"]
    assert {n for n, *_ in data} == DATA_CALLS  # every kind of call was made, so checked
    for name, coll, kw in data:
        if name == "query_batch_points":
            assert [r.shard_key for r in kw["args"][0]] == [KEY], (name, coll)
        else:
            assert kw.get("shard_key_selector") == KEY, (name, coll)
    assert all("shard_key_selector" not in kw
               for _, coll, kw in rec.calls if coll == "shared_meta")


def test_without_sharding_requests_are_as_before(rec: Recorder) -> None:
    s = ServerStore(DIM, client=rec, prefix="solo")
    _use_every_call(s)
    s.close()
    assert not rec.of("create_shard_key")
    for name, _, kw in rec.calls:
        assert not {"shard_key_selector", "sharding_method", "replication_factor",
                    "write_consistency_factor", "shard_number"} & set(kw), name
    for *_, kw in rec.of("query_batch_points"):
        assert all(r.shard_key is None for r in kw["args"][0])


def test_a_second_vault_adds_its_key_and_a_reopen_finds_its_own(rec: Recorder) -> None:
    ServerStore(DIM, client=rec, prefix="shared", sharding=Sharding("a")).close()
    ServerStore(DIM, client=rec, prefix="shared", sharding=Sharding("b")).close()
    s = ServerStore(DIM, client=rec, prefix="shared", sharding=Sharding("a"))  # key exists: 400
    s.put_file(FileRecord(_fid(2), "x.txt", 1, 1))
    assert s.count_files() == 1
    s.close()
    assert rec.shard_keys == {(c, k) for c in ("shared_catalog", "shared_chunks")
                              for k in ("a", "b")}
    assert len(rec.of("create_collection")) == 3  # the pair and its meta, made once


def test_a_failing_shard_key_request_is_not_taken_for_an_existing_key(rec: Recorder) -> None:
    rec.fail["create_shard_key"] = _error(400, "Wrong input: Shard key cannot be created with "
                                               "Auto sharding method")
    with pytest.raises(IndexUnavailable, match="Auto sharding method"):
        ServerStore(DIM, client=rec, prefix="shared", sharding=Sharding(KEY))


NODE_LOST = "Service internal error: The replica set for shard 3 on peer 635 does not have " \
            "enough active replicas"


@pytest.mark.parametrize("failure", [
    _error(500, NODE_LOST),
    _error(503, "Service unavailable"),
    ResponseHandlingException(httpx.ConnectError("Connection refused")),
    ResponseHandlingException(httpx.ReadTimeout("timed out")),
], ids=["replicas-short", "503", "refused", "timeout"])
def test_a_node_loss_is_index_unavailable_and_reads_go_on(rec: Recorder,
                                                          failure: Exception) -> None:
    """Writes short of their write_consistency_factor (or no answer at all) are the daemon's
    "index unavailable": it serves plain files and retries the queued files with backoff. The
    reads that the replica still answers keep working."""
    s = ServerStore(DIM, client=rec, prefix="shared", sharding=Sharding(KEY))
    fid = _fid(3)
    s.put_chunks(fid, _points(fid, "a.txt", ["kept before the loss"]))
    rec.fail["upsert"] = failure
    with pytest.raises(IndexUnavailable, match="unavailable") as err:
        s.put_chunks(fid, _points(fid, "a.txt", ["written during the loss"]))
    assert err.value.__cause__ is failure
    if "replica set" in str(failure):
        assert "does not have enough active replicas" in str(err.value)
    hits = s.search(ChunkQuery(limit=3, dense=_vec(0), mode="dense"))
    assert [h.payload["body"] for h in hits] == ["kept before the loss"]
    del rec.fail["upsert"]
    s.put_chunks(fid, _points(fid, "a.txt", ["written on retry"]))  # idempotent: same ids
    assert [h.payload["body"] for h in s.iter_chunks()] == ["written on retry"]
    s.close()


def test_a_bad_request_keeps_its_type(rec: Recorder) -> None:
    """A 4xx is a bug or a bad filter, not an outage: retrying would not cure it."""
    s = ServerStore(DIM, client=rec, prefix="shared", sharding=Sharding(KEY))
    rec.fail["query_points"] = _error(400, "Wrong input: Vector dimension error")
    with pytest.raises(UnexpectedResponse):
        s.search(ChunkQuery(limit=3, dense=_vec(0), mode="dense"))
    s.close()


def test_open_store_puts_a_cluster_vault_under_one_remembered_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``qdrant_cluster`` in the vault's config: the shared pair, and a ``vault_id`` made once
    (a moved vault keeps its key); without it, collections named after the vault as before."""
    opened: list[dict[str, Any]] = []

    class Opened:
        def __init__(self, dim: int, **kwargs: Any) -> None:
            opened.append(kwargs)

    monkeypatch.setattr("memexfs.store.open.ServerStore", Opened)
    vault = Vault.open(tmp_path)
    open_store(vault, "http://q:6333")
    vault.write_json("config.json", {**vault.read_json("config.json"), "qdrant_cluster": {
        "collections": "team", "shards": 4, "write_consistency_factor": 1}})
    open_store(vault)
    open_store(vault)
    solo, first, again = opened
    assert solo["sharding"] is None
    assert solo["prefix"].startswith("memexfs_")
    vault_id = vault.read_json("config.json")["vault_id"]
    assert first["prefix"] == again["prefix"] == "team"
    assert first["sharding"] == again["sharding"] == Sharding(
        vault_id, shards=4, replication_factor=2, write_consistency_factor=1)
    assert vault.read_json("config.json")["qdrant_url"] == "http://q:6333"
