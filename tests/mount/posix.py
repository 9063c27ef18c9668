"""Helpers to run one file operation on two trees and compare what a program would observe."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Callable
from typing import Any

_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                            ctypes.c_uint]

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def renameat2(old: os.PathLike[str] | str, new: os.PathLike[str] | str, flags: int) -> None:
    """renameat2(2): Python has no wrapper, and RENAME_NOREPLACE/EXCHANGE need it."""
    if _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(old))


def utimensat(path: os.PathLike[str] | str, atime: tuple[int, int], mtime: tuple[int, int],
              follow: bool = True) -> None:
    """utimensat(2) with raw timespecs, so UTIME_NOW/UTIME_OMIT can be passed (os.utime can't)."""
    times = (_Timespec * 2)(_Timespec(*atime), _Timespec(*mtime))
    flags = 0 if follow else 0x100  # AT_SYMLINK_NOFOLLOW
    if _libc.utimensat(AT_FDCWD, os.fsencode(path), times, flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(path))


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """("ok", value) or ("err", "ENOENT"): what a caller sees, comparable across trees."""
    try:
        return ("ok", fn(*args, **kwargs))
    except OSError as exc:
        return ("err", errno.errorcode.get(exc.errno or 0, str(exc.errno)))


def stat_sig(st: os.stat_result) -> tuple[Any, ...]:
    """The attributes a passthrough must reproduce exactly (inode numbers and times differ)."""
    size = None if stat.S_ISDIR(st.st_mode) else st.st_size
    return (stat.S_IFMT(st.st_mode), oct(stat.S_IMODE(st.st_mode)), size, st.st_nlink,
            st.st_uid, st.st_gid)


def lstat_sig(path: os.PathLike[str] | str) -> tuple[str, Any]:
    return outcome(lambda: stat_sig(os.lstat(path)))


def tree_snapshot(root: os.PathLike[str] | str) -> dict[str, Any]:
    """Every entry under ``root``: its lstat signature, file bytes or link target."""
    out: dict[str, Any] = {}
    root = os.fspath(root)
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    body: Any = f.read()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(full)
            else:
                body = None
            out[rel] = (stat_sig(st), body)
    return out
