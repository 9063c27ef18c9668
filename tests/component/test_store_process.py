"""The store in its own process: deadlines, deaths, panics, a full disk and a corrupt index all
become ``IndexUnavailable`` in the caller (never a hang, a BaseException or a signal), one log
line per failure streak, and the store comes back by itself.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from memexfs.errors import IndexFull, IndexUnavailable
from memexfs.schema import FileRecord, location_payload
from memexfs.store import ChunkPoint, ChunkQuery, EdgeStore, Filter, Match, open_store
from memexfs.store.process import ProcessStore
from memexfs.store.wire import handle, rebuild_error
from memexfs.vault import Vault

pytestmark = pytest.mark.timeout(120)

DIM = 8
TIMEOUT = 1.5
BACKOFF = (0.05, 0.2)


def _fid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _rec(n: int) -> FileRecord:
    return FileRecord(_fid(n), f"dir/f{n}.txt", n, n, status="indexed")


def _chunk(fid: str, i: int = 0) -> ChunkPoint:
    return ChunkPoint(fid, i, [1.0] + [0.0] * (DIM - 1), "some text",
                      {**location_payload("dir/f.txt"), "body": "some text"})


def _eventually(fn: Callable[[], object], timeout: float = 20.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except IndexUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def ps(tmp_path: Path) -> Iterator[ProcessStore]:
    s = ProcessStore(tmp_path / "index", DIM, timeout=TIMEOUT, backoff=BACKOFF)
    s.ping()
    yield s
    s.close()


def _pid(s: ProcessStore) -> int:
    pid = s.pid
    assert pid is not None
    return pid


def test_a_stopped_store_times_out_is_killed_and_comes_back(
        ps: ProcessStore, caplog: pytest.LogCaptureFixture) -> None:
    ps.put_file(_rec(1))
    pid = _pid(ps)
    os.kill(pid, signal.SIGSTOP)  # like an engine call blocked on a frozen disk
    t0 = time.monotonic()
    with caplog.at_level(logging.INFO, logger="memexfs.store.process"):
        with pytest.raises(IndexUnavailable, match="did not answer get_file within"):
            ps.get_file(_fid(1))
        assert time.monotonic() - t0 < TIMEOUT + 2.5
        assert not Path(f"/proc/{pid}").exists()  # killed and reaped
        for _ in range(3):  # calls during the backoff fail fast, with the same reason
            with pytest.raises(IndexUnavailable, match="did not answer"):
                ps.count_files()
        assert _eventually(lambda: ps.get_file(_fid(1))) == _rec(1)  # durable in the WAL
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # one line per failure streak
    assert any("available again" in r.getMessage() for r in caplog.records)
    assert _pid(ps) != pid


@pytest.mark.expected_log("index process died")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGBUS])
def test_a_dead_store_is_index_unavailable_with_the_signal(ps: ProcessStore,
                                                           sig: signal.Signals) -> None:
    ps.put_file(_rec(2))
    pid = _pid(ps)
    os.kill(pid, sig)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(
            f"/proc/{pid}/status").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(IndexUnavailable, match=f"index process died: {sig.name}"):
        ps.file_by_path("dir/f2.txt")
    assert _eventually(lambda: ps.file_by_path("dir/f2.txt")) == _rec(2)


@pytest.mark.expected_log("did not answer")
def test_a_stuck_call_holds_other_threads_no_longer_than_the_deadline(
        ps: ProcessStore) -> None:
    os.kill(_pid(ps), signal.SIGSTOP)
    outcome: dict[str, float] = {}

    def call(name: str, fn: Callable[[], object]) -> None:
        t0 = time.monotonic()
        try:
            fn()
        except IndexUnavailable:
            outcome[name] = time.monotonic() - t0

    threads = [threading.Thread(target=call, args=(f"t{i}", ps.count_files)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=4 * TIMEOUT + 5)
    assert sorted(outcome) == ["t0", "t1", "t2", "t3"]
    assert max(outcome.values()) < 2 * TIMEOUT + 2.5


def test_many_threads_share_one_store(ps: ProcessStore) -> None:
    def work(base: int) -> None:
        for i in range(base, base + 20):
            ps.put_file(_rec(i))
            assert ps.get_file(_fid(i)) == _rec(i)

    threads = [threading.Thread(target=work, args=(k * 100,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert ps.count_files() == 120
    assert len(list(ps.iter_files())) == 120
    assert len(list(ps.iter_files(Filter(must=(Match("dirs", "dir"),))))) == 120


def test_iterators_come_in_pages(ps: ProcessStore) -> None:
    for i in range(1, 1200):  # more than two pages
        if i % 100 == 0:
            ps.put_chunks(_fid(i), [_chunk(_fid(i))])
        ps.put_file(_rec(i))
    assert sorted(r.file_id for r in ps.iter_files()) == sorted(_fid(i) for i in range(1, 1200))
    assert len(list(ps.iter_chunks())) == 11


def test_caller_errors_keep_their_type_engine_errors_become_unavailable(
        ps: ProcessStore) -> None:
    with pytest.raises(ValueError, match="dense search needs a dense vector"):
        ps.search(ChunkQuery(limit=1, mode="dense"))
    with pytest.raises(IndexUnavailable, match="index engine error"):
        ps.put_chunks(_fid(3), [ChunkPoint(_fid(3), 0, [1.0, 2.0], "x", {})])  # wrong dim
    ps.ping()  # still the same healthy process


class PanicException(BaseException):
    """Stands in for pyo3_runtime.PanicException (same name, same base)."""


class _Panicking:
    def count_files(self, flt: object = None) -> int:
        raise PanicException("assertion failed: byte_offset < page_size_bytes")


def test_a_panic_is_an_error_reply_and_ends_the_child() -> None:
    reply, fatal = handle(_Panicking(), "count_files", (), {})
    assert fatal
    err = rebuild_error(reply)
    assert isinstance(err, IndexUnavailable)
    assert "panicked: assertion failed" in str(err)
    reply, fatal = handle(_Panicking(), "__class__", (), {})
    assert not fatal
    assert isinstance(rebuild_error(reply), ValueError)


def _corrupt(index: Path) -> None:
    """Random bytes over the chunk shard's id tracker: Qdrant Edge panics on it."""
    hit = False
    for p in index.rglob("tracker.dat"):
        with open(p, "r+b") as f:
            f.write(os.urandom(min(p.stat().st_size, 1 << 16)))
        hit = True
    assert hit


