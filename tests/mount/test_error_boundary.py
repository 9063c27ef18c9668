"""A bug in a handler costs one request an EIO, never the mount (pyfuse3 would end it for good).

The daemon runs through ``faulty_daemon.py``, which plants RuntimeErrors inside real handlers.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mount.posix import outcome
from tests.mounting import Mount, is_mounted, mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(120)]

FAULTY = Path(__file__).with_name("faulty_daemon.py")


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    base = tmp_path_factory.mktemp("faulty")
    vault, mnt = base / "vault", base / "mnt"
    vault.mkdir()
    mnt.mkdir()
    # Written around the mount, so the first read of it reaches the daemon (not the page cache).
    (vault / "boom-io-read.bin").write_bytes(b"\0" * 4096)
    (vault / "fine.bin").write_bytes(b"\0fine")
    # every fault planted is logged with its traceback; nothing else may be
    with mounted(vault, mnt, "--no-watch", program=[sys.executable, str(FAULTY)],
                 expect_log=("RuntimeError: injected fault",)) as m:
        yield m


def _still_serving(m: Mount) -> None:
    assert m.proc.poll() is None, m.log_text()
    assert is_mounted(str(m.mnt))
    assert (m.mnt / "fine.bin").read_bytes() == b"\0fine"
    probe = m.mnt / f"probe-{time.monotonic_ns()}"
    probe.write_bytes(b"\0ok")
    assert probe.read_bytes() == b"\0ok"
    assert probe.name in os.listdir(m.mnt)
    probe.unlink()


def test_read_fault_is_eio_and_logged(faulty: Mount) -> None:
    assert outcome((faulty.mnt / "boom-io-read.bin").read_bytes) == ("err", "EIO")
    _still_serving(faulty)
    log = faulty.log_text()
    assert "Traceback" in log
    assert "RuntimeError: injected fault in file I/O" in log
    assert "read failed unexpectedly; answering EIO" in log


def test_getxattr_fault_is_eio(faulty: Mount) -> None:
    p = faulty.mnt / "boom-attr.bin"
    p.write_bytes(b"\0")
    assert outcome(os.getxattr, p, "user.memex.status") == ("err", "EIO")
    assert outcome(os.listxattr, p) == ("err", "EIO")
    assert "RuntimeError: injected fault in getxattr" in faulty.log_text()
    _still_serving(faulty)


def test_fsync_fault_is_eio(faulty: Mount) -> None:
    fd = os.open(faulty.mnt / "boom-io-sync.bin", os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"\0" * 100)  # lands in the kernel's writeback cache
        assert outcome(os.fsync, fd) == ("err", "EIO")
    finally:
        outcome(os.close, fd)
    _still_serving(faulty)


def test_many_faults_in_a_row(faulty: Mount) -> None:
    p = faulty.mnt / "boom-attr.bin"
    for _ in range(50):
        assert outcome(os.getxattr, p, "user.memex.status") == ("err", "EIO")
    _still_serving(faulty)
    assert faulty.log_text().count("injected fault in getxattr") >= 50
