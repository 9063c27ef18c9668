"""Step interpreter for the conformance layer, and the child that runs steps as another user.

A conformance check is data: a list of steps such as ``("rename", "a", "b")`` with paths relative
to a test folder. The same steps run on the mount and on the reference folder, in the pytest
process for root and in a child started with ``python -m tests.mount.conformance_runner`` for any
other user (it reads a pickled request on stdin, drops to the user's ids, answers on stdout), so
pytest itself never changes credentials. Each step's result is ``posix.outcome``'s: comparable
across filesystems (no descriptor numbers, no absolute times).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.mount.posix import UTIME_NOW, UTIME_OMIT, outcome, renameat2, stat_sig, utimensat
from tests.waiting import eventually, wait_until

Step = tuple[Any, ...]
REPO = Path(__file__).resolve().parents[2]
RECENT_S = 60  # a time within this many seconds of now reads as "recent" (UTIME_NOW, writes)
POLL_S = 10.0  # how long a wait_* step polls for an outside change to show through the mount


@dataclass
class Place:
    """Where steps run: ``root`` (what the caller sees) and ``backing`` (the vault folder behind
    the mount, or ``root`` itself for the reference), for steps that change things around it."""

    root: str
    backing: str
    ctl: str | None = None  # the mount's control file (None for the reference)
    slots: dict[str, int] = field(default_factory=dict)  # named open descriptors

    def p(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def b(self, rel: str) -> str:
        return os.path.join(self.backing, rel) if rel else self.backing

    def close_all(self) -> None:
        for fd in self.slots.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.slots.clear()


def _timespec(spec: int | str) -> tuple[int, int]:
    if spec == "now":
        return (0, UTIME_NOW)
    if spec == "omit":
        return (0, UTIME_OMIT)
    assert isinstance(spec, int)
    return divmod(spec, 1_000_000_000)


def _when(ns: int) -> int | str:
    """Exact times stay exact; a time set by the kernel "now" can't match across trees."""
    return "recent" if abs(ns - time.time_ns()) < RECENT_S * 1_000_000_000 else ns


