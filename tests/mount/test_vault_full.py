"""A vault whose file system fills up through the mount (issue 14): the writer gets ENOSPC, never a
hang; the daemon lives (the index on the same disk refuses writes before its mmapped files could
SIGBUS); earlier files are intact; indexing resumes once there is room again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mounting import mounted
from tests.waiting import wait_until

pytestmark = [pytest.mark.mount, pytest.mark.timeout(600)]

FS_MIB = 160

# Writes 1 MiB blocks until the file system refuses (at write, fsync or close), at most twice
# the disk's size; prints the errno name it met, or "none".
_FILLER = r"""
import errno, os, sys
path, limit = sys.argv[1], int(sys.argv[2])
block = b"\xa5" * (1 << 20)
met = "none"
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
try:
    for _ in range(limit):
        os.write(fd, block)
    os.fsync(fd)
except OSError as e:
    met = errno.errorcode[e.errno]
finally:
    try:
        os.close(fd)
    except OSError as e:
        met = met if met != "none" else errno.errorcode[e.errno]
print(met)
"""


def _free_bytes(path: Path) -> int:
    sv = os.statvfs(path)
    return sv.f_bavail * sv.f_frsize


def _status(path: Path) -> bytes | None:
    try:
        return os.getxattr(path, "user.memex.status")
    except OSError:  # not catalogued yet
        return None


def test_a_full_vault_is_enospc_to_the_writer_and_the_daemon_lives(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_MIB}M", "tmpfs", str(disk)],
                   check=True)
    try:
        vault, mnt = disk / "vault", tmp_path / "mnt"
        with mounted(vault, mnt) as m:
            (m.mnt / "before.txt").write_text("zebra crossing, written with room to spare\n")
            m.wait_idle(timeout=240)
            filler = subprocess.run(
                [sys.executable, "-c", _FILLER, str(m.mnt / "fill.bin"), str(2 * FS_MIB)],
                capture_output=True, text=True, timeout=180)  # a hang fails here
            assert filler.stdout.strip() == "ENOSPC", (filler.stdout, filler.stderr)
            # a file closed while the disk is full makes the indexer write to the index, which
            # lives on the same full disk: refused before Qdrant's mmapped files could SIGBUS
            (m.mnt / "while-full.txt").touch()
            wait_until(lambda: "index disk full" in (m.stats()["last_error"] or ""), 120,
                      "the indexer to meet the full disk")
            assert m.proc.poll() is None, m.log_text()
            assert (m.mnt / "before.txt").read_text().startswith("zebra crossing")
            assert "Bus error" not in m.log_text()
            os.unlink(m.mnt / "fill.bin")
            # The space comes back when the daemon closes its O_PATH descriptor, on the kernel's
            # FORGET that follows the unlink asynchronously (a few ms; passthrough_hp behaves the
            # same): keeping the descriptor until then is what stops the file system from reusing
            # the inode number while the kernel still knows it. CI once wrote in that window.
            wait_until(lambda: _free_bytes(disk) >= 64 << 20, 60,
                      "the removed file's space to come back")
            (m.mnt / "after.txt").write_text("zebra crossing again, once there is room\n")
            wait_until(lambda: _status(m.mnt / "after.txt") == b"indexed", 240,
                      "indexing to resume")
            assert m.proc.poll() is None, m.log_text()
            names = [n for n in os.listdir(m.mnt / "q" / "zebra crossing") if n != ".results"]
            assert {"before.txt", "after.txt"} <= set(names)
            wait_until(lambda: _status(m.mnt / "while-full.txt") in (b"indexed", b"metadata-only"),
                      240, "the file closed while full to be indexed on a retry")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