def _filled(root: Path) -> None:
    s = EdgeStore(root, DIM)
    for i in range(1, 20):
        s.put_file(_rec(i))
        s.put_chunks(_fid(i), [_chunk(_fid(i))])
    s.close()


@pytest.mark.expected_log("cannot open the index", "could not be opened")
def test_a_corrupt_index_is_unavailable_with_a_reason_and_repair_rebuilds_it(
        tmp_path: Path) -> None:
    root = tmp_path / "index"
    _filled(root)
    _corrupt(root)
    with pytest.raises(IndexUnavailable, match="cannot open the index .* panicked"):
        EdgeStore(root, DIM)  # not a PanicException (a BaseException) out of the engine
    ps = ProcessStore(root, DIM, timeout=TIMEOUT, backoff=BACKOFF)  # never raises
    try:
        with pytest.raises(IndexUnavailable, match="cannot open the index"):
            ps.ping()
        assert ps.failure is not None
        assert "cannot open the index" in ps.failure
        with pytest.raises(IndexUnavailable, match="cannot open the index"):
            ps.count_files()  # the same reason during the backoff
        moved = ps.repair()
        assert moved is not None
        assert Path(moved).name.startswith("index.corrupt-")
        assert (Path(moved) / "chunks").is_dir()  # kept for inspection
        assert ps.count_files() == 0  # a fresh index: the indexer refills it
        ps.put_file(_rec(1))
        assert ps.repair() is None  # a healthy index is left alone
        assert ps.get_file(_fid(1)) == _rec(1)
    finally:
        ps.close()


@pytest.mark.expected_log("could not be opened")
def test_open_store_repair_in_process(tmp_path: Path) -> None:
    vault = Vault.open(tmp_path)
    _filled(vault.index_dir)
    _corrupt(vault.index_dir)
    store = open_store(vault, dim=DIM, in_process=True, repair=True)
    try:
        assert isinstance(store, EdgeStore)
        assert store.moved_aside is not None
        assert store.count_files() == 0
    finally:
        store.close()


@pytest.mark.expected_log("the index engine panicked")
def test_a_panic_in_a_running_store_restarts_it(tmp_path: Path) -> None:
    root = tmp_path / "index"
    _filled(root)
    ps = ProcessStore(root, DIM, timeout=TIMEOUT, backoff=BACKOFF)
    try:
        ps.ping()
        pid = _pid(ps)
        _corrupt(root)  # under the running engine

        def write_until_it_breaks() -> None:
            for i in range(100, 200):
                ps.put_chunks(_fid(i), [_chunk(_fid(i))])
                ps.count_chunks()

        with pytest.raises(IndexUnavailable, match="panicked"):
            write_until_it_breaks()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not Path(f"/proc/{pid}").exists()  # the panicked child exited
    finally:
        ps.close()


