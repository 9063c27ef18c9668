"""A vault with more entries than the daemon may hold descriptors must stay fully usable.

Every inode the kernel remembers costs the daemon an O_PATH descriptor, and the kernel remembers
everything it listed until memory gets tight. The daemon runs here under a 512-descriptor limit and
lists, stats and writes 1200 entries: it must shed cold entries (ask the kernel to forget them)
instead of failing with EMFILE, which used to take every request down with it, the encoder load
included. (One folder bigger than half the limit still can't be listed: readdirplus gives every
entry a lookup the kernel only returns after the listing; see the report.)
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator

import pytest

from tests.mount.posix import outcome
from tests.mounting import Mount, mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(180)]

LIMIT = 512  # the daemon keeps half for open files, Qdrant, the extractor, the encoder load
FOLDERS = ("a", "b", "c", "d", "e", "f", "g", "h")
ENTRIES = 150  # per folder: 1200 in all, more than twice the limit


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    if shutil.which("prlimit") is None:
        pytest.fail("prlimit (util-linux) is needed to start the daemon under a small limit")
    base = tmp_path_factory.mktemp("fdlimit")
    vault, mnt = base / "vault", base / "mnt"
    for d in FOLDERS:
        (vault / d).mkdir(parents=True)
        for i in range(ENTRIES):
            (vault / d / f"f{i:04d}.bin").write_bytes(b"\0")
    launcher = ["prlimit", f"--nofile={LIMIT}:{LIMIT}", sys.executable, "-m", "memexfs.cli"]
    with mounted(vault, mnt, "--no-watch", program=launcher) as m:
        yield m


def test_walk_more_entries_than_descriptors(small: Mount) -> None:
    for _ in range(2):
        for d in FOLDERS:
            names = os.listdir(small.mnt / d)
            assert len(names) == ENTRIES
            for n in names:
                assert os.lstat(small.mnt / d / n).st_size == 1
    assert outcome((small.mnt / "new.bin").write_bytes, b"\0new") == ("ok", 4)
    assert (small.mnt / "new.bin").read_bytes() == b"\0new"
    held = len(os.listdir(f"/proc/{small.proc.pid}/fd"))
    assert held < LIMIT
    st = small.wait_idle(timeout=120)  # the encoder still loaded: descriptors were left for it
    assert st["state"] == "idle", st
    assert "Too many open files" not in small.log_text()
