"""``/related/<vault path>/``: folders mirror the vault; a file's folder lists its neighbours.

The caller sees the vault through it only as far as the real tree lets them: search permission
on every folder down to a file, read permission on the file, checked on every lookup (the
kernel's dentries are shared by all users for their timeout).
"""

from __future__ import annotations

import os
import stat
from typing import Any

from pyfuse3 import RequestContext

from memexfs.access import can_reach, can_read
from memexfs.errors import NotFound, PermissionDenied
from mount.inodes import Node
from mount.names import STATE_DIR
from mount.virtual.base import BaseTree, VObj
from mount.virtual.caller import caller_gids


class RelatedTree(BaseTree):
    """``/related/<vault path>/``: folders mirror the vault; a file's folder lists its
    neighbours."""

    name = "related"

    def _run(self, segments: tuple[str, ...]) -> tuple[list[Any], str | None]:
        return self.backend.related("/".join(segments))

    def _real(self, segments: tuple[str, ...]) -> os.stat_result:
        try:
            return os.lstat(os.path.join(self.vault_root, *segments))
        except OSError:
            raise NotFound("/".join(segments)) from None

    def _readable(self, segments: tuple[str, ...], ctx: RequestContext) -> None:
        if not can_read(self.vault_root, "/".join(segments), ctx.uid, caller_gids(ctx)):
            raise PermissionDenied("/".join(segments))

    async def lookup(self, parent: Node | None, name: str, ctx: RequestContext) -> Node:
        if parent is None:
            return self.root()
        obj: VObj = parent.virtual
        if obj.kind == "dir":
            # The kernel's dentry of related/<file> is shared by every user for its timeout:
            # whoever reaches the folder through it must still be allowed to read the file.
            self._readable(obj.segments, ctx)
            return await self._dir_lookup(parent, name, ctx)
        segments = (*obj.segments, name)
        if segments[0] == STATE_DIR:
            raise NotFound("the state folder is not in the mount")
        if not can_reach(self.vault_root, "/".join(segments), ctx.uid, caller_gids(ctx)):
            raise PermissionDenied("/".join(segments))
        st = self._real(segments)
        if stat.S_ISDIR(st.st_mode):
            return self.browse_node(segments)
        if stat.S_ISREG(st.st_mode):
            self._readable(segments, ctx)
            return self.dir_node(segments, ctx.uid)
        raise NotFound(f"{'/'.join(segments)}: not a file or folder")

    async def entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]:
        obj: VObj = node.virtual
        self._readable(obj.segments, ctx)  # for a file's folder: a cached dentry of another user
        if obj.kind == "dir":
            return await self._dir_entries(node, ctx)
        folder = os.path.join(self.vault_root, *obj.segments)
        out = []
        for entry in sorted(os.listdir(folder)):
            if not obj.segments and entry == STATE_DIR:
                continue
            try:
                out.append((entry, await self.lookup(node, entry, ctx)))
            except (NotFound, PermissionDenied):  # not for this caller, or gone meanwhile
                continue
        return out
