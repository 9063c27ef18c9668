"""Namespace changes: ``mknod``, ``mkdir``, ``unlink``, ``rmdir``, ``symlink``, ``rename``,
``link``. Each tells the index what it did to a regular file's name, after it is done."""

from __future__ import annotations

import ctypes
import os
import stat

import pyfuse3
from pyfuse3 import EntryAttributes, FileNameT, FlagT, InodeT, ModeT, RequestContext

from memexfs.errors import AlreadyExists, Busy, InvalidArgument, NotFound, NotPermitted
from mount.names import check_name
from mount.ops.core import OpsCore
from mount.ops.owner import give_to_caller

_libc = ctypes.CDLL(None, use_errno=True)
_RENAME_FLAGS = {pyfuse3.RENAME_NOREPLACE: 1, pyfuse3.RENAME_EXCHANGE: 2}


def _renameat2(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int) -> None:
    if _libc.renameat2(olddirfd, old, newdirfd, new, flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class NamespaceOps(OpsCore):
    async def mknod(self, parent_inode: InodeT, name: FileNameT, mode: ModeT, rdev: int,
                    ctx: RequestContext) -> EntryAttributes:
        check_name(name)
        parent = self._real(parent_inode)
        if self._hidden(parent_inode, name):
            raise NotPermitted("the state folder cannot be replaced")
        os.mknod(name, mode, rdev, dir_fd=parent.fd)
        give_to_caller(parent, ctx, mode, name=name)
        if stat.S_ISREG(mode):
            path = self.relpath(parent, name)
            if path:
                self.sink.changed(path)
        return self._made(parent, name)

    async def mkdir(self, parent_inode: InodeT, name: FileNameT, mode: ModeT,
                    ctx: RequestContext) -> EntryAttributes:
        check_name(name)
        parent = self.inodes[parent_inode]
        if parent.virtual is not None:
            vnode = await self._tree(parent).mkdir(parent, os.fsdecode(name), ctx)
            vnode.nlookup += 1
            return await self._tree(vnode).getattr(vnode)
        if self._hidden(parent_inode, name) or self._mounts(parent_inode, name):
            raise AlreadyExists("a name the mount holds")
        # A new dir inherits S_ISGID from a setgid parent here as on any Linux fs; chown keeps it.
        os.mkdir(name, stat.S_IMODE(mode), dir_fd=parent.fd)
        give_to_caller(parent, ctx, mode, name=name)
        return self._made(parent, name)

    async def unlink(self, parent_inode: InodeT, name: FileNameT, ctx: RequestContext) -> None:
        parent = self._real(parent_inode)
        if self._hidden(parent_inode, name):
            raise NotFound("the state folder is not in the mount")
        st = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
        path = self.relpath(parent, name)
        os.unlink(name, dir_fd=parent.fd)
        if path is not None:
            self._left(parent, name, path)
            self._refresh_links(st)
            if stat.S_ISREG(st.st_mode):
                self.sink.removed(path)

    async def rmdir(self, parent_inode: InodeT, name: FileNameT, ctx: RequestContext) -> None:
        parent = self.inodes[parent_inode]
        if parent.virtual is not None:
            await self._tree(parent).rmdir(parent, os.fsdecode(name), ctx)
            return
        if self._hidden(parent_inode, name):
            raise NotFound("the state folder is not in the mount")
        if self._mounts(parent_inode, name):
            raise Busy("a virtual tree's root")
        path = self.relpath(parent, name)
        os.rmdir(name, dir_fd=parent.fd)
        self._left(parent, name, path)

    async def symlink(self, parent_inode: InodeT, name: FileNameT, target: FileNameT,
                      ctx: RequestContext) -> EntryAttributes:
        check_name(name)
        parent = self._real(parent_inode)
        if self._hidden(parent_inode, name):
            raise AlreadyExists("the state folder's name")
        os.symlink(target, name, dir_fd=parent.fd)
        give_to_caller(parent, ctx, stat.S_IFLNK | 0o777, name=name)
        return self._made(parent, name)

    async def rename(self, parent_inode_old: InodeT, name_old: FileNameT,
                     parent_inode_new: InodeT, name_new: FileNameT, flags: FlagT,
                     ctx: RequestContext) -> None:
        check_name(name_new)
        old_p = self._real(parent_inode_old)
        new_p = self._real(parent_inode_new)
        for p, n in ((parent_inode_old, name_old), (parent_inode_new, name_new)):
            if self._hidden(p, n) or self._mounts(p, n):
                raise Busy("a name the mount holds")
        old_path = self.relpath(old_p, name_old)
        new_path = self.relpath(new_p, name_new)
        st_new: os.stat_result | None = None
        try:
            st_new = os.stat(name_new, dir_fd=new_p.fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        if flags:
            if flags & ~(pyfuse3.RENAME_NOREPLACE | pyfuse3.RENAME_EXCHANGE):
                raise InvalidArgument(f"unknown rename flags {flags:#x}")
            code = 0
            for flag, value in _RENAME_FLAGS.items():
                if flags & flag:
                    code |= value
            _renameat2(old_p.fd, name_old, new_p.fd, name_new, code)
        else:
            os.rename(name_old, name_new, src_dir_fd=old_p.fd, dst_dir_fd=new_p.fd)
        self._left(old_p, name_old, old_path)
        self._left(new_p, name_new, new_path)
        if st_new is not None and not flags & pyfuse3.RENAME_EXCHANGE:
            self._refresh_links(st_new)  # replaced: its other names lost a link
        if old_path is None or new_path is None:
            return
        if flags & pyfuse3.RENAME_EXCHANGE:
            self.sink.exchanged(old_path, new_path)
            return
        if st_new is not None and stat.S_ISREG(st_new.st_mode):
            self.sink.removed(new_path)
        self.sink.moved(old_path, new_path)

    async def link(self, inode: InodeT, new_parent_inode: InodeT, new_name: FileNameT,
                   ctx: RequestContext) -> EntryAttributes:
        check_name(new_name)
        node = self._real(inode)
        parent = self._real(new_parent_inode)
        if self._hidden(new_parent_inode, new_name):
            raise AlreadyExists("the state folder's name")
        os.link(node.proc, new_name, dst_dir_fd=parent.fd, follow_symlinks=True)
        self._left_node(node)  # its ctime and link count changed too
        made = self._made(parent, new_name)
        path = self.relpath(parent, new_name)
        if path and node.kind == stat.S_IFREG:  # a new name to find the file by
            self.sink.changed(path)
        return made
