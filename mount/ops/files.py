"""Open files: ``open``, ``create``, ``read``, ``write``, ``flush``, ``release``, ``fsync``.

A written file is the index's news at ``release`` (and ``fsync``): one notification per closed
write, not one per ``write``."""

from __future__ import annotations

import os
import stat

from pyfuse3 import (
    EntryAttributes,
    FileHandleT,
    FileInfo,
    FileNameT,
    FlagT,
    InodeT,
    ModeT,
    RequestContext,
)

from memexfs.echo import signature
from memexfs.errors import PermissionDenied, ReadOnly
from mount.names import check_name
from mount.ops.core import DirHandle, Handle, OpsCore
from mount.ops.owner import give_to_caller, truncated_by


def _open_flags(flags: int) -> int:
    # Writeback cache: the kernel may read from write-only handles and does O_APPEND itself.
    # O_NOFOLLOW: the kernel resolved the name already, and /proc/self/fd/N is itself a link.
    flags &= ~(os.O_APPEND | os.O_NOCTTY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
    if flags & os.O_ACCMODE == os.O_WRONLY:
        flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
    return flags | os.O_CLOEXEC


class FileOps(OpsCore):
    async def open(self, inode: InodeT, flags: FlagT, ctx: RequestContext) -> FileInfo:
        node = self.inodes[inode]
        if node.virtual is not None:
            if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
                raise ReadOnly("virtual files are read-only")
            return FileInfo(fh=self._fh(DirHandle(inode, [])), direct_io=True)
        handle = Handle(-1, inode)
        if flags & os.O_TRUNC:
            self._dirty(handle)  # before the open truncates
        try:
            handle.fd = os.open(node.proc, _open_flags(flags))
            if flags & os.O_TRUNC:
                truncated_by(handle.fd, ctx)
        except BaseException:
            if handle.fd >= 0:
                os.close(handle.fd)
            if handle.key is not None:
                self.own.stop_writing(handle.key)
            raise
        return FileInfo(fh=self._fh(handle), keep_cache=True)

    async def create(self, parent_inode: InodeT, name: FileNameT, mode: ModeT, flags: FlagT,
                     ctx: RequestContext) -> tuple[FileInfo, EntryAttributes]:
        check_name(name)
        parent = self._real(parent_inode)
        if self._hidden(parent_inode, name):
            raise PermissionDenied("the state folder's name")
        created = True
        try:
            fd = os.open(name, _open_flags(flags) | os.O_CREAT | os.O_EXCL,
                         stat.S_IMODE(mode), dir_fd=parent.fd)
        except FileExistsError:
            if flags & os.O_EXCL:
                raise
            # Appeared in the vault behind the kernel's back: open it, don't take it over.
            created = False
            fd = os.open(name, _open_flags(flags), dir_fd=parent.fd)
        try:
            if created:
                give_to_caller(parent, ctx, mode, fd=fd)
            elif flags & os.O_TRUNC:
                truncated_by(fd, ctx)
            entry = self._made(parent, name)
        except BaseException:
            os.close(fd)
            raise
        handle = Handle(fd, entry.st_ino)
        self._dirty(handle)
        return FileInfo(fh=self._fh(handle), keep_cache=True), entry

    async def read(self, fh: FileHandleT, off: int, size: int) -> bytes:
        h = self._handles.get(fh)
        if isinstance(h, DirHandle):  # a virtual file (e.g. .results)
            node = self.inodes[h.inode]
            return await self._tree(node).read(node, off, size)
        return os.pread(self._file(fh).fd, size, off)

    async def write(self, fh: FileHandleT, off: int, buf: bytes) -> int:
        h = self._file(fh)
        if h.key is None:
            self._dirty(h)
        return os.pwrite(h.fd, buf, off)

    async def flush(self, fh: FileHandleT) -> None:
        pass

    async def release(self, fh: FileHandleT) -> None:
        h = self._handles.pop(fh, None)
        if not isinstance(h, Handle):
            return
        path = None
        st = None
        try:
            if h.dirty:
                node = self.inodes.nodes.get(h.inode)
                path = self.relpath(node) if node is not None else None
                st = os.fstat(h.fd)
        finally:
            os.close(h.fd)
            if h.key is not None:
                self.own.stop_writing(h.key)
        if st is not None:
            if path:
                self.own.record(path, signature(st))
            else:  # written through a name since unlinked: its other names show the change
                self.own.refresh(signature(st))
        if path:
            self.sink.changed(path)

    async def fsync(self, fh: FileHandleT, datasync: bool) -> None:
        h = self._file(fh)
        if datasync:
            os.fdatasync(h.fd)
        else:
            os.fsync(h.fd)
        if h.dirty:
            node = self.inodes.nodes.get(h.inode)
            path = self.relpath(node) if node is not None else None
            if path:
                self.sink.changed(path)
