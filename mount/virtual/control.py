"""``/.memexfs``: a hidden, owner-only file whose xattrs report and steer the index."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from typing import Any

from pyfuse3 import EntryAttributes, InodeT, ModeT, RequestContext

from memexfs.errors import InvalidArgument, NoAttribute, NotADirectory
from mount.inodes import InodeTable, Node
from mount.virtual.base import VObj


class ControlTree:
    """``/.memexfs``: a hidden, owner-only file whose xattrs report and steer the index.

    ``getfattr -n user.memex.stats`` gives the indexer's JSON stats; ``user.memex.idle`` is "1" when
    nothing is queued; ``setfattr -n user.memex.reindex -v PATH`` queues a file again.
    """

    def __init__(self, inodes: InodeTable, stats: Callable[[], dict[str, Any]],
                 idle: Callable[[], bool], reindex: Callable[[str], None],
                 owner: tuple[int, int]) -> None:
        self.inodes = inodes
        self.stats = stats
        self.idle = idle
        self.reindex = reindex
        self.uid, self.gid = owner
        self._node: Node | None = None

    async def lookup(self, parent: Node | None, name: str, ctx: RequestContext) -> Node:
        if self._node is None or self._node.inode not in self.inodes.nodes:
            self._node = self.inodes.add_virtual(VObj(self, "ctl"))
            self._node.extra["pinned"] = True
        return self._node

    async def getattr(self, node: Node) -> EntryAttributes:
        e = EntryAttributes()
        e.st_ino = InodeT(node.inode)
        e.st_mode = ModeT(stat.S_IFREG | 0o600)
        e.st_uid, e.st_gid = self.uid, self.gid
        e.st_nlink = 1
        e.entry_timeout = e.attr_timeout = 0
        now = time.time_ns()
        e.st_atime_ns = e.st_mtime_ns = e.st_ctime_ns = now
        return e

    async def entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]:
        raise NotADirectory("the control file is a file")

    async def readlink(self, node: Node) -> bytes:
        raise InvalidArgument("not a symlink")

    async def read(self, node: Node, off: int, size: int) -> bytes:
        return (json.dumps(self.stats(), indent=2) + "\n").encode()[off:off + size]

    async def getxattr(self, node: Node, name: str) -> bytes:
        if name == "user.memex.stats":
            return json.dumps(self.stats()).encode()
        if name == "user.memex.idle":
            return b"1" if self.idle() else b"0"
        raise NoAttribute(name)

    async def listxattr(self, node: Node) -> list[bytes]:
        return [b"user.memex.stats", b"user.memex.idle"]

    async def setxattr(self, node: Node, name: str, value: bytes) -> None:
        if name == "user.memex.reindex":
            self.reindex(os.fsdecode(value))
            return
        raise InvalidArgument(f"{name}: the control file takes user.memex.reindex only")

    async def mkdir(self, node: Node, name: str, ctx: RequestContext) -> Node:
        raise NotADirectory("the control file is a file")

    async def rmdir(self, node: Node, name: str, ctx: RequestContext) -> None:
        raise NotADirectory("the control file is a file")
