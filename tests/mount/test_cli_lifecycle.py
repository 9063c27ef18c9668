"""The ``memexfs mount``/``umount`` lifecycle as a user's shell sees it: exit codes, one-line
errors, signals. Mounts here are real daemons (forked, setsid), so every test cleans up by pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mounting import REPO, force_unmount, is_mounted, memexfs_cmd
from tests.waiting import eventually, pid_alive, wait_pid_gone, wait_until

pytestmark = [pytest.mark.mount, pytest.mark.timeout(120)]

EXIT_ERROR, EXIT_BUSY, EXIT_NOT_MOUNTED = 1, 3, 4
SLOW = Path(__file__).with_name("slow_encoder_daemon.py")


def memexfs(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(memexfs_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def daemon_pid(vault: Path) -> int:
    return int(json.loads((vault / ".memexfs" / "mount.json").read_text())["pid"])


def wait_gone(pid: int, mnt: Path, timeout: float) -> float:
    """Seconds until the daemon exited and the mount vanished; raises after ``timeout``."""
    t0 = time.monotonic()
    wait_until(lambda: not pid_alive(pid) and not is_mounted(str(mnt)), timeout,
               lambda: f"pid {pid} to go: alive={pid_alive(pid)} mounted={is_mounted(str(mnt))}",
               interval=0.02)
    return time.monotonic() - t0


@pytest.fixture
def place(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A vault and a mountpoint; whatever a test leaves mounted or running is torn down."""
    vault, mnt = tmp_path / "vault", tmp_path / "mnt"
    vault.mkdir()
    mnt.mkdir()
    (vault / "hello.bin").write_bytes(b"\0hello")
    pids: list[int] = []
    yield vault, mnt
    for m in (mnt, tmp_path / "mnt2"):
        if is_mounted(str(m)):
            subprocess.run(["fusermount3", "-u", str(m)], capture_output=True, timeout=15)
    for lock in (vault / ".memexfs" / "lock",):
        try:
            pids.append(int(lock.read_text().strip() or 0))
        except (OSError, ValueError):
            pass
    for pid in pids:
        if pid and not eventually(lambda pid=pid: not pid_alive(pid), 10):
            os.kill(pid, signal.SIGKILL)
    for m in (mnt, tmp_path / "mnt2"):
        force_unmount(m)


def assert_one_line_error(res: subprocess.CompletedProcess[str], code: int) -> str:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert lines[0].startswith("memexfs: ")
    return lines[0]


def test_mount_returns_when_live_then_umount(place: tuple[Path, Path]) -> None:
    vault, mnt = place
    res = memexfs("mount", "--no-watch", str(vault), str(mnt))
    assert res.returncode == 0, res.stderr
    assert is_mounted(str(mnt))  # live the moment the command returns
    assert (mnt / "hello.bin").read_bytes() == b"\0hello"
    pid = daemon_pid(vault)
    assert pid_alive(pid)
    assert pid != os.getpid()
    res = memexfs("umount", str(mnt))
    assert res.returncode == 0, res.stderr
    assert not is_mounted(str(mnt))
    wait_gone(pid, mnt, timeout=10)
    assert not (vault / ".memexfs" / "mount.json").exists()
    # and the vault can be mounted again right away (the lock went with the daemon)
    res = memexfs("mount", "--no-watch", str(vault), str(mnt))
    assert res.returncode == 0, res.stderr
    assert memexfs("umount", str(mnt)).returncode == 0


def test_second_mount_of_a_vault_is_refused(place: tuple[Path, Path]) -> None:
    vault, mnt = place
    assert memexfs("mount", "--no-watch", str(vault), str(mnt)).returncode == 0
    mnt2 = mnt.parent / "mnt2"
    mnt2.mkdir()
    line = assert_one_line_error(memexfs("mount", str(vault), str(mnt2)), EXIT_BUSY)
    assert "in use" in line or "mounted" in line
    assert not is_mounted(str(mnt2))
    assert_one_line_error(memexfs("mount", str(vault), str(mnt)), EXIT_BUSY)
    assert (mnt / "hello.bin").read_bytes() == b"\0hello"  # the first mount is unharmed
    assert memexfs("umount", str(mnt)).returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_unmounts_cleanly_within_5s(place: tuple[Path, Path], sig: int) -> None:
    vault, mnt = place
    assert memexfs("mount", "--no-watch", str(vault), str(mnt)).returncode == 0
    pid = daemon_pid(vault)
    assert memexfs("status", str(mnt), "--wait", "--timeout", "90").returncode == 0
    fd = os.open(mnt / "hello.bin", os.O_RDONLY)  # a file open until just before the signal
    os.close(fd)
    os.kill(pid, sig)
    took = wait_gone(pid, mnt, timeout=30)
    assert took < 5.0, f"{signal.Signals(sig).name}: took {took:.1f}s"
    log = (vault / ".memexfs" / "daemon.log").read_text()
    assert "(clean)" in log, log[-2000:]
    assert "Traceback" not in log, log[-3000:]
    assert not (vault / ".memexfs" / "mount.json").exists()


