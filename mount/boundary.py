"""The one error boundary: every FUSE handler runs inside it.

pyfuse3 ends the whole mount on any exception that is not ``FUSEError``, so each handler is wrapped:
domain errors and ``OSError`` become their errno (the one table, in ``memexfs.errors``: handlers
raise what went wrong, never an errno); anything else is a bug, logged with its traceback, and
answered with EIO — the mount stays up.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pyfuse3

from memexfs.errors import errno_of

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def guarded(fn: F) -> F:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except BaseException as exc:
            if not isinstance(exc, Exception):  # trio.Cancelled, KeyboardInterrupt: not ours
                raise
            code = errno_of(exc)
            if code is None:
                log.exception("%s failed unexpectedly; answering EIO", fn.__name__)
                code = errno.EIO
            raise pyfuse3.FUSEError(code) from None

    return wrapper  # type: ignore[return-value]


HANDLERS = (
    "lookup", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir", "symlink",
    "rename", "link", "open", "read", "write", "flush", "release", "fsync", "opendir", "readdir",
    "releasedir", "fsyncdir", "statfs", "setxattr", "getxattr", "listxattr", "removexattr",
    "access", "create",
)


def _own(cls: type, name: str) -> Any:
    """The class's implementation of handler ``name``, on it or on one of its handler groups;
    None where only pyfuse3's default (ENOSYS) answers."""
    for klass in cls.__mro__:
        if klass is pyfuse3.Operations:
            return None
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def guard_all(cls: type) -> type:
    """Wrap every FUSE handler the class implements; ``forget`` gets its own never-raise
    wrapper."""
    for name in HANDLERS:
        fn = _own(cls, name)
        if fn is not None:
            setattr(cls, name, guarded(fn))
    inner = _own(cls, "forget")
    if inner is not None:

        @functools.wraps(inner)
        async def forget(*args: Any, **kwargs: Any) -> None:
            try:
                await inner(*args, **kwargs)
            except Exception:  # forget may not fail: the kernel never hears an answer
                log.exception("forget failed")

        cls.forget = forget  # type: ignore[attr-defined]
    return cls