def _create(pl: Place, path: str, mode: int = 0o644, body: bytes = b"") -> int:
    fd = os.open(pl.p(path), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    try:
        return os.write(fd, body)
    finally:
        os.close(fd)


def _open(pl: Place, path: str, flags: int, mode: int = 0o666, slot: str | None = None) -> None:
    fd = os.open(pl.p(path), flags, mode)
    if slot is None:
        os.close(fd)
    else:
        pl.slots[slot] = fd


def _write_file(pl: Place, path: str, data: bytes, flags: int = 0) -> int:
    fd = os.open(pl.p(path), os.O_WRONLY | flags)
    try:
        return os.write(fd, data)
    finally:
        os.close(fd)


def _read_file(pl: Place, path: str) -> bytes:
    with open(pl.p(path), "rb") as f:
        return f.read()


def _times(pl: Place, path: str, follow: bool = True) -> tuple[int | str, int | str]:
    st = os.stat(pl.p(path), follow_symlinks=follow)
    return _when(st.st_atime_ns), _when(st.st_mtime_ns)


def _wait(pl: Place, path: str, pred: Callable[[os.stat_result], bool]) -> bool:
    """Poll the caller's view until an outside change shows (the watcher's invalidation)."""

    def shows() -> bool:
        try:
            return pred(os.lstat(pl.p(path)))
        except FileNotFoundError:
            return False

    return eventually(shows, POLL_S)


def _wait_gone(pl: Place, path: str) -> bool:
    return eventually(lambda: not os.path.lexists(pl.p(path)), POLL_S)


def _ino_same(pl: Place, a: str, b: str) -> bool:
    return os.lstat(pl.p(a)).st_ino == os.lstat(pl.p(b)).st_ino


def _fd_ino_matches(pl: Place, slot: str, path: str) -> bool:
    return os.fstat(pl.slots[slot]).st_ino == os.lstat(pl.p(path)).st_ino


def _index_idle(pl: Place) -> None:
    """Let the mount's indexer finish what it queued (a no-op on the reference): whatever it
    does to the files must not show. Root only (the control file is owner-only)."""
    ctl = pl.ctl
    if ctl is None:
        return

    def stats() -> dict[str, Any]:
        return dict(json.loads(os.getxattr(ctl, "user.memex.stats")))

    def idle() -> bool:
        st = stats()
        return st["state"] in ("idle", "error") and not st["queued"]

    wait_until(idle, 120, lambda: f"the index to be idle: {stats()}")


def _bind(pl: Place, src: str, path: str) -> None:
    subprocess.run(["mount", "--bind", pl.p(src), pl.p(path)], check=True, capture_output=True,
                   timeout=30)


def _umount(pl: Place, path: str) -> None:
    subprocess.run(["umount", pl.p(path)], check=True, capture_output=True, timeout=30)


OPS: dict[str, Callable[..., Any]] = {
    # contents and descriptors
    "create": _create,
    "open": _open,
    "close": lambda pl, slot: os.close(pl.slots.pop(slot)),
    "write": lambda pl, slot, data: os.write(pl.slots[slot], data),
    "pwrite": lambda pl, slot, data, off: os.pwrite(pl.slots[slot], data, off),
    "pread": lambda pl, slot, n, off=0: os.pread(pl.slots[slot], n, off),
    "ftruncate": lambda pl, slot, size: os.ftruncate(pl.slots[slot], size),
    "fstat": lambda pl, slot: stat_sig(os.fstat(pl.slots[slot])),
    "fchmod": lambda pl, slot, mode: os.fchmod(pl.slots[slot], mode),
    "fchown": lambda pl, slot, uid, gid: os.fchown(pl.slots[slot], uid, gid),
    "fd_ino_matches": _fd_ino_matches,
    "write_file": _write_file,
    "read_file": _read_file,
    "truncate": lambda pl, path, size: os.truncate(pl.p(path), size),
    # namespace
    "rename": lambda pl, a, b: os.rename(pl.p(a), pl.p(b)),
    "renameat2": lambda pl, a, b, flags: renameat2(pl.p(a), pl.p(b), flags),
    "unlink": lambda pl, path: os.unlink(pl.p(path)),
    "rmdir": lambda pl, path: os.rmdir(pl.p(path)),
    "mkdir": lambda pl, path, mode=0o777: os.mkdir(pl.p(path), mode),
    "mkfifo": lambda pl, path, mode=0o666: os.mkfifo(pl.p(path), mode),
    "link": lambda pl, a, b, follow=False: os.link(pl.p(a), pl.p(b), follow_symlinks=follow),
    "symlink": lambda pl, target, path: os.symlink(target, pl.p(path)),
    "readlink": lambda pl, path: os.readlink(pl.p(path)),
    "listdir": lambda pl, path: sorted(os.listdir(pl.p(path))),
    # attributes
    "chmod": lambda pl, path, mode: os.chmod(pl.p(path), mode),
    "chown": lambda pl, path, uid, gid: os.chown(pl.p(path), uid, gid),
    "lchown": lambda pl, path, uid, gid: os.chown(pl.p(path), uid, gid, follow_symlinks=False),
    "utimens": lambda pl, path, a, m, follow=True: utimensat(pl.p(path), _timespec(a),
                                                             _timespec(m), follow),
    "utime_null": lambda pl, path: os.utime(pl.p(path)),
    "times": _times,
    "stat": lambda pl, path: stat_sig(os.stat(pl.p(path))),
    "lstat": lambda pl, path: stat_sig(os.lstat(pl.p(path))),
    "mode": lambda pl, path: oct(stat.S_IMODE(os.lstat(pl.p(path)).st_mode)),
    "owner": lambda pl, path: (os.lstat(pl.p(path)).st_uid, os.lstat(pl.p(path)).st_gid),
    "nlink": lambda pl, path: os.lstat(pl.p(path)).st_nlink,
    "ino_same": _ino_same,
    "access": lambda pl, path, mode: os.access(pl.p(path), mode),
    "umask": lambda pl, mask: os.umask(mask),
    # around the mount (the vault itself) and root-only plumbing
    "vault_chmod": lambda pl, path, mode: os.chmod(pl.b(path), mode),
    "vault_write": lambda pl, path, data: _write_file(Place(pl.backing, pl.backing), path, data),
    "vault_rename": lambda pl, a, b: os.rename(pl.b(a), pl.b(b)),
    # what the next getattr will report once the kernel's attribute cache (5 s) lets it through
    "vault_times": lambda pl, path: _times(Place(pl.backing, pl.backing), path),
    "wait_mode": lambda pl, path, mode: _wait(pl, path, lambda s: stat.S_IMODE(s.st_mode) == mode),
    "wait_size": lambda pl, path, size: _wait(pl, path, lambda s: s.st_size == size),
    "wait_exists": lambda pl, path: _wait(pl, path, lambda s: True),
    "wait_gone": _wait_gone,
    "index_idle": _index_idle,
    "bind": _bind,
    "umount": _umount,
}


def run_steps(place: Place, steps: list[Step]) -> list[tuple[str, Any]]:
    """Every step's outcome, in order; a failing step does not stop the ones after it."""
    results = []
    try:
        for op, *args in steps:
            results.append(outcome(OPS[op], place, *args))
    finally:
        place.close_all()
    return results


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@dataclass(frozen=True)
class Actor:
    """Who runs a check's steps: root in-process, anyone else in a child process."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...] = ()

    def run(self, jobs: list[tuple[Place, list[Step]]], mask: int = 0o022,
            timeout: float = 60.0) -> list[list[tuple[str, Any]]]:
        if self.uid == 0:
            with umask(mask):
                return [run_steps(pl, steps) for pl, steps in jobs]
        request = pickle.dumps({"uid": self.uid, "gid": self.gid, "groups": self.groups,
                                "umask": mask, "jobs": jobs})
        proc = subprocess.run([sys.executable, "-m", "tests.mount.conformance_runner"],
                              input=request, capture_output=True, timeout=timeout, cwd=REPO,
                              check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"runner failed ({proc.returncode}): {proc.stderr.decode()}")
        answer: list[list[tuple[str, Any]]] = pickle.loads(proc.stdout)
        return answer


def main() -> int:
    """Child side: read the request (as root), drop to the user, run, answer on stdout."""
    req = pickle.loads(sys.stdin.buffer.read())
    os.setgroups(list(req["groups"]))
    os.setgid(req["gid"])
    os.setuid(req["uid"])
    os.umask(req["umask"])
    answer = [run_steps(pl, steps) for pl, steps in req["jobs"]]
    sys.stdout.buffer.write(pickle.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
