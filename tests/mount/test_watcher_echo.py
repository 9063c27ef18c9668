"""The vault watcher reports only changes made *around* the mount (issue 14).

Changes made through the mount are known to the daemon already; echoing them back as outside
changes invalidated the kernel's entries, so every file written through the mount got a new inode
number about a second later. An outside change to the same file must still get through, and a
watcher failure (a file name that is not UTF-8) must not end outside-change tracking.

Synchronisation: ``settle`` makes one outside change (a hard link: a single inotify event) and
waits until the watcher has counted it. Events are handled in order, so by then every earlier
echo has been handled too, and ``outside_events`` grew by exactly one if none leaked through.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.mounting import Mount, mounted
from tests.waiting import eventually

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]

_sentinels = itertools.count()


@pytest.fixture(scope="module")
def m(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    base = tmp_path_factory.mktemp("echo")
    (base / "vault").mkdir()
    (base / "vault" / "seed.txt").write_text("a file that was there before the mount\n")
    with mounted(base / "vault", base / "mnt") as mount:
        mount.wait_idle(timeout=120)
        yield mount
        assert mount.proc.poll() is None, f"daemon died:\n{mount.log_text()}"


def settle(m: Mount, timeout: float = 20.0) -> dict[str, Any]:
    """Make one change around the mount and wait until the watcher has counted it."""
    before = m.stats()["outside_events"]
    n = next(_sentinels)
    src = m.vault.parent / f"sentinel-{n}.txt"
    src.write_text(f"sentinel {n}\n")
    os.link(src, m.vault / src.name)
    assert eventually(lambda: m.stats()["outside_events"] > before, timeout), (
        f"watcher never saw the sentinel: {m.stats()}\n{m.log_text()}")
    return m.stats()


def test_a_file_written_through_the_mount_keeps_its_inode_number(m: Mount) -> None:
    settle(m)
    d = m.mnt / "keep"
    d.mkdir()
    f = d / "note.txt"
    f.write_text("written through the mount\n")
    with open(f, "a") as out:
        out.write("and appended to\n")
    ino, dir_ino = os.stat(f).st_ino, os.stat(d).st_ino
    before = m.stats()
    m.wait_idle(timeout=60)
    after = settle(m)
    assert os.stat(f).st_ino == ino
    assert os.stat(d).st_ino == dir_ino
    assert after["outside_events"] == before["outside_events"] + 1  # the sentinel only
    assert after["echoes_dropped"] > before["echoes_dropped"]
    assert f.read_text() == "written through the mount\nand appended to\n"


def test_namespace_changes_through_the_mount_cause_no_outside_invalidation(m: Mount) -> None:
    settle(m)
    before = m.stats()
    d = m.mnt / "ns"
    d.mkdir()
    n = 20
    for i in range(n):
        f = d / f"f{i}.txt"
        f.write_text(f"file {i}\n")
        os.rename(f, d / f"g{i}.txt")
        if i % 2:
            os.unlink(d / f"g{i}.txt")
    sub = d / "sub"
    sub.mkdir()
    os.symlink("../g0.txt", sub / "link")
    os.link(d / "g0.txt", sub / "hard.txt")
    os.chmod(d / "g0.txt", 0o600)
    os.truncate(d / "g2.txt", 3)
    os.utime(d / "g4.txt", ns=(1_000_000_000, 1_000_000_000))
    os.setxattr(d / "g6.txt", "user.tag", b"x")
    os.rename(sub, d / "sub2")
    os.unlink(d / "sub2" / "link")
    os.unlink(d / "sub2" / "hard.txt")
    os.rmdir(d / "sub2")
    m.wait_idle(timeout=60)
    after = settle(m)
    assert after["outside_events"] == before["outside_events"] + 1  # the sentinel only
    assert after["echoes_dropped"] >= n
    assert sorted(os.listdir(d)) == sorted(f"g{i}.txt" for i in range(0, n, 2))


def test_an_outside_write_right_after_ours_is_still_seen(m: Mount) -> None:
    f = m.mnt / "both.txt"
    f.write_text("mount wrote this\n")
    assert os.stat(f).st_size == 17  # cached by the kernel for the attribute timeout (5 s)
    (m.vault / "both.txt").write_text("vault got this!!\n")  # same size, right after ours
    # well inside the attribute timeout: only the watcher's invalidation explains a fresh view
    assert eventually(lambda: f.read_text() == "vault got this!!\n", timeout=4.0)
    m.wait_idle(timeout=60)
    hits = (m.mnt / "q" / "vault got this" / ".results").read_text()
    assert "\tboth.txt\t" in hits


def test_a_name_that_is_not_utf8_does_not_stop_the_watcher(m: Mount) -> None:
    restarts = m.stats()["watcher_restarts"]
    odd = os.path.join(os.fsencode(m.vault), b"caf\xe9.txt")
    with open(odd, "wb") as out:
        out.write(b"latin-1 name\n")
    assert eventually(lambda: m.stats()["watcher_restarts"] > restarts), m.stats()
    assert eventually(lambda: m.stats()["watcher"] == "watching"), m.stats()
    (m.vault / "later.txt").write_text("an ordinary change after the failure\n")
    settle(m)
    assert eventually(lambda: "later.txt" in os.listdir(m.mnt), timeout=4.0)
    assert (m.mnt / "later.txt").read_text() == "an ordinary change after the failure\n"
    assert b"caf\xe9.txt" in os.listdir(os.fsencode(m.mnt))
    # and through the mount: the name reaches ops and the indexer as a surrogate-escaped str
    ours = os.path.join(os.fsencode(m.mnt), b"na\xefve.txt")
    with open(ours, "wb") as out:
        out.write(b"written through the mount under a latin-1 name\n")
    os.rename(ours, ours + b".moved")
    with open(ours + b".moved", "rb") as back:
        assert back.read() == b"written through the mount under a latin-1 name\n"
    m.wait_idle(timeout=60)
    assert m.log_text().count("vault watcher failed") == 1
    assert m.proc.poll() is None