def test_signal_while_the_encoder_loads(place: tuple[Path, Path]) -> None:
    """The encoder load is made slow (20 s) so the signal lands in it every time: a worker
    thread that cancellation would have to wait for must not hold up the unmount."""
    vault, mnt = place
    res = subprocess.run([sys.executable, str(SLOW), "mount", "--no-watch", str(vault), str(mnt)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert res.returncode == 0, res.stderr
    pid = daemon_pid(vault)
    assert (mnt / "hello.bin").read_bytes() == b"\0hello"  # plain files work while it loads
    stats = json.loads(os.getxattr(mnt / ".memexfs", "user.memex.stats"))
    assert stats["encoder"] == "", stats  # still loading: the signal lands in the slow load
    os.kill(pid, signal.SIGTERM)
    took = wait_gone(pid, mnt, timeout=40)
    assert took < 5.0, f"SIGTERM while the encoder loads: took {took:.1f}s"


def test_bad_mountpoint_and_missing_vault(place: tuple[Path, Path], tmp_path: Path) -> None:
    vault, mnt = place
    not_dir = tmp_path / "file"
    not_dir.write_text("x")
    line = assert_one_line_error(memexfs("mount", str(vault), str(not_dir)), EXIT_ERROR)
    assert "not a directory" in line
    line = assert_one_line_error(memexfs("mount", str(vault), str(tmp_path / "nope")),
                                 EXIT_ERROR)
    assert "nope" in line
    line = assert_one_line_error(memexfs("mount", str(tmp_path / "missing"), str(mnt)),
                                 EXIT_ERROR)
    assert "missing" in line
    line = assert_one_line_error(memexfs("mount", str(vault), str(vault / "inside")),
                                 EXIT_ERROR)
    assert not is_mounted(str(mnt))


def test_umount_of_something_else(place: tuple[Path, Path]) -> None:
    _, mnt = place
    assert_one_line_error(memexfs("umount", str(mnt)), EXIT_NOT_MOUNTED)


def supervisor_of(pid: int) -> int:
    """The watcher the daemon ``pid`` started (its child running mount/supervisor.py)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if ppid == pid and b"supervisor.py" in cmdline:
            return int(entry)
    raise LookupError(f"daemon {pid} has no supervisor")


def test_lock_and_mount_json_name_the_daemon(place: tuple[Path, Path]) -> None:
    """The lock used to name the CLI process, which exits once the mount is live."""
    vault, mnt = place
    assert memexfs("mount", "--no-watch", str(vault), str(mnt)).returncode == 0
    pid = daemon_pid(vault)
    assert int((vault / ".memexfs" / "lock").read_text()) == pid
    assert pid_alive(pid)
    assert supervisor_of(pid)
    assert memexfs("umount", str(mnt)).returncode == 0


@pytest.mark.parametrize("command", ["status", "umount"])
def test_a_hung_daemon_is_recovered(place: tuple[Path, Path], command: str) -> None:
    """A daemon that does not answer (stopped here) is aborted and detached by ``status`` and
    ``umount``, with one line; neither command hangs on it."""
    vault, mnt = place
    assert memexfs("mount", "--no-watch", str(vault), str(mnt)).returncode == 0
    pid = daemon_pid(vault)
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        res = memexfs(command, str(mnt), timeout=60)
        took = time.monotonic() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    line = assert_one_line_error(res, EXIT_ERROR if command == "status" else 0)
    assert "does not answer" in line
    assert "detached" in line
    assert took < 15, took
    assert not is_mounted(str(mnt))
    wait_gone(pid, mnt, timeout=30)  # its connection ended: the daemon exits by itself


@pytest.mark.parametrize("command", ["status", "umount"])
def test_a_dead_daemon_is_recovered(place: tuple[Path, Path], command: str) -> None:
    """With its supervisor killed first, nothing cleans up after a kill -9: the mount stays
    attached and dead until ``status VAULT`` (the pid in mount.json is gone) or ``umount``
    (the connection is closed) detaches it."""
    vault, mnt = place
    assert memexfs("mount", "--no-watch", str(vault), str(mnt)).returncode == 0
    pid = daemon_pid(vault)
    os.kill(supervisor_of(pid), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    wait_pid_gone(pid, timeout=10)
    assert is_mounted(str(mnt))
    target = vault if command == "status" else mnt
    line = assert_one_line_error(memexfs(command, str(target), timeout=60),
                                 EXIT_ERROR if command == "status" else 0)
    assert "dead" in line or "gone" in line
    assert not is_mounted(str(mnt))
    res = memexfs("mount", "--no-watch", str(vault), str(mnt))  # and the vault mounts again
    assert res.returncode == 0, res.stderr
    assert memexfs("umount", str(mnt)).returncode == 0


def test_kill9_is_cleaned_up_by_the_supervisor(place: tuple[Path, Path]) -> None:
    """A kill -9 leaves no mount behind, even on a mountpoint whose name mountinfo escapes."""
    vault, mnt = place
    odd = mnt.parent / "mnt two\tthree"
    odd.mkdir()
    try:
        assert memexfs("mount", "--no-watch", str(vault), str(odd)).returncode == 0
        pid = daemon_pid(vault)
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, odd, timeout=10)
        log = (vault / ".memexfs" / "daemon.log").read_text()
        assert f"daemon {pid} died without unmounting" in log, log[-2000:]
        assert "detached" in log, log[-2000:]
        assert memexfs("mount", "--no-watch", str(vault), str(odd)).returncode == 0
        assert memexfs("umount", str(odd)).returncode == 0
    finally:
        force_unmount(odd)
