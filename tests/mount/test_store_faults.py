"""Store faults through a real mount (issue 14): the index may block, die or be corrupt; plain
files keep working, ``/q`` answers EIO within the deadline, and the store comes back by itself.

The daemon is ``tests/mount/store_fault_daemon.py`` (store calls time out after 3 s; a planted
GIL-holding block in ``EdgeStore.put_file``). Mounted with ``--no-watch``: changes made around
the mount here only serve to force lookups that the kernel cannot answer from its cache.
"""

from __future__ import annotations

import errno
import itertools
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from memexfs.store.process import ProcessStore
from tests.mounting import REPO, Mount, mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]

PROGRAM = [sys.executable, str(REPO / "tests" / "mount" / "store_fault_daemon.py")]
STORE_TIMEOUT = 3.0
GIL_BLOCK_S = 8.0
TEXT = "The zebra crossing by the harbour lighthouse was repainted in spring.\n"


def wait_for(cond: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def store_child(m: Mount) -> int:
    """pid of the daemon's store process (started by the daemon, running our child script)."""
    found: list[int] = []

    def look() -> bool:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == m.proc.pid and b"store-child" in cmdline and " Z " not in stat:
                found.append(int(entry))
                return True
        return False

    wait_for(look, 20, "the store process")
    return found[0]


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


_fresh = itertools.count(1)


class Queries:
    """Fresh query names, so neither the kernel nor the daemon answers from a cache."""

    def __init__(self, m: Mount) -> None:
        self.m = m

    def folder(self) -> Path:
        return self.m.mnt / "q" / f"zebra crossing k:{next(_fresh)}"

    def works(self, timeout: float = 120.0) -> list[str]:
        out: list[str] = []

        def ok() -> bool:
            try:
                out[:] = os.listdir(self.folder())
            except OSError:
                return False
            return "zebra.txt" in out

        wait_for(ok, timeout, "a working /q")
        return out

    def eio(self) -> float:
        """Seconds until a fresh query answered EIO."""
        t0 = time.monotonic()
        with pytest.raises(OSError, match="Input/output error") as info:
            os.listdir(self.folder())
        assert info.value.errno == errno.EIO
        return time.monotonic() - t0


@pytest.fixture(scope="module")
def fault_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mount, Path]]:
    base = tmp_path_factory.mktemp("store-faults")
    marker = base / "gil-blocked"
    os.environ["MEMEXFS_TEST_GIL_MARKER"] = str(marker)
    try:
        planted = ("index unavailable", "cannot mark", "Fatal Python error: Bus error")
        with mounted(base / "vault", base / "mnt", "--no-watch", program=PROGRAM,
                     expect_log=planted) as m:  # what the faults planted below log
            write(m.mnt / "zebra.txt", TEXT)
            write(m.mnt / "plain.txt", "plain bytes\n")
            m.wait_idle(timeout=240)
            yield m, marker
            assert m.proc.poll() is None, f"daemon died:\n{m.log_text()}"
    finally:
        del os.environ["MEMEXFS_TEST_GIL_MARKER"]


def plain_io_is_quick(m: Mount, tag: str) -> float:
    """stat + cat of a file the kernel has never seen (the daemon must answer): seconds taken."""
    (m.vault / f"fresh-{tag}.txt").write_text(f"fresh {tag}\n")
    t0 = time.monotonic()
    assert os.stat(m.mnt / f"fresh-{tag}.txt").st_size == len(f"fresh {tag}\n")
    assert (m.mnt / f"fresh-{tag}.txt").read_text() == f"fresh {tag}\n"
    assert (m.mnt / "plain.txt").read_text() == "plain bytes\n"
    return time.monotonic() - t0


def test_a_store_call_holding_the_gil_does_not_stop_plain_files(
        fault_mount: tuple[Mount, Path]) -> None:
    m, marker = fault_mount
    write(m.mnt / "gil-block.txt", "zebra notes\n")  # its catalog write blocks the engine
    wait_for(marker.exists, 60, "the planted block")
    blocked_at = time.monotonic()
    took = plain_io_is_quick(m, "gil")
    assert time.monotonic() - blocked_at < GIL_BLOCK_S  # still inside the block
    assert took < 1.5, f"plain file I/O waited {took:.1f}s for a blocked store call"
    m.wait_idle(timeout=120)  # the store was restarted and the file indexed after all
    assert os.getxattr(m.mnt / "gil-block.txt", "user.memex.status") == b"indexed"
    assert "did not answer" in m.log_text()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGBUS])
def test_a_dead_store_process_is_eio_then_recovers(fault_mount: tuple[Mount, Path],
                                                   sig: signal.Signals) -> None:
    m, _ = fault_mount
    q = Queries(m)
    q.works()
    pid = store_child(m)
    os.kill(pid, sig)
    wait_for(lambda: state(pid) in ("Z", "gone"), 10, "the store process to die")
    assert q.eio() < 5.0
    assert plain_io_is_quick(m, sig.name) < 1.5
    assert f"index process died: {sig.name}" in m.log_text()
    assert "zebra.txt" in q.works(timeout=30)
    assert store_child(m) != pid
    assert m.proc.poll() is None


def test_a_stopped_store_process_is_eio_within_the_deadline(
        fault_mount: tuple[Mount, Path]) -> None:
    m, _ = fault_mount
    q = Queries(m)
    q.works()
    pid = store_child(m)
    os.kill(pid, signal.SIGSTOP)  # an engine call that never returns
    try:
        assert plain_io_is_quick(m, "stopped") < 1.5
        took = q.eio()
        assert took < STORE_TIMEOUT + 5.0
    finally:
        if state(pid) not in ("Z", "gone"):
            os.kill(pid, signal.SIGCONT)
    assert "zebra.txt" in q.works(timeout=30)
    assert m.proc.poll() is None