def test_writes_below_the_reserve_are_refused_before_the_engine(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    free = st.f_bavail * st.f_frsize
    full = EdgeStore(tmp_path / "a", DIM, reserve_bytes=free + (1 << 30))
    try:
        with pytest.raises(IndexFull, match="index disk full: .* MiB free"):
            full.put_file(_rec(1))
        for write in (lambda: full.put_chunks(_fid(1), [_chunk(_fid(1))]),
                      lambda: full.update_file(_fid(1), status="failed"),
                      lambda: full.move_chunks(_fid(1), location_payload("x.txt")),
                      lambda: full.delete_file(_fid(1))):
            with pytest.raises(IndexFull):
                write()
        assert full.count_files() == 0  # reads still work
    finally:
        full.close()
    ps = ProcessStore(tmp_path / "b", DIM, timeout=TIMEOUT, reserve_bytes=free + (1 << 30))
    try:
        with pytest.raises(IndexFull) as info:
            ps.put_file(_rec(1))
        assert info.value.errno == errno.ENOSPC
        assert ps.failure is None  # a refusal, not a broken store
        assert ps.count_files() == 0
    finally:
        ps.close()


def test_the_store_process_keeps_state_private_and_inherits_no_fds(tmp_path: Path) -> None:
    leak_r, leak_w = os.pipe()
    os.set_inheritable(leak_w, True)  # like the daemon's FUSE and vault descriptors
    leak = f"pipe:[{os.fstat(leak_w).st_ino}]"
    old = os.umask(0)  # the most permissive umask a caller could have
    try:
        ps = ProcessStore(tmp_path / "index", DIM, timeout=TIMEOUT)
        ps.put_file(_rec(1))
        pid = _pid(ps)
        fds = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        ps.close()
    finally:
        os.umask(old)
        os.close(leak_r)
        os.close(leak_w)
    assert leak not in fds
    modes = {p: p.stat().st_mode & 0o777 for p in [tmp_path / "index",
                                                  *(tmp_path / "index").rglob("*")]}
    assert all(mode & 0o077 == 0 for mode in modes.values()), {
        str(p): oct(m) for p, m in modes.items() if m & 0o077}


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs of our own, to fill up (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    import subprocess

    where = tmp_path / "small"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256M,mode=0700", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(fs: Path) -> None:
    """Zeros into ``fs/filler`` until the file system is full."""
    with open(fs / "filler", "wb") as f, pytest.raises(OSError, match="No space left"):
        _zeros_forever(f)


def _zeros_forever(f: BinaryIO) -> None:
    while True:
        f.write(b"\0" * (1 << 20))
        f.flush()


def _big_chunks(n: int) -> list[ChunkPoint]:
    fid = _fid(n)
    return [ChunkPoint(fid, j, [0.1] * DIM, "text " * 50,
                       {**location_payload(f"f{n}.txt"), "body": "x" * 2000}) for j in range(20)]


@pytest.mark.expected_log("index process died")
def test_a_full_index_disk_is_refused_and_past_the_reserve_sigbus_ends_only_the_store(
        small_fs: Path) -> None:
    guarded = ProcessStore(small_fs / "a", DIM, timeout=10, reserve_bytes=8 << 20)
    bare = ProcessStore(small_fs / "b", DIM, timeout=10, reserve_bytes=0, backoff=BACKOFF)
    try:
        guarded.put_chunks(_fid(1), _big_chunks(1))
        bare.put_chunks(_fid(1), _big_chunks(1))
        _fill(small_fs)
        with pytest.raises(IndexFull, match="index disk full: 0 MiB free"):
            guarded.put_chunks(_fid(2), _big_chunks(2))
        assert guarded.count_chunks() == 20  # alive, and reads still work
        # Without a reserve the engine writes into its sparse mmapped files and dies by SIGBUS,
        # as the in-process store took the daemon with it; here only the store process goes.

        def write_until_it_dies() -> None:
            for n in range(2, 50):
                bare.put_chunks(_fid(n), _big_chunks(n))

        with pytest.raises(IndexUnavailable, match="SIGBUS"):
            write_until_it_dies()
        (small_fs / "filler").unlink()
        guarded.put_chunks(_fid(2), _big_chunks(2))  # space again: writes go through
        assert guarded.count_chunks() == 40
        assert _eventually(bare.count_chunks) == 20
    finally:
        guarded.close()
        bare.close()


@pytest.mark.expected_log("cannot open the index")
def test_the_store_process_log_can_go_to_a_file(tmp_path: Path) -> None:
    root = tmp_path / "index"
    _filled(root)
    _corrupt(root)
    ps = ProcessStore(root, DIM, timeout=TIMEOUT, log_to=tmp_path / "store.log")
    try:
        with pytest.raises(IndexUnavailable, match="panicked"):
            ps.ping()
    finally:
        ps.close()
    assert "byte_offset < page_size_bytes" in (tmp_path / "store.log").read_text()
    assert (tmp_path / "store.log").stat().st_mode & 0o077 == 0
