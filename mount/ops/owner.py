"""Who owns what a request makes, and the set-id bits an unprivileged truncating open clears.

The daemon runs as root, so neither happens by itself: a new object would be root's, with the
daemon's umask applied a second time, and root's truncate keeps set-id bits (CAP_FSETID).
"""

from __future__ import annotations

import os
import stat

import pyfuse3
from pyfuse3 import RequestContext

from mount.inodes import Node


def owner_of_new(parent: Node, ctx: RequestContext) -> tuple[int, int]:
    """Owner of a new object: the caller; group from a setgid parent (BSD semantics)."""
    pst = os.fstat(parent.fd)
    gid = pst.st_gid if pst.st_mode & stat.S_ISGID else ctx.gid
    return ctx.uid, gid


def give_to_caller(parent: Node, ctx: RequestContext, mode: int, *,
                   fd: int | None = None, name: bytes = b"") -> None:
    """Make a new object the caller's, with the mode the caller asked for.

    The kernel already applied the caller's umask (and dropped set-id bits the caller may
    not set), so the mode is set explicitly: the daemon's own umask must not apply twice.
    It is set after chown(), which clears set-id bits of files even for root. A new
    directory keeps the S_ISGID it inherited from a setgid parent, as on any Linux fs.
    """
    uid, gid = owner_of_new(parent, ctx)
    st = os.fstat(fd) if fd is not None else os.stat(name, dir_fd=parent.fd,
                                                     follow_symlinks=False)
    if (st.st_uid, st.st_gid) != (uid, gid):
        if fd is not None:
            os.fchown(fd, uid, gid)
        else:
            os.chown(name, uid, gid, dir_fd=parent.fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        return  # a symlink's mode is always 0777
    want = stat.S_IMODE(mode)
    if stat.S_ISDIR(st.st_mode):
        want |= st.st_mode & stat.S_ISGID
    if fd is not None:
        if stat.S_IMODE(os.fstat(fd).st_mode) != want:
            os.fchmod(fd, want)
    elif stat.S_IMODE(os.stat(name, dir_fd=parent.fd, follow_symlinks=False).st_mode) != want:
        # Not following: a name swapped for a symlink in the vault meanwhile is not chmodded.
        os.chmod(name, want, dir_fd=parent.fd, follow_symlinks=False)


def in_group(ctx: RequestContext, gid: int) -> bool:
    if ctx.gid == gid:
        return True
    try:
        return gid in pyfuse3.get_sup_groups(ctx.pid)
    except (OSError, ValueError, RuntimeError):  # the caller is gone: assume not a member
        return False


def truncated_by(fd: int, ctx: RequestContext) -> None:
    """open(O_TRUNC) by an unprivileged caller clears set-id bits, as truncate(2) does.

    libfuse negotiates FUSE_ATOMIC_O_TRUNC, so the kernel leaves the truncate, and with it
    this clearing, to us; we truncate as root (CAP_FSETID), which would keep them. The rule
    is the kernel's (setattr_should_drop_suidgid): S_ISUID always, S_ISGID when group-exec
    is set or the caller is not in the file's group.
    """
    if ctx.uid == 0:
        return
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return
    mode = stat.S_IMODE(st.st_mode)
    kill = mode & stat.S_ISUID
    if mode & stat.S_ISGID and (mode & stat.S_IXGRP or not in_group(ctx, st.st_gid)):
        kill |= stat.S_ISGID
    if kill:
        os.fchmod(fd, mode & ~kill)
