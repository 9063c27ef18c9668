"""Lookup and attributes: ``lookup``, ``forget``, ``getattr``, ``setattr``, ``readlink``,
``access``."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from pyfuse3 import (
    EntryAttributes,
    FileHandleT,
    FileNameT,
    InodeT,
    ModeT,
    RequestContext,
    SetattrFields,
)

from memexfs.errors import NotFound, NotSupported
from mount.inodes import ROOT, Node
from mount.names import check_name
from mount.ops.core import DirHandle, Handle, OpsCore


class AttrOps(OpsCore):
    async def lookup(self, parent_inode: InodeT, name: FileNameT,
                     ctx: RequestContext) -> EntryAttributes:
        check_name(name)
        parent = self.inodes[parent_inode]
        if parent.virtual is not None:
            vnode = await self._tree(parent).lookup(parent, os.fsdecode(name), ctx)
            vnode.nlookup += 1
            return await self._tree(vnode).getattr(vnode)
        if parent_inode == ROOT:
            tree = self.virtual.get(os.fsdecode(name))
            if tree is not None:
                vnode = await tree.lookup(None, os.fsdecode(name), ctx)
                vnode.nlookup += 1
                return await tree.getattr(vnode)
        if self._hidden(parent_inode, name):
            raise NotFound("the state folder is not in the mount")
        return self._entry(parent, name)

    async def forget(self, inode_list: Sequence[tuple[InodeT, int]]) -> None:
        for inode, count in inode_list:
            self.inodes.forget(inode, count)

    async def getattr(self, inode: InodeT, ctx: RequestContext) -> EntryAttributes:
        node = self.inodes[inode]
        if node.virtual is not None:
            return await self._tree(node).getattr(node)
        return self.attrs(node)

    async def setattr(self, inode: InodeT, attr: EntryAttributes, fields: SetattrFields,
                      fh: FileHandleT | None, ctx: RequestContext) -> EntryAttributes:
        node = self._real(inode)
        handle = self._handles.get(fh) if fh is not None else None
        try:
            self._setattr(node, attr, fields, handle)
        finally:  # even a partial change is ours (truncated, then chmod refused)
            st = self._left_node(node)
        return self.attrs(node, st)

    def _setattr(self, node: Node, attr: EntryAttributes, fields: SetattrFields,
                 handle: Handle | DirHandle | None) -> None:
        is_link = node.kind == stat.S_IFLNK
        if fields.update_size:
            if isinstance(handle, Handle):
                self._dirty(handle)
                os.ftruncate(handle.fd, attr.st_size)
            else:
                os.truncate(node.proc, attr.st_size)
                path = self.relpath(node)
                if path:
                    self.sink.changed(path)
        if fields.update_mode:
            if is_link:
                raise NotSupported("a symlink has no mode of its own")
            os.chmod(node.proc, stat.S_IMODE(attr.st_mode))
        if fields.update_uid or fields.update_gid:
            uid = attr.st_uid if fields.update_uid else -1
            gid = attr.st_gid if fields.update_gid else -1
            if is_link:
                full = os.readlink(node.proc)
                os.chown(full, uid, gid, follow_symlinks=False)
            else:
                os.chown(node.proc, uid, gid)
        if fields.update_atime or fields.update_mtime:
            cur = os.stat(node.fd)
            atime = attr.st_atime_ns if fields.update_atime else cur.st_atime_ns
            mtime = attr.st_mtime_ns if fields.update_mtime else cur.st_mtime_ns
            if is_link:
                os.utime(os.readlink(node.proc), ns=(atime, mtime), follow_symlinks=False)
            else:
                os.utime(node.proc, ns=(atime, mtime))

    async def readlink(self, inode: InodeT, ctx: RequestContext) -> FileNameT:
        node = self.inodes[inode]
        if node.virtual is not None:
            return FileNameT(await self._tree(node).readlink(node))
        return FileNameT(os.fsencode(os.readlink(b"", dir_fd=node.fd)))

    async def access(self, inode: InodeT, mode: ModeT, ctx: RequestContext) -> bool:
        # Only reached without default_permissions; we always mount with it.
        return True
