"""Watch a MemexFS daemon from outside and free its mount the moment it dies.

Why a separate process: a daemon killed (kill -9, OOM, a native crash) while the kernel runs one of
its reverse invalidations stays a zombie with that thread stuck in D state on a directory lock that
a pending request holds. Its ``/dev/fuse`` descriptor is then never closed, so the kernel never ends
the connection and every caller in the mount waits forever. Only writing ``1`` to
``/sys/fs/fuse/connections/<dev>/abort`` frees them. The daemon cannot do that for itself, so it
starts this watcher once it is mounted.

The watcher holds no descriptor in the mount and never looks inside it (mountinfo and procfs only),
imports only the standard library and runs with ``-I -S`` from ``/``, so nothing it does can wait on
the mount it guards. The daemon's leader thread turning zombie is the death signal: ``exit_group``
ends every thread at once, and one that stays behind is exactly the stuck one. A daemon that says
``clean`` first, or a mount that disappears, ends the watch quietly.

The same recovery (``find_mount`` + ``recover``) serves ``memexfs umount``/``status`` for a daemon
that is dead or does not answer.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

FUSECTL = "/sys/fs/fuse/connections"
MNT_DETACH = 2
TICK_S = 0.1
CLEAN = b"clean"

Log = Callable[[str], None]


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    dev: str  # "major:minor" as mountinfo writes it
    fstype: str

    @property
    def conn(self) -> str:
        """The connection's folder in fusectl: the kernel's dev_t number."""
        major, minor = (int(x) for x in self.dev.split(":"))
        return str((major << 20) | minor)


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def find_mount(mountpoint: str, dev: str | None = None,
               mountinfo: str = "/proc/self/mountinfo") -> MountEntry | None:
    """The FUSE mount at ``mountpoint`` (the top one if stacked; the one with ``dev`` if given),
    read from mountinfo: stat'ing the mountpoint itself could wait on the daemon."""
    found = None
    with open(mountinfo) as f:
        for line in f:
            fields = line.split()
            if len(fields) < 10 or _unescape(fields[4]) != mountpoint:
                continue
            fstype = fields[fields.index("-") + 1]
            if not fstype.startswith("fuse") or (dev is not None and fields[2] != dev):
                continue
            found = MountEntry(mountpoint, fields[2], fstype)
    return found


def _ensure_fusectl() -> None:
    with open("/proc/self/mounts") as f:
        if any(line.split()[2:3] == ["fusectl"] for line in f):
            return
    subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL], capture_output=True,
                   timeout=10, check=False)


def abort_connection(entry: MountEntry, log: Log) -> bool:
    """End every request of the connection with ENOTCONN, as the kernel does when the daemon's
    descriptor closes; callers waiting on the dead daemon return."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        _ensure_fusectl()
    path = os.path.join(FUSECTL, entry.conn, "abort")
    try:
        with open(path, "w") as f:
            f.write("1")
    except OSError as exc:
        log(f"cannot abort the FUSE connection {entry.conn} ({path}: {exc.strerror})")
        return False
    return True


def detach(mountpoint: str, log: Log) -> bool:
    """Lazy unmount: the mount leaves the namespace now, open descriptors get ENOTCONN."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.umount2(os.fsencode(mountpoint), MNT_DETACH) == 0:
            return True
        err = ctypes.get_errno()
        log(f"umount -l {mountpoint} failed: {os.strerror(err)}")
        return False
    try:
        res = subprocess.run(["fusermount3", "-u", "-z", mountpoint], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"fusermount3 -uz {mountpoint} failed: {exc}")
        return False
    if res.returncode != 0:
        log(f"fusermount3 -uz {mountpoint} failed: {res.stderr.strip()}")
    return res.returncode == 0


def recover(mountpoint: str, log: Log, dev: str | None = None) -> bool:
    """Abort the connection of the mount at ``mountpoint`` and detach it; False when there is no
    such mount (any more) or it could not be detached."""
    entry = find_mount(mountpoint, dev)
    if entry is None:
        return False
    aborted = abort_connection(entry, log)
    detached = detach(mountpoint, log)
    log(f"{mountpoint}: FUSE connection {entry.conn} "
        f"{'aborted' if aborted else 'not aborted'}, mount "
        f"{'detached' if detached else 'still attached'}")
    return detached


def leader_gone(pid: int) -> bool:
    """The daemon's main thread exited: zombie, dead, or no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def stuck_in(pid: int) -> list[str]:
    """The kernel functions the threads of ``pid`` in D state wait in (for the log)."""
    out = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, IndexError):
                with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                    if f.read().rsplit(b")", 1)[1].split()[0] != b"D":
                        continue
                with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                    out.append(f.read().strip() or "?")
    return out


def watch(pid: int, mountpoint: str, dev: str, ctl_fd: int, log: Log) -> int:
    """Wait for the daemon's death; recover its mount if it died with the mount still up."""
    poller = select.poll()
    poller.register(ctl_fd, select.POLLIN)
    clean = False
    while True:
        if find_mount(mountpoint, dev) is None:
            return 0  # unmounted (by the daemon or from outside): nothing left to guard
        if leader_gone(pid) or os.getppid() != pid:
            break
        for _fd, _ev in poller.poll(int(TICK_S * 1000)):
            data = os.read(ctl_fd, 64)
            if not data:  # the daemon's descriptors are closed: it is gone
                poller.unregister(ctl_fd)
            clean = clean or CLEAN in data
    if find_mount(mountpoint, dev) is None:
        return 0
    stuck = stuck_in(pid)
    log(f"daemon {pid} died {'while unmounting' if clean else 'without unmounting'}"
        + (f", {len(stuck)} thread(s) stuck in {', '.join(sorted(set(stuck)))}" if stuck else "")
        + f"; recovering {mountpoint}")
    return 0 if recover(mountpoint, log, dev) else 1


def start(pid: int, mountpoint: str, dev: str,
          log_file: str | None) -> tuple[subprocess.Popen[bytes], int]:
    """Start the watcher for this process (called by the daemon once mounted).

    Returns (the watcher, the write end of its control pipe): write ``clean`` there before a
    normal unmount. Only this process holds the write end, and it is close-on-exec.
    """
    r, w = os.pipe()
    argv = [sys.executable, "-I", "-S", os.path.abspath(__file__), "--pid", str(pid),
            "--mountpoint", mountpoint, "--dev", dev, "--fd", str(r)]
    if log_file:
        argv += ["--log-file", log_file]
    try:
        proc = subprocess.Popen(argv, cwd="/", stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, pass_fds=(r,), close_fds=True,
                                start_new_session=True)
    finally:
        os.close(r)
    return proc, w


def _logger(path: str | None) -> Log:
    def log(msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} WARNING memexfs.supervisor: {msg}\n"
        if path is None:
            sys.stderr.write(line)
            sys.stderr.flush()
            return
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line.encode(errors="replace"))
            finally:
                os.close(fd)
    return log


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="memexfs-supervisor")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--mountpoint", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--log-file")
    a = p.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # a terminal's ^C is for the daemon, not for us
    return watch(a.pid, a.mountpoint, a.dev, a.fd, _logger(a.log_file))


if __name__ == "__main__":
    sys.exit(main())
