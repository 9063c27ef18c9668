"""Every kernel-cache invalidation the mount asks for: the one module that calls pyfuse3's.

Two kinds, with different rules:

- ``drop_entry``: a cached name. Always through pyfuse3's notify thread (``_async``), never
  from a handler directly: the kernel takes the parent directory's lock for it, which a pending
  request may hold. The call only queues, so it cannot fail here; the notify thread logs what the
  kernel refused (``mount.daemon`` turns its ENOENT/ENOTDIR into DEBUG: no such entry is what we
  wanted).
- ``drop_inode``: cached attributes and pages of an object. Synchronous. For a real file the
  kernel may first write back dirty pages, requests served by this very loop, so real inodes are
  dropped from a worker thread (``drop_inodes``); virtual nodes have no pages. A refusal means the
  kernel holds no such inode any more: nothing to drop.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyfuse3
from pyfuse3 import FileNameT, InodeT


def drop_entry(parent: int, name: bytes) -> None:
    """Ask the kernel to forget the name ``name`` in ``parent`` (safe from any thread)."""
    pyfuse3.invalidate_entry_async(InodeT(parent), FileNameT(name), ignore_enoent=True)


def drop_inode(inode: int) -> None:
    """Drop the kernel's cached attributes (and pages) of ``inode``."""
    try:
        pyfuse3.invalidate_inode(InodeT(inode))
    except (OSError, pyfuse3.FUSEError):
        pass


def drop_inodes(inodes: Iterable[int]) -> None:
    """``drop_inode`` for each; run it in a worker thread for real files (see above)."""
    for inode in inodes:
        drop_inode(inode)
