"""Directories: ``opendir``, ``readdir``, ``releasedir``, ``fsyncdir``, and ``statfs``.

The vault root lists the virtual trees' roots (not the control file, reachable by name only)
and never the state folder."""

from __future__ import annotations

import os
import stat

import pyfuse3
from pyfuse3 import FileHandleT, FileNameT, InodeT, RequestContext

from memexfs.errors import BadHandle, NotADirectory
from mount.inodes import ROOT, Node
from mount.names import STATE_DIR
from mount.ops.core import DirHandle, OpsCore


class DirOps(OpsCore):
    async def opendir(self, inode: InodeT, ctx: RequestContext) -> FileHandleT:
        node = self.inodes[inode]
        if node.virtual is not None:
            listed = await self._tree(node).entries(node, ctx)
            entries: list[tuple[bytes, Node | None]] = [(os.fsencode(n), v) for n, v in listed]
            return self._fh(DirHandle(inode, entries))
        if not stat.S_ISDIR(os.fstat(node.fd).st_mode):
            raise NotADirectory("not a folder")
        names = os.listdir(node.proc)
        entries = []
        if inode == ROOT:
            names = [n for n in names if n != STATE_DIR and n not in self.virtual]
            for vname, tree in self.virtual.items():
                if vname.startswith("."):
                    continue  # the control file is reachable by name only
                entries.append((vname.encode(), await tree.lookup(None, vname, ctx)))
        entries.extend((os.fsencode(n), None) for n in names)
        return self._fh(DirHandle(inode, entries))

    async def readdir(self, fh: FileHandleT, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        h = self._handles.get(fh)
        if not isinstance(h, DirHandle):
            raise BadHandle(f"no open folder {fh}")
        parent = self.inodes[h.inode]
        for i in range(start_id, len(h.entries)):
            name, vnode = h.entries[i]
            if vnode is not None:
                attr = await self._tree(vnode).getattr(vnode)
                if not pyfuse3.readdir_reply(token, FileNameT(name), attr, i + 1):
                    return
                vnode.nlookup += 1
                continue
            try:
                node, st = self._lookup_real(parent, name)
            except FileNotFoundError:  # removed since opendir
                continue
            if not pyfuse3.readdir_reply(token, FileNameT(name), self.attrs(node, st), i + 1):
                if node.nlookup <= 0:
                    self.inodes.forget(node.inode, 0)
                return
            node.nlookup += 1

    async def releasedir(self, fh: FileHandleT) -> None:
        self._handles.pop(fh, None)

    async def fsyncdir(self, fh: FileHandleT, datasync: bool) -> None:
        h = self._handles.get(fh)
        if isinstance(h, DirHandle):
            node = self.inodes[h.inode]
            if node.fd >= 0:
                fd = os.open(node.proc, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    async def statfs(self, ctx: RequestContext) -> pyfuse3.StatvfsData:
        sv = os.statvfs(self.root_fd)
        data = pyfuse3.StatvfsData()
        for attr in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                     "f_ffree", "f_favail"):
            setattr(data, attr, getattr(sv, attr))
        data.f_namemax = sv.f_namemax
        return data
