"""Real FUSE mounts for tests: start the daemon in a subprocess, always unmount, never hang.

A mount that misbehaves is torn down the hard way (abort its FUSE connection, lazy unmount), so a
failing test can't leave the next one stuck on a dead mountpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EVAL_DIR = Path(os.environ.get("MEMEXFS_EVAL_DIR", REPO.parent / "shared" / "eval"))


def fuse_available() -> bool:
    return os.path.exists("/dev/fuse") and os.geteuid() == 0


def _mountinfo(mnt: str) -> str | None:
    """major:minor of the mount at ``mnt`` (read without touching the mount itself)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4]) == mnt:
                return parts[2]
    return None


def is_mounted(mnt: str | Path) -> bool:
    return _mountinfo(str(mnt)) is not None


def force_unmount(mnt: str | Path) -> None:
    """Abort the FUSE connection (unblocks everything waiting on it) and detach the mount."""
    mnt = str(mnt)
    dev = _mountinfo(mnt)
    if dev is None:
        return
    if not os.path.isdir("/sys/fs/fuse/connections/1") and not os.listdir(
            "/sys/fs/fuse/connections"):
        subprocess.run(["mount", "-t", "fusectl", "none", "/sys/fs/fuse/connections"],
                       capture_output=True)
    abort = Path("/sys/fs/fuse/connections", dev.split(":")[1], "abort")
    with contextlib.suppress(OSError):
        abort.write_text("1")
    subprocess.run(["umount", "-l", mnt], capture_output=True)


def process_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (``D`` = uninterruptible wait), None once it is reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def stuck_threads(pid: int) -> dict[int, str]:
    """tid -> kernel function it waits in, for every thread of ``pid`` in D state."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else ():
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state == "D":
                with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                    out[int(tid)] = f.read().strip()
    return out


@dataclass
class Mount:
    vault: Path
    mnt: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def stats(self) -> dict[str, Any]:
        return dict(json.loads(os.getxattr(self.mnt / ".memexfs", "user.memex.stats")))

    def wait_idle(self, timeout: float = 300.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if st["state"] in ("idle", "error") and not st["queued"]:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"index not idle after {timeout}s: {st}")
            time.sleep(0.1)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def memexfs_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "memexfs.cli", *args]


@contextlib.contextmanager
def mounted(vault: Path, mnt: Path, *extra: str, timeout: float = 60.0,
            program: list[str] | None = None) -> Iterator[Mount]:
    """Mount ``vault`` on ``mnt`` with the daemon in the foreground of a child process.

    ``program`` replaces the ``python -m memexfs.cli`` launcher (a wrapper script, prlimit...).
    """
    vault.mkdir(parents=True, exist_ok=True)
    mnt.mkdir(parents=True, exist_ok=True)
    log = mnt.parent / f"{mnt.name}.daemon.log"
    argv = [*(program or memexfs_cmd()), "mount", "--foreground", *extra, str(vault), str(mnt)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    m = Mount(vault, mnt, proc, log)
    try:
        deadline = time.monotonic() + timeout
        while not is_mounted(str(mnt.resolve())):
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode}:\n{m.log_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"mount did not appear:\n{m.log_text()}")
            time.sleep(0.05)
        yield m
    finally:
        unmount(m)


def unmount(m: Mount, timeout: float = 15.0) -> int | None:
    """Clean unmount (fusermount3 -u), then the daemon must exit; force both if they don't."""
    mnt = str(m.mnt.resolve())
    if is_mounted(mnt):
        subprocess.run(["fusermount3", "-u", mnt], capture_output=True, timeout=timeout)
    try:
        return m.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(timeout=timeout)
        return None
    finally:
        if is_mounted(mnt):
            force_unmount(mnt)


def one_line(res: subprocess.CompletedProcess[str], code: int) -> str:
    """The CLI's single stderr line for a failure with exit code ``code``."""
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("memexfs: "), res.stderr
    return lines[0]
