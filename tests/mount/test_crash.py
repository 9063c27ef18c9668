"""kill -9 of the daemon in the middle of a bulk copy: fsynced bytes survive, and the next mount
reconciles the catalog so that ``memexfs check`` finds nothing wrong.

Mounted with ``--no-watch``: while the daemon is dead nobody watches anyway, and what this test is
about is the recovery path that doesn't depend on watching — the durable "pending" marks and the
reconcile at mount. (The watcher would also race the copy with duplicate notifications, adding CPU
load on a shared 2-core machine without testing anything more.)
"""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest

from tests.mount.trees import run_check
from tests.mounting import force_unmount, is_mounted, mounted
from tests.waiting import wait_until

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]

WORDS = ("invoice", "receipt", "contract", "meeting", "budget", "travel", "report", "design",
         "summary", "quarter", "payment", "vendor", "project", "milestone", "review", "schedule")


def _text(rng: random.Random, n: int) -> str:
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(12)) + "." for _ in range(n))


def test_kill9_mid_copy_then_remount(tmp_path: Path) -> None:
    rng = random.Random(7)
    vault, mnt, src = tmp_path / "vault", tmp_path / "mnt", tmp_path / "src"
    src.mkdir()
    for i in range(150):
        sub = src / f"batch{i % 5}"
        sub.mkdir(exist_ok=True)
        (sub / f"doc{i:03d}.txt").write_text(_text(rng, 6))
    durable = os.urandom(3 << 20)
    note = _text(rng, 40)

    with mounted(vault, mnt, "--no-watch") as m:
        fd = os.open(mnt / "durable.bin", os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, durable)
        os.fsync(fd)  # the contract: after fsync the bytes are in the vault
        with open(mnt / "note.txt", "w") as f:
            f.write(note)
            f.flush()
            os.fsync(f.fileno())
        m.wait_idle(timeout=120)  # note.txt indexed: chunks exist that must stay consistent
        copy = subprocess.Popen(["cp", "-r", str(src), str(mnt / "copied")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        def well_into_the_copy() -> bool:
            assert copy.poll() is None, "the copy finished before the crash; make it bigger"
            return len(list((vault / "copied").rglob("*.txt"))) >= 40

        wait_until(well_into_the_copy, 60, "the copy to get going", interval=0.01)
        os.write(fd, b"unsynced tail")  # in flight when the daemon dies: may or may not land
        m.proc.kill()  # ...and the daemon dies mid-work (mid-copy, mid-indexing)
        m.proc.wait(timeout=10)
        wait_until(lambda: not is_mounted(str(mnt)), 5,  # its supervisor aborts and detaches it
                   "the dead daemon's mount to be detached", interval=0.02)
        force_unmount(mnt)
        assert not is_mounted(str(mnt))
        copy.wait(timeout=30)
        assert copy.returncode != 0  # the copy saw the mount go away
        _close_quietly(fd)

    assert (vault / "durable.bin").read_bytes()[:len(durable)] == durable
    assert (vault / "note.txt").read_text() == note
    copied = sorted(p.relative_to(vault / "copied") for p in (vault / "copied").rglob("*.txt"))
    assert 40 <= len(copied) < 150

    with mounted(vault, mnt, "--no-watch") as m:  # the same vault again: the lock died with it
        assert (mnt / "durable.bin").read_bytes()[:len(durable)] == durable
        st = m.wait_idle(timeout=240)
        assert st["state"] == "idle", st
        assert st["files"] == len(copied) + 2, st
        assert st["queued"] == 0
        assert "reconcile:" in m.log_text()
        status = os.getxattr(mnt / "note.txt", "user.memex.status")
        assert status == b"indexed"
    res = run_check(vault)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith("0 problem(s)"), res.stdout


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)  # the mount is gone: close may report the lost connection
    except OSError:
        pass
