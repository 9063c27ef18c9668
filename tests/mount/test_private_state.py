"""``.memexfs`` is the owner's alone: the index holds the documents' text.

The daemon used to call ``umask(0)`` before opening the store, so the index came out 0777/0666 and
any user who could reach the vault read a root-only file's text straight from it; ``daemon.log``
was 0644. Mounted here as a user would (background daemon, umask 022), through a real mount.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mount.daemon import PrivateLogHandler
from tests.mounting import REPO, force_unmount, is_mounted, memexfs_cmd

pytestmark = [pytest.mark.mount, pytest.mark.timeout(180)]


def memexfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(memexfs_cmd(*args), capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def leaks(state: Path) -> list[str]:
    """Every entry under ``state`` (itself included) with a group or other permission bit."""
    found = []
    for p in [state, *state.rglob("*")]:
        st = p.lstat()
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
            found.append(f"{oct(stat.S_IMODE(st.st_mode))} {p.relative_to(state)}")
    return found


@pytest.fixture
def umask022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_state_is_private_through_a_real_mount(tmp_path: Path, umask022: None) -> None:
    vault, mnt = tmp_path / "vault", tmp_path / "mnt"
    vault.mkdir()
    mnt.mkdir()
    state = vault / ".memexfs"
    state.mkdir(mode=0o755)  # as an older version left it: world-readable
    (state / "daemon.log").write_text("old log\n")
    os.chmod(state / "daemon.log", 0o644)
    (vault / "secret.txt").write_text("the quarterly invoice numbers nobody else may read\n")
    os.chmod(vault / "secret.txt", 0o600)
    try:
        res = memexfs("mount", str(vault), str(mnt))
        assert res.returncode == 0, res.stderr
        (mnt / "note.txt").write_text("a payment reminder for the vendor\n")
        (mnt / "q" / "saved invoices").mkdir()  # saved-queries.json
        assert os.listdir(mnt / "q" / "invoice payment") is not None
        res = memexfs("status", str(mnt), "--wait", "--timeout", "120")
        assert res.returncode == 0, res.stdout + res.stderr
        assert leaks(state) == []  # while mounted and indexed
        assert oct(os.stat(mnt / "note.txt").st_mode & 0o777) == "0o644"  # callers' modes kept
        assert memexfs("umount", str(mnt)).returncode == 0
        assert leaks(state) == []  # and what closing the index wrote
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert "mounted" in (state / "daemon.log").read_text()
        assert (state / "saved-queries.json").exists()
    finally:
        if is_mounted(str(mnt)):
            force_unmount(mnt)


def test_rotated_logs_stay_private(tmp_path: Path, umask022: None) -> None:
    import logging

    path = tmp_path / "daemon.log"
    handler = PrivateLogHandler(str(path))
    handler.maxBytes = 200
    logger = logging.getLogger("memexfs.test_private_state")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(20):
            logger.warning("line %d of a log that rotates", i)
    finally:
        logger.removeHandler(handler)
        handler.close()
    logs = sorted(tmp_path.glob("daemon.log*"))
    assert [p.name for p in logs] == ["daemon.log", "daemon.log.1", "daemon.log.2",
                                      "daemon.log.3"]
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in logs} == {"0o600"}
