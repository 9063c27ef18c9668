"""Domain errors and the one table that maps them to errno.

Everything below the FUSE layer raises these (or OSError); ``mount.boundary`` turns them into
``FUSEError`` with the errno below. Anything else becomes EIO, logged with its traceback. The
mount chooses an errno nowhere else: a handler says *what* went wrong by the class it raises.
"""

from __future__ import annotations

import errno


class MemexError(Exception):
    """Base of all MemexFS errors; ``errno`` is what a FUSE caller sees."""

    errno = errno.EIO


class NotFound(MemexError):
    errno = errno.ENOENT


class AlreadyExists(MemexError):
    errno = errno.EEXIST


class NotADirectory(MemexError):
    errno = errno.ENOTDIR


class IsADirectory(MemexError):
    errno = errno.EISDIR


class ReadOnly(MemexError):
    errno = errno.EROFS


class PermissionDenied(MemexError):
    """The caller may not reach or read this (EACCES)."""

    errno = errno.EACCES


class NotPermitted(MemexError):
    """No caller may do this, whatever their rights (EPERM): e.g. set an index xattr."""

    errno = errno.EPERM


class Busy(MemexError):
    """In use: a name the mount itself holds (a virtual root, the state folder), a vault."""

    errno = errno.EBUSY


class InvalidArgument(MemexError):
    errno = errno.EINVAL


class BadQuery(InvalidArgument):
    """A /q name that cannot be parsed (bad filter value, control characters, too long)."""


class NameTooLong(MemexError):
    errno = errno.ENAMETOOLONG


class NoAttribute(MemexError):
    """No such extended attribute: ENOATTR, which Linux spells ENODATA (as pyfuse3.ENOATTR)."""

    errno = errno.ENODATA


class NotSupported(MemexError):
    errno = errno.EOPNOTSUPP


class BadHandle(MemexError):
    """A file handle the mount never gave out, or one already released."""

    errno = errno.EBADF


class IndexUnavailable(MemexError):
    """The index (Qdrant or the encoder) is down or too slow; plain files keep working."""

    errno = errno.EIO


class IndexFull(IndexUnavailable):
    """The index's file system is below its free-space reserve: writes are refused before the
    engine sees them (Qdrant Edge dies by SIGBUS when its mmapped files hit a full disk)."""

    errno = errno.ENOSPC


class VaultLocked(Busy):
    """Another daemon already serves this vault."""


def errno_of(exc: BaseException) -> int | None:
    """The errno a caller should see for ``exc``, or None when it is a bug (-> EIO + log)."""
    if isinstance(exc, MemexError):
        return exc.errno
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return None