def fill(path: Path) -> None:
    """Zeros into ``path`` until its file system is full."""
    with open(path, "wb") as f, pytest.raises(OSError, match="No space left"):
        _zeros_forever(f)


def _zeros_forever(f: BinaryIO) -> None:
    while True:
        f.write(b"\0" * (1 << 20))
        f.flush()


def _corrupt(index: Path) -> None:
    """Random bytes over the chunk shard's id tracker: Qdrant Edge panics when it loads it."""
    targets = list(index.rglob("tracker.dat"))
    assert targets
    for p in targets:
        with open(p, "r+b") as f:
            f.write(os.urandom(min(p.stat().st_size, 1 << 16)))


@pytest.mark.expected_log("index unavailable: cannot open the index")
def test_a_corrupt_index_still_mounts_and_serves_plain_files(tmp_path: Path) -> None:
    vault, mnt = tmp_path / "vault", tmp_path / "mnt"
    with mounted(vault, mnt, "--no-watch", program=PROGRAM) as m:
        write(m.mnt / "zebra.txt", TEXT)
        m.wait_idle(timeout=240)
    _corrupt(vault / ".memexfs" / "index")
    with mounted(vault, mnt, "--no-watch", program=PROGRAM) as m:
        assert (m.mnt / "zebra.txt").read_text() == TEXT
        write(m.mnt / "new.txt", "written while the index is broken\n")
        assert (vault / "new.txt").read_text() == "written while the index is broken\n"
        assert Queries(m).eio() < 60.0  # the first search also waits for the encoder to load
        assert (m.mnt / "new.txt").read_text() == "written while the index is broken\n"
        assert m.proc.poll() is None, m.log_text()
        assert "cannot open the index" in m.log_text()
    # the rebuild (what `memexfs check --repair` does): the broken index is moved aside, and the
    # next mount re-indexes the vault into a fresh one
    store = ProcessStore(vault / ".memexfs" / "index", 384)
    try:
        moved = store.repair()
    finally:
        store.close()
    assert moved is not None
    assert Path(moved).is_dir()
    with mounted(vault, mnt, "--no-watch", program=PROGRAM) as m:
        m.wait_idle(timeout=240)
        assert "zebra.txt" in Queries(m).works()
        assert os.getxattr(m.mnt / "new.txt", "user.memex.status") == b"indexed"


@pytest.mark.expected_log("cannot mark")  # the IndexFull that the test is about
def test_a_full_index_disk_is_an_error_not_a_dead_daemon(tmp_path: Path) -> None:
    """The index on a small file system of its own, filled up: Qdrant Edge would die by SIGBUS
    in its mmapped files (and take the daemon along); the reserve refuses the write first."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    import subprocess

    vault, mnt = tmp_path / "vault", tmp_path / "mnt"
    index = vault / ".memexfs" / "index"
    index.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256M,mode=0700", "tmpfs", str(index)],
                   check=True)
    try:
        with mounted(vault, mnt, "--no-watch") as m:
            write(m.mnt / "zebra.txt", TEXT)
            m.wait_idle(timeout=240)
            q = Queries(m)
            q.works()
            fill(index / "filler")  # outside the mount: the index's file system only
            write(m.mnt / "while-full.txt", "zebra crossing, written while the index is full\n")
            # the file waits in the queue (it is not the file's fault) and the state says why
            wait_for(lambda: m.stats()["state"] == "error"
                     and "index disk full" in m.stats()["last_error"], 120,
                     "the indexer to report the full index disk")
            assert m.stats()["queued"] >= 1
            assert m.proc.poll() is None, m.log_text()
            assert (m.mnt / "while-full.txt").read_text().startswith("zebra crossing")
            assert "zebra.txt" in q.works(timeout=30)  # reads need no space
            assert "index disk full" in m.log_text()
            (index / "filler").unlink()
            write(m.mnt / "after.txt", "zebra crossing again, with room to spare\n")
            wait_for(lambda: os.getxattr(m.mnt / "after.txt", "user.memex.status") == b"indexed",
                     120, "indexing once there is room again")
            wait_for(lambda: os.getxattr(m.mnt / "while-full.txt",
                                         "user.memex.status") == b"indexed",
                     180, "the file written while full to be indexed on a retry")
            assert m.proc.poll() is None, m.log_text()
    finally:
        subprocess.run(["umount", "-l", str(index)], check=False)


def test_a_name_that_is_not_utf8_is_catalogued_and_found(
        fault_mount: tuple[Mount, Path]) -> None:
    m, _ = fault_mount
    name = b"caf\xe9-kettle.txt"  # Latin-1 on a UTF-8 system
    path = os.path.join(os.fsencode(m.mnt), name)
    with open(path, "wb") as f:
        f.write(b"The kettle whistled while the porridge boiled over.\n")
        f.flush()
        os.fsync(f.fileno())
    wait_for(lambda: os.getxattr(path, "user.memex.status") in (b"indexed", b"failed"), 120,
             "the file to be indexed")
    assert os.getxattr(path, "user.memex.status") == b"indexed"
    folder = os.path.join(os.fsencode(m.mnt), b"q", b"kettle porridge")
    assert name in os.listdir(folder)
    assert os.path.samefile(os.path.join(folder, name), path)
    assert m.proc.poll() is None
