"""Domain errors and the one table that maps them to errno.

Everything below the FUSE layer raises these (or OSError); ``mount.boundary`` turns them into
``FUSEError`` with the errno below. Anything else becomes EIO, logged with its traceback.
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


class NotEmpty(MemexError):
    errno = errno.ENOTEMPTY


class ReadOnly(MemexError):
    errno = errno.EROFS


class BadQuery(MemexError):
    """A /q name that cannot be parsed (bad filter value, control characters, too long)."""

    errno = errno.EINVAL


class NameTooLong(MemexError):
    errno = errno.ENAMETOOLONG


class PermissionDenied(MemexError):
    errno = errno.EACCES


class IndexUnavailable(MemexError):
    """The index (Qdrant or the encoder) is down or too slow; plain files keep working."""

    errno = errno.EIO


class IndexFull(IndexUnavailable):
    """The index's file system is below its free-space reserve: writes are refused before the
    engine sees them (Qdrant Edge dies by SIGBUS when its mmapped files hit a full disk)."""

    errno = errno.ENOSPC


class VaultLocked(MemexError):
    """Another daemon already serves this vault."""

    errno = errno.EBUSY


def errno_of(exc: BaseException) -> int | None:
    """The errno a caller should see for ``exc``, or None when it is a bug (-> EIO + log)."""
    if isinstance(exc, MemexError):
        return exc.errno
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    return None
