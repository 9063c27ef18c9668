"""Real FUSE mounts for tests: start the daemon in a subprocess, always unmount, never hang.

A mount that misbehaves is torn down the hard way (abort its FUSE connection, lazy unmount), so a
failing test can't leave the next one stuck on a dead mountpoint. A mount whose test went well
must also leave a daemon log without ERROR records or tracebacks, except those the test declared
(``mounted(expect_log=...)`` or the test's ``@pytest.mark.expected_log``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
EVAL_DIR = Path(os.environ.get("MEMEXFS_EVAL_DIR", REPO.parent / "shared" / "eval"))


# The running test's @pytest.mark.expected_log substrings (set by tests/conftest.py per test; a
# module-scoped mount is torn down in its last test, whose markers include the module's).
EXPECTED_DAEMON_LOG: list[str] = []
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\S* (\w+) ")
_BAD_TEXT = ("Traceback (most recent call last)", "Fatal Python error")


def log_errors(text: str, expected: Sequence[str] = ()) -> list[str]:
    """The daemon log's ERROR/CRITICAL records and tracebacks (a record with the lines that
    follow it) that contain none of the ``expected`` substrings."""
    records: list[list[str]] = []
    for line in text.splitlines():
        if _RECORD.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    bad = []
    for lines in records:
        record = "\n".join(lines)
        m = _RECORD.match(lines[0])
        serious = m is not None and m.group(1) in ("ERROR", "CRITICAL")
        if (serious or any(t in record for t in _BAD_TEXT)) and not any(
                s in record for s in expected):
            bad.append(record)
    return bad


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
        def idle() -> dict[str, Any] | None:
            st = self.stats()
            return st if st["state"] in ("idle", "error") and not st["queued"] else None

        return wait_until(idle, timeout, lambda: f"the index to be idle: {self.stats()}", 0.1)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def memexfs_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "memexfs.cli", *args]


@contextlib.contextmanager
def mounted(vault: Path, mnt: Path, *extra: str, timeout: float = 60.0,
            program: list[str] | None = None, expect_log: Sequence[str] = ()) -> Iterator[Mount]:
    """Mount ``vault`` on ``mnt`` with the daemon in the foreground of a child process.

    ``program`` replaces the ``python -m memexfs.cli`` launcher (a wrapper script, prlimit...).
    After a clean exit from the block, the daemon log must hold no ERROR record or traceback
    but those containing one of ``expect_log`` (or of the test's ``expected_log`` marker).
    """
    vault.mkdir(parents=True, exist_ok=True)
    mnt.mkdir(parents=True, exist_ok=True)
    log = mnt.parent / f"{mnt.name}.daemon.log"
    argv = [*(program or memexfs_cmd()), "mount", "--foreground", *extra, str(vault), str(mnt)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    m = Mount(vault, mnt, proc, log)
    went_well = False
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {proc.returncode}:\n{m.log_text()}")
            return is_mounted(str(mnt.resolve()))

        wait_until(up, timeout, lambda: f"the mount to appear:\n{m.log_text()}")
        yield m
        went_well = True
    finally:
        unmount(m)
    bad = log_errors(m.log_text(), [*expect_log, *EXPECTED_DAEMON_LOG])
    assert not (went_well and bad), (
        f"daemon log {log} has ERROR records the test did not declare "
        "(mounted(expect_log=...) or @pytest.mark.expected_log):\n" + "\n".join(bad)[-4000:])


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
