"""HNSW built beside the live chunk shard and swapped in (memexfs.store.optimize): the same
answers before and after, writes made during the build kept, a swap cut short by a crash
completed or rolled back at open, and searches answering while the builder runs.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from memexfs.schema import FileRecord, location_payload
from memexfs.store import ChunkPoint, ChunkQuery, EdgeStore, Filter, Match
from memexfs.store.optimize import (
    IndexPolicy,
    build_dir,
    journal_path,
    old_dir,
    write_journal,
)
from memexfs.store.process import ProcessStore

pytestmark = pytest.mark.timeout(180)

DIM = 16
HNSW = IndexPolicy(indexing_threshold_kb=1, nice=0)  # small test shards get HNSW too
WORDS = ["invoice", "garden", "tax", "piano", "server", "budget", "hotel", "essay"]


def _fid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _vecs(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _put(store: EdgeStore | ProcessStore, n: int, chunks: int = 3, seed: int = 0) -> None:
    path = f"docs/f{n}.txt"
    vecs = _vecs(chunks, seed + n)
    base = {**location_payload(path), "content_hash": "c", "encoder": "test",
            "kind": WORDS[n % len(WORDS)]}
    store.put_file(FileRecord(file_id=_fid(n), path=path, size=1, mtime_ns=1, ino=n,
                              content_hash="c", doc_type="text", status="indexed",
                              encoder="test", chunks=chunks, title=path, indexed_at=1.0))
    rng = np.random.default_rng(seed + n)
    texts = [" ".join([WORDS[(n + i) % len(WORDS)], *(f"w{k}" for k in rng.integers(
        0, 300, size=int(rng.integers(4, 12))))]) for i in range(chunks)]  # few score ties
    store.put_chunks(_fid(n), [
        ChunkPoint(_fid(n), i, vecs[i].tolist(), f"{texts[i]} file {n}",
                   {**base, "body": f"chunk {i} of {n}", "chunk_hash": f"{n}:{i}"})
        for i in range(chunks)])


def _fill(store: EdgeStore | ProcessStore, files: int, chunks: int = 3) -> None:
    for n in range(files):
        _put(store, n, chunks)


def _queries() -> list[ChunkQuery]:
    qv = _vecs(6, 999)
    out = [ChunkQuery(limit=10, dense=v.tolist(), mode="dense") for v in qv[:3]]
    rare = " ".join(f"w{k}" for k in range(0, 300, 7))  # matched terms vary: few score ties
    out.append(ChunkQuery(limit=10, text=f"piano {rare}", mode="sparse"))
    out.append(ChunkQuery(limit=10, dense=qv[4].tolist(), mode="dense",
                          filter=Filter(must=(Match("kind", "hotel"),))))
    return out


def _answers(store: EdgeStore | ProcessStore,
             dense_only: bool = False) -> list[list[tuple[float, frozenset[str]]]]:
    """Each query's scores in order, with the ids at each score: equal scores may come in any
    order (the engine breaks ties by segment), and the lowest may be cut at the limit. (No
    hybrid query: RRF turns the sparse side's tie order into different fused scores.)"""
    out = []
    for q in _queries():
        if dense_only and q.mode != "dense":
            continue
        groups: dict[float, set[str]] = {}
        for h in store.search(q):
            groups.setdefault(round(h.score, 4), set()).add(h.point_id)
        ranked = sorted(groups.items(), reverse=True)
        out.append([(score, frozenset(ids) if i < len(ranked) - 1 else frozenset())
                    for i, (score, ids) in enumerate(ranked)])
    return out


def _until(fn: Callable[[], object], timeout: float = 120.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def _build_and_swap(store: EdgeStore) -> None:
    assert store.start_index_build(HNSW)
    _until(store.poll_index_build)


def _leftovers(index: Path) -> list[Path]:
    live = index / "chunks"
    return [p for p in (build_dir(live), old_dir(live), journal_path(live)) if p.exists()]


def test_search_answers_are_the_same_after_the_swap_and_the_index_is_built(
        tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "index", DIM)
    try:
        _fill(store, 400)
        before = _answers(store)
        assert store.index_status()["unindexed"] == 1200
        _build_and_swap(store)
        st = store.index_status()
        assert (st["unindexed"], st["points"], st["builds"]) == (0, 1200, 1)
        assert _answers(store) == before
        assert len(store.distinct("kind")) == len(WORDS)
        assert store.count_chunks(Filter(must=(Match("kind", "hotel"),))) == 150
    finally:
        store.close()
    assert not _leftovers(tmp_path / "index")
    again = EdgeStore(tmp_path / "index", DIM)
    try:
        assert _answers(again) == before
        assert again.index_status()["unindexed"] == 0
    finally:
        again.close()


def test_writes_made_during_the_build_are_not_lost(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "index", DIM)
    try:
        _fill(store, 200)
        assert store.start_index_build(HNSW)
        # all of these land while the build is under way (nothing swaps before poll)
        _put(store, 500, chunks=4)  # a new file
        _put(store, 3, chunks=1)  # fewer chunks: the stale two go
        store.delete_file(_fid(4))
        store.delete_chunks(_fid(5))
        store.move_chunks(_fid(6), {"path": "moved/f6.txt"})
        assert store.search(ChunkQuery(limit=3, text="file 500", mode="sparse"))  # at once
        expect = _answers(store, dense_only=True)
        counts = store.count_chunks()
        _until(store.poll_index_build)
        assert store.index_status()["builds"] == 1
        assert store.count_chunks() == counts == 600 + 4 - 2 - 3 - 3
        assert store.count_chunks(Filter(must=(Match("file_id", _fid(500)),))) == 4
        assert store.count_chunks(Filter(must=(Match("file_id", _fid(3)),))) == 1
        assert store.count_chunks(Filter(must=(Match("file_id", _fid(4)),))) == 0
        assert {h.payload["path"] for h in store.iter_chunks(
            Filter(must=(Match("file_id", _fid(6)),)))} == {"moved/f6.txt"}
        # BM25's IDF counts deleted points per segment until a vacuum, so after deletes only
        # the dense answers are comparable between two segment layouts
        assert _answers(store, dense_only=True) == expect
        _put(store, 501)  # writes after the swap go to the new live shard
        assert store.count_chunks() == counts + 3
    finally:
        store.close()


def _crash_states(tmp_path: Path) -> tuple[Path, Path, list[list[tuple[float, frozenset[str]]]]]:
    """An index with a finished build (every write in it) kept aside, and its answers."""
    index = tmp_path / "index"
    store = EdgeStore(index, DIM)
    _fill(store, 300)
    answers = _answers(store)
    assert store.start_index_build(HNSW)
    b = store._build
    assert b is not None
    assert b.proc.wait(timeout=120) == 0
    kept = tmp_path / "built"
    shutil.copytree(b.dir, kept)
    store.close()  # drops its own build
    return index, kept, answers


@pytest.mark.expected_log("completed an interrupted index swap")
@pytest.mark.parametrize("state", ["copied", "journaled", "live-moved", "built-moved"])
def test_a_swap_cut_short_is_finished_or_rolled_back_at_open(tmp_path: Path,
                                                             state: str) -> None:
    index, kept, answers = _crash_states(tmp_path)
    live = index / "chunks"
    shutil.copytree(kept, build_dir(live))
    if state != "copied":
        write_journal(live)
    if state in ("live-moved", "built-moved"):
        os.replace(live, old_dir(live))
    if state == "built-moved":
        os.replace(build_dir(live), live)
    store = EdgeStore(index, DIM)
    try:
        assert not _leftovers(index)
        assert _answers(store) == answers
        assert store.count_chunks() == 900
        hnsw = store.index_status()["unindexed"] == 0
        assert hnsw is (state != "copied")  # rolled forward only past the journal
    finally:
        store.close()


@pytest.mark.expected_log("index build failed")
def test_a_killed_builder_leaves_the_live_index_serving(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "index", DIM)
    try:
        _fill(store, 100)
        assert store.start_index_build(HNSW)
        b = store._build
        assert b is not None
        b.proc.kill()
        b.proc.wait()
        assert not store.poll_index_build()
        assert store.index_status()["building"] is False
        assert not _leftovers(tmp_path / "index")
        assert store.count_chunks() == 300
    finally:
        store.close()


def test_the_policy_builds_on_its_own_once_the_vault_is_idle(tmp_path: Path) -> None:
    policy = IndexPolicy(min_unindexed=100, idle_s=0.3, poll_s=0.05, indexing_threshold_kb=1,
                         nice=0)
    store = EdgeStore(tmp_path / "index", DIM, index_policy=policy)
    try:
        _fill(store, 50)
        _until(lambda: store.index_status()["builds"] == 1)
        assert store.index_status()["unindexed"] == 0
    finally:
        store.close()


def test_searches_keep_answering_in_milliseconds_while_the_builder_runs(tmp_path: Path) -> None:
    index = tmp_path / "index"
    seed = EdgeStore(index, DIM)
    _fill(seed, 4000, chunks=5)  # 20k chunks: a build of a few seconds
    seed.close()
    ps = ProcessStore(index, DIM, timeout=30, background_index=False)
    try:
        before = _answers(ps)
        qs = _queries()
        assert ps.start_index_build(HNSW)
        _until(lambda: ps.index_status()["building"])
        waits: list[float] = []
        while ps.index_status()["builder_running"]:
            t = time.perf_counter()
            ps.search(qs[len(waits) % len(qs)])
            waits.append(time.perf_counter() - t)
        assert len(waits) >= 20, "the build was too short to measure anything"
        assert max(waits) < 0.1, f"slowest search during the build: {max(waits):.3f} s"
        _until(ps.poll_index_build)
        _until(lambda: ps.index_status()["builds"] == 1)
        assert ps.index_status()["unindexed"] == 0
        assert _answers(ps) == before
    finally:
        ps.close()
