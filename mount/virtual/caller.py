"""What the virtual trees learn about the caller beyond the request context: its groups (they
decide what it may see, so listings are cached per uid and groups) and whether the system call
it is in makes a name (FUSE does not pass a lookup's intent)."""

from __future__ import annotations

import os
import platform
from typing import Any

import pyfuse3
from pyfuse3 import RequestContext


def caller_gids(ctx: RequestContext) -> frozenset[int]:
    """The caller's primary and supplementary groups (just the primary one if it is gone)."""
    try:
        groups = pyfuse3.get_sup_groups(ctx.pid)
    except (OSError, ValueError):
        groups = set()
    return frozenset({ctx.gid, *groups})


# System calls that make a name, per machine (see caller_intent): mkdir(2)/mkdirat(2) apart,
# open(2)/openat(2) only with O_CREAT (argument index of the flags), and the rest outright.
_SYSCALLS: dict[str, dict[str, Any]] = {
    "x86_64": {"mkdir": {83, 258}, "open": {2: 1, 257: 2},
               # creat, mknod(at), symlink(at), link(at), rename(at/at2)
               "make": {85, 133, 259, 88, 266, 86, 265, 82, 264, 316}},
    "aarch64": {"mkdir": {34}, "open": {56: 2}, "make": {33, 36, 37, 38, 276}},
}
_SYSCALLS["arm64"] = _SYSCALLS["aarch64"]
_NR = _SYSCALLS.get(platform.machine(), {})


def caller_intent(pid: int) -> str | None:
    """Is the caller's thread inside a system call that makes a name: "mkdir", "create" or None?

    Every name under /q is a query, so the kernel's lookup before ``mkdir /q/<name>`` (or before
    creating a file, a link or a rename target in a query folder) always finds a folder and
    answers EEXIST/EISDIR itself, never asking us. FUSE does not pass the lookup's intent, but the
    caller's current system call is in /proc; when it makes a name, the lookup of a name that is
    not a saved query or a result answers ENOENT, so the kernel goes on to our mkdir (which saves
    the query) or to a create/link/rename (which answer EROFS). A lookup cannot tell the last
    component of the caller's path from the ones before it: a query folder on that path that the
    kernel has not cached yet answers ENOENT too, so such a call fails with ENOENT rather than
    EROFS; either way nothing is written. Where /proc cannot tell, lookups stay positive and
    the kernel answers EEXIST/EISDIR: another arch, openat2(2) (its flags are in a struct /proc
    does not show), or no permission to read the caller's /proc entry (a daemon that is not root
    under Yama's ptrace_scope >= 1).
    """
    if not _NR or pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/syscall", "rb") as f:
            fields = f.read(200).split()
    except OSError:
        return None
    if not fields or not fields[0].isdigit():
        return None
    nr = int(fields[0])
    if nr in _NR["mkdir"]:
        return "mkdir"
    if nr in _NR["make"]:
        return "create"
    flags_at = _NR["open"].get(nr)
    if flags_at is not None and len(fields) > flags_at + 1:
        try:
            flags = int(fields[flags_at + 1], 16)
        except ValueError:
            return None
        return "create" if flags & os.O_CREAT else None
    return None
