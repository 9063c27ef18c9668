"""FUSE operations: the real vault tree passed through, plus the virtual namespaces.

Only operations live here (S3QL's split): wiring is in ``mount.daemon``; the index is reached
through the ``IndexSink`` protocol (non-blocking notifications) and virtual folders through
``VirtualTree``. Every handler runs inside ``mount.boundary``'s error boundary.

File I/O on the vault runs directly on the trio thread, as in pyfuse3's passthrough example: a
local ``pread``/``pwrite`` is shorter than a thread hand-off. Nothing here calls Qdrant or the
encoder.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import stat
from collections.abc import Sequence
from typing import Any, Protocol

import pyfuse3
from pyfuse3 import (
    EntryAttributes,
    FileHandleT,
    FileInfo,
    FileNameT,
    FlagT,
    InodeT,
    ModeT,
    RequestContext,
    SetattrFields,
    XAttrNameT,
)

from memexfs.echo import OwnChanges, lstat_signature, signature
from memexfs.fields_memory import SHOWN, DocFields
from mount.boundary import guard_all
from mount.inodes import ROOT, InodeTable, Node

log = logging.getLogger(__name__)

STATE_DIR = ".memexfs"
STATUS_XATTR = b"user.memex.status"
ERROR_XATTR = b"user.memex.error"  # why a file is failed or metadata-only (one line)
WARNINGS_XATTR = b"user.memex.warnings"  # what extraction noted (one line per warning)
# user.memex.kind, .vendor, .amount, .currency, .due, .date, .payment: the extracted fields
FIELD_XATTRS = {b"user.memex." + name.encode(): name for name in SHOWN}
# served by the index, never stored on the file
INDEX_XATTRS = frozenset((STATUS_XATTR, ERROR_XATTR, WARNINGS_XATTR, *FIELD_XATTRS))
NAME_MAX = 255


class IndexSink(Protocol):
    """What the mount tells the index. Calls must return at once (they only enqueue).

    ``own`` learns what every request left in the vault, so the vault watcher does not echo our
    own changes back as outside ones (``memexfs.echo``).
    """

    own: OwnChanges

    def changed(self, path: str) -> None: ...
    def removed(self, path: str) -> None: ...
    def moved(self, old: str, new: str) -> None: ...
    def status_of(self, path: str) -> str | None: ...
    def error_of(self, path: str) -> str | None: ...
    def fields_of(self, path: str) -> DocFields | None: ...
    def warnings_of(self, path: str) -> tuple[str, ...]: ...


class NullSink:
    def __init__(self) -> None:
        self.own = OwnChanges()

    def changed(self, path: str) -> None:
        pass

    def removed(self, path: str) -> None:
        pass

    def moved(self, old: str, new: str) -> None:
        pass

    def status_of(self, path: str) -> str | None:
        return None

    def error_of(self, path: str) -> str | None:
        return None

    def fields_of(self, path: str) -> DocFields | None:
        return None

    def warnings_of(self, path: str) -> tuple[str, ...]:
        return ()


class VirtualTree(Protocol):
    """A namespace mounted at a root name (``q``, ``related``). See ``mount.virtual``."""

    async def lookup(self, node: Node | None, name: str, ctx: RequestContext) -> Node: ...
    async def getattr(self, node: Node) -> EntryAttributes: ...
    async def entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]: ...
    async def readlink(self, node: Node) -> bytes: ...
    async def read(self, node: Node, off: int, size: int) -> bytes: ...
    async def getxattr(self, node: Node, name: str) -> bytes: ...
    async def listxattr(self, node: Node) -> list[bytes]: ...
    async def mkdir(self, node: Node, name: str, ctx: RequestContext) -> Node: ...
    async def rmdir(self, node: Node, name: str, ctx: RequestContext) -> None: ...


_libc = ctypes.CDLL(None, use_errno=True)
_RENAME_FLAGS = {pyfuse3.RENAME_NOREPLACE: 1, pyfuse3.RENAME_EXCHANGE: 2}


def _renameat2(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int) -> None:
    if _libc.renameat2(olddirfd, old, newdirfd, new, flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _fuse(code: int) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(code)


def _check_name(name: bytes) -> None:
    if len(name) > NAME_MAX:
        raise _fuse(errno.ENAMETOOLONG)


class Handle:
    """An open regular file: the real descriptor, whether it was written, and the vault object
    it writes (registered with ``OwnChanges`` from the first write until release)."""

    __slots__ = ("fd", "inode", "dirty", "key")

    def __init__(self, fd: int, inode: int) -> None:
        self.fd = fd
        self.inode = inode
        self.dirty = False
        self.key: tuple[int, int] | None = None


class DirHandle:
    __slots__ = ("inode", "entries")

    def __init__(self, inode: int, entries: list[tuple[bytes, Node | None]]) -> None:
        self.inode = inode
        self.entries = entries


@guard_all
class MemexOperations(pyfuse3.Operations):
    supports_dot_lookup = False
    enable_writeback_cache = True

    def __init__(
        self,
        vault_root: str,
        sink: IndexSink | None = None,
        virtual: dict[str, VirtualTree] | None = None,
        entry_timeout: float = 5.0,
        attr_timeout: float = 5.0,
    ) -> None:
        super().__init__()
        self.vault_root = os.path.realpath(vault_root)
        self._root_prefix = self.vault_root.rstrip("/") + "/"
        self.root_fd = os.open(self.vault_root, os.O_PATH | os.O_DIRECTORY)
        self.inodes = InodeTable(self.root_fd)
        self.sink: IndexSink = sink or NullSink()
        self.own = self.sink.own
        self.virtual: dict[str, VirtualTree] = virtual or {}
        self.entry_timeout = entry_timeout
        self.attr_timeout = attr_timeout
        self._handles: dict[int, Handle | DirHandle] = {}
        self._next_fh = 1

    # ------------------------------------------------------------------ helpers
    def _fh(self, obj: Handle | DirHandle) -> FileHandleT:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = obj
        return FileHandleT(fh)

    def _file(self, fh: int) -> Handle:
        h = self._handles.get(fh)
        if not isinstance(h, Handle):
            raise _fuse(errno.EBADF)
        return h

    def _real(self, inode: int) -> Node:
        node = self.inodes[inode]
        if node.fd < 0:
            raise _fuse(errno.EROFS if node.virtual is not None else errno.ENOENT)
        return node

    def relpath(self, node: Node, name: bytes | None = None) -> str | None:
        """Vault-relative path of a node (and child name), or None if outside/deleted."""
        try:
            full = os.readlink(node.proc)
        except OSError:
            return None
        if full.endswith(" (deleted)"):
            return None
        if name is not None:
            full = os.path.join(full, os.fsdecode(name))
        # The kernel's link target is canonical, so a prefix test suffices (os.path.relpath
        # normalises both sides and cost ~50 us on every release of a written file).
        if full == self.vault_root:
            return ""
        if full.startswith(self._root_prefix):
            return full[len(self._root_prefix):]
        return None

    def _hidden(self, parent: int, name: bytes) -> bool:
        return parent == ROOT and name == STATE_DIR.encode()

    def attrs(self, node: Node, st: os.stat_result | None = None) -> EntryAttributes:
        st = st or os.stat(node.fd)
        entry = EntryAttributes()
        entry.st_ino = InodeT(node.inode)
        entry.generation = 0
        entry.entry_timeout = self.entry_timeout
        entry.attr_timeout = self.attr_timeout
        entry.st_mode = ModeT(st.st_mode)
        entry.st_nlink = st.st_nlink
        entry.st_uid = st.st_uid
        entry.st_gid = st.st_gid
        entry.st_rdev = st.st_rdev
        entry.st_size = st.st_size
        entry.st_blksize = st.st_blksize
        entry.st_blocks = st.st_blocks
        entry.st_atime_ns = st.st_atime_ns
        entry.st_mtime_ns = st.st_mtime_ns
        entry.st_ctime_ns = st.st_ctime_ns
        return entry

    def _lookup_real(self, parent: Node, name: bytes) -> tuple[Node, os.stat_result]:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=parent.fd)
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        node = self.inodes.adopt(fd, st, parent.inode, name)
        if self.inodes.open_fds > self.inodes.high_water:
            self.inodes.shed(self._invalidate_entry)
        return node, st

    @staticmethod
    def _invalidate_entry(parent: int, name: bytes) -> None:
        """Ask the kernel to drop a cached entry (from a helper thread: never blocks us)."""
        pyfuse3.invalidate_entry_async(InodeT(parent), FileNameT(name), ignore_enoent=True)

    def _entry(self, parent: Node, name: bytes) -> EntryAttributes:
        node, st = self._lookup_real(parent, name)
        node.nlookup += 1
        return self.attrs(node, st)

    def _made(self, parent: Node, name: bytes) -> EntryAttributes:
        """``_entry`` for an object this request created: its state is ours, not news."""
        node, st = self._lookup_real(parent, name)
        node.nlookup += 1
        path = self.relpath(parent, name)
        if path:
            self.own.record(path, signature(st))
        return self.attrs(node, st)

    def _left(self, parent: Node, name: bytes, path: str | None = None) -> None:
        """Record what this request left at ``parent/name`` (for the watcher's echo filter)."""
        path = self.relpath(parent, name) if path is None else path
        if path:
            sig = lstat_signature(os.path.join(self.vault_root, path))
            if sig is not None:
                self.own.record(path, sig)

    def _left_node(self, node: Node) -> os.stat_result:
        """Record the state this request left a known object in; returns its stat."""
        st = os.stat(node.fd)
        path = self.relpath(node)
        if path:
            self.own.record(path, signature(st))
        else:  # reached through a name since unlinked: its other names still show the change
            self.own.refresh(signature(st))
        return st

    def _refresh_links(self, before: os.stat_result) -> None:
        """An object lost one of its names: the others we recorded show its new link count."""
        if before.st_nlink > 1 and not stat.S_ISDIR(before.st_mode):
            node = self.inodes.by_key((before.st_dev, before.st_ino))
            if node is not None:
                self.own.refresh(signature(os.stat(node.fd)))

    def _dirty(self, h: Handle) -> None:
        """The handle writes: from now until release, changes to its object are ours. Called
        *before* the write, so the watcher can never see the change first."""
        h.dirty = True
        if h.key is None:
            node = self.inodes.nodes.get(h.inode)
            if node is not None and node.key is not None:
                h.key = node.key
                self.own.start_writing(node.key)

    def _owner(self, parent: Node, ctx: RequestContext) -> tuple[int, int]:
        """Owner of a new object: the caller; group from a setgid parent (BSD semantics)."""
        pst = os.fstat(parent.fd)
        gid = pst.st_gid if pst.st_mode & stat.S_ISGID else ctx.gid
        return ctx.uid, gid

    def _give_to_caller(self, parent: Node, ctx: RequestContext, mode: int, *,
                        fd: int | None = None, name: bytes = b"") -> None:
        """Make a new object the caller's, with the mode the caller asked for.

        The kernel already applied the caller's umask (and dropped set-id bits the caller may
        not set), so the mode is set explicitly: the daemon's own umask must not apply twice.
        It is set after chown(), which clears set-id bits of files even for root. A new
        directory keeps the S_ISGID it inherited from a setgid parent, as on any Linux fs.
        """
        uid, gid = self._owner(parent, ctx)
        st = os.fstat(fd) if fd is not None else os.stat(name, dir_fd=parent.fd,
                                                         follow_symlinks=False)
        if (st.st_uid, st.st_gid) != (uid, gid):
            if fd is not None:
                os.fchown(fd, uid, gid)
            else:
                os.chown(name, uid, gid, dir_fd=parent.fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            return  # a symlink's mode is always 0777
        want = stat.S_IMODE(mode)
        if stat.S_ISDIR(st.st_mode):
            want |= st.st_mode & stat.S_ISGID
        if fd is not None:
            if stat.S_IMODE(os.fstat(fd).st_mode) != want:
                os.fchmod(fd, want)
        elif stat.S_IMODE(os.stat(name, dir_fd=parent.fd, follow_symlinks=False).st_mode) != want:
            # Not following: a name swapped for a symlink in the vault meanwhile is not chmodded.
            os.chmod(name, want, dir_fd=parent.fd, follow_symlinks=False)

    @staticmethod
    def _in_group(ctx: RequestContext, gid: int) -> bool:
        if ctx.gid == gid:
            return True
        try:
            return gid in pyfuse3.get_sup_groups(ctx.pid)
        except (OSError, ValueError, RuntimeError):  # the caller is gone: assume not a member
            return False

    def _truncated_by(self, fd: int, ctx: RequestContext) -> None:
        """open(O_TRUNC) by an unprivileged caller clears set-id bits, as truncate(2) does.

        libfuse negotiates FUSE_ATOMIC_O_TRUNC, so the kernel leaves the truncate, and with it
        this clearing, to us; we truncate as root (CAP_FSETID), which would keep them. The rule
        is the kernel's (setattr_should_drop_suidgid): S_ISUID always, S_ISGID when group-exec
        is set or the caller is not in the file's group.
        """
        if ctx.uid == 0:
            return
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return
        mode = stat.S_IMODE(st.st_mode)
        kill = mode & stat.S_ISUID
        if mode & stat.S_ISGID and (mode & stat.S_IXGRP or not self._in_group(ctx, st.st_gid)):
            kill |= stat.S_ISGID
        if kill:
            os.fchmod(fd, mode & ~kill)

    # ------------------------------------------------------------------ lookup & attributes
    async def lookup(self, parent_inode: InodeT, name: FileNameT,
                     ctx: RequestContext) -> EntryAttributes:
        _check_name(name)
        parent = self.inodes[parent_inode]
        if parent.virtual is not None:
            vnode = await parent.virtual.tree.lookup(parent, os.fsdecode(name), ctx)
            vnode.nlookup += 1
            return await vnode.virtual.tree.getattr(vnode)
        if parent_inode == ROOT:
            tree = self.virtual.get(os.fsdecode(name))
            if tree is not None:
                vnode = await tree.lookup(None, os.fsdecode(name), ctx)
                vnode.nlookup += 1
                return await tree.getattr(vnode)
        if self._hidden(parent_inode, name):
            raise _fuse(errno.ENOENT)
        return self._entry(parent, name)

    async def forget(self, inode_list: Sequence[tuple[InodeT, int]]) -> None:
        for inode, count in inode_list:
            self.inodes.forget(inode, count)

    async def getattr(self, inode: InodeT, ctx: RequestContext) -> EntryAttributes:
        node = self.inodes[inode]
        if node.virtual is not None:
            return await node.virtual.tree.getattr(node)
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
                raise _fuse(errno.EOPNOTSUPP)
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
            return FileNameT(await node.virtual.tree.readlink(node))
        return FileNameT(os.fsencode(os.readlink(b"", dir_fd=node.fd)))

    # ------------------------------------------------------------------ namespace changes
    async def mknod(self, parent_inode: InodeT, name: FileNameT, mode: ModeT, rdev: int,
                    ctx: RequestContext) -> EntryAttributes:
        _check_name(name)
        parent = self._real(parent_inode)
        if self._hidden(parent_inode, name):
            raise _fuse(errno.EPERM)
        os.mknod(name, mode, rdev, dir_fd=parent.fd)
        self._give_to_caller(parent, ctx, mode, name=name)
        if stat.S_ISREG(mode):
            path = self.relpath(parent, name)
            if path:
                self.sink.changed(path)
        return self._made(parent, name)

    async def mkdir(self, parent_inode: InodeT, name: FileNameT, mode: ModeT,
                    ctx: RequestContext) -> EntryAttributes:
        _check_name(name)
        parent = self.inodes[parent_inode]
        if parent.virtual is not None:
            vnode = await parent.virtual.tree.mkdir(parent, os.fsdecode(name), ctx)
            vnode.nlookup += 1
            return await vnode.virtual.tree.getattr(vnode)
        if self._hidden(parent_inode, name) or (
            parent_inode == ROOT and os.fsdecode(name) in self.virtual
        ):
            raise _fuse(errno.EEXIST)
        # A new dir inherits S_ISGID from a setgid parent here as on any Linux fs; chown keeps it.
        os.mkdir(name, stat.S_IMODE(mode), dir_fd=parent.fd)
        self._give_to_caller(parent, ctx, mode, name=name)
        return self._made(parent, name)

    async def unlink(self, parent_inode: InodeT, name: FileNameT, ctx: RequestContext) -> None:
        parent = self._real(parent_inode)
        if self._hidden(parent_inode, name):
            raise _fuse(errno.ENOENT)
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
            await parent.virtual.tree.rmdir(parent, os.fsdecode(name), ctx)
            return
        if self._hidden(parent_inode, name):
            raise _fuse(errno.ENOENT)
        if parent_inode == ROOT and os.fsdecode(name) in self.virtual:
            raise _fuse(errno.EBUSY)
        path = self.relpath(parent, name)
        os.rmdir(name, dir_fd=parent.fd)
        self._left(parent, name, path)

    async def symlink(self, parent_inode: InodeT, name: FileNameT, target: FileNameT,
                      ctx: RequestContext) -> EntryAttributes:
        _check_name(name)
        parent = self._real(parent_inode)
        if self._hidden(parent_inode, name):
            raise _fuse(errno.EEXIST)
        os.symlink(target, name, dir_fd=parent.fd)
        self._give_to_caller(parent, ctx, stat.S_IFLNK | 0o777, name=name)
        return self._made(parent, name)

    async def rename(self, parent_inode_old: InodeT, name_old: FileNameT,
                     parent_inode_new: InodeT, name_new: FileNameT, flags: FlagT,
                     ctx: RequestContext) -> None:
        _check_name(name_new)
        old_p = self._real(parent_inode_old)
        new_p = self._real(parent_inode_new)
        for p, n in ((parent_inode_old, name_old), (parent_inode_new, name_new)):
            if self._hidden(p, n) or (p == ROOT and os.fsdecode(n) in self.virtual):
                raise _fuse(errno.EBUSY)
        old_path = self.relpath(old_p, name_old)
        new_path = self.relpath(new_p, name_new)
        st_new: os.stat_result | None = None
        try:
            st_new = os.stat(name_new, dir_fd=new_p.fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        if flags:
            code = 0
            for flag, value in _RENAME_FLAGS.items():
                if flags & flag:
                    code |= value
            if flags & ~(pyfuse3.RENAME_NOREPLACE | pyfuse3.RENAME_EXCHANGE):
                raise _fuse(errno.EINVAL)
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
            tmp = new_path + "\0exchange"
            self.sink.moved(old_path, tmp)
            self.sink.moved(new_path, old_path)
            self.sink.moved(tmp, new_path)
            return
        if st_new is not None and stat.S_ISREG(st_new.st_mode):
            self.sink.removed(new_path)
        self.sink.moved(old_path, new_path)

    async def link(self, inode: InodeT, new_parent_inode: InodeT, new_name: FileNameT,
                   ctx: RequestContext) -> EntryAttributes:
        _check_name(new_name)
        node = self._real(inode)
        parent = self._real(new_parent_inode)
        if self._hidden(new_parent_inode, new_name):
            raise _fuse(errno.EEXIST)
        os.link(node.proc, new_name, dst_dir_fd=parent.fd, follow_symlinks=True)
        self._left_node(node)  # its ctime and link count changed too
        made = self._made(parent, new_name)
        path = self.relpath(parent, new_name)
        if path and node.kind == stat.S_IFREG:  # a new name to find the file by
            self.sink.changed(path)
        return made

    # ------------------------------------------------------------------ files
    @staticmethod
    def _open_flags(flags: int) -> int:
        # Writeback cache: the kernel may read from write-only handles and does O_APPEND itself.
        # O_NOFOLLOW: the kernel resolved the name already, and /proc/self/fd/N is itself a link.
        flags &= ~(os.O_APPEND | os.O_NOCTTY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
        if flags & os.O_ACCMODE == os.O_WRONLY:
            flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
        return flags | os.O_CLOEXEC

    async def open(self, inode: InodeT, flags: FlagT, ctx: RequestContext) -> FileInfo:
        node = self.inodes[inode]
        if node.virtual is not None:
            if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
                raise _fuse(errno.EROFS)
            return FileInfo(fh=self._fh(DirHandle(inode, [])), direct_io=True)
        handle = Handle(-1, inode)
        if flags & os.O_TRUNC:
            self._dirty(handle)  # before the open truncates
        try:
            handle.fd = os.open(node.proc, self._open_flags(flags))
            if flags & os.O_TRUNC:
                self._truncated_by(handle.fd, ctx)
        except BaseException:
            if handle.fd >= 0:
                os.close(handle.fd)
            if handle.key is not None:
                self.own.stop_writing(handle.key)
            raise
        return FileInfo(fh=self._fh(handle), keep_cache=True)

    async def create(self, parent_inode: InodeT, name: FileNameT, mode: ModeT, flags: FlagT,
                     ctx: RequestContext) -> tuple[FileInfo, EntryAttributes]:
        _check_name(name)
        parent = self._real(parent_inode)
        if self._hidden(parent_inode, name):
            raise _fuse(errno.EACCES)
        created = True
        try:
            fd = os.open(name, self._open_flags(flags) | os.O_CREAT | os.O_EXCL,
                         stat.S_IMODE(mode), dir_fd=parent.fd)
        except FileExistsError:
            if flags & os.O_EXCL:
                raise
            # Appeared in the vault behind the kernel's back: open it, don't take it over.
            created = False
            fd = os.open(name, self._open_flags(flags), dir_fd=parent.fd)
        try:
            if created:
                self._give_to_caller(parent, ctx, mode, fd=fd)
            elif flags & os.O_TRUNC:
                self._truncated_by(fd, ctx)
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
            return await node.virtual.tree.read(node, off, size)
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

    # ------------------------------------------------------------------ directories
    async def opendir(self, inode: InodeT, ctx: RequestContext) -> FileHandleT:
        node = self.inodes[inode]
        if node.virtual is not None:
            listed = await node.virtual.tree.entries(node, ctx)
            entries: list[tuple[bytes, Node | None]] = [(os.fsencode(n), v) for n, v in listed]
            return self._fh(DirHandle(inode, entries))
        if not stat.S_ISDIR(os.fstat(node.fd).st_mode):
            raise _fuse(errno.ENOTDIR)
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
            raise _fuse(errno.EBADF)
        parent = self.inodes[h.inode]
        for i in range(start_id, len(h.entries)):
            name, vnode = h.entries[i]
            if vnode is not None:
                attr = await vnode.virtual.tree.getattr(vnode)
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

    # ------------------------------------------------------------------ extended attributes
    def _xattr_target(self, node: Node) -> tuple[str, bool]:
        """(path, follow) that reaches the object itself for the *xattr calls.

        An O_PATH fd is refused by f*xattr (EBADF), and its /proc link must be *followed*: the
        l*xattr calls would ask procfs about the link. A symlink is the exception: following
        would reach its target, so it is addressed by its resolved path, not followed. (The
        kernel already refuses user.* on symlinks before we are asked.)
        """
        if node.kind == stat.S_IFLNK:
            return os.readlink(node.proc), False
        return node.proc, True

    async def setxattr(self, inode: InodeT, name: XAttrNameT, value: bytes,
                       ctx: RequestContext) -> None:
        node = self.inodes[inode]
        if node.virtual is not None:
            setter = getattr(node.virtual.tree, "setxattr", None)
            if setter is None:
                raise _fuse(errno.EROFS)
            await setter(node, os.fsdecode(name), value)
            return
        if name in INDEX_XATTRS:
            raise _fuse(errno.EPERM)
        path, follow = self._xattr_target(node)
        os.setxattr(path, name, value, follow_symlinks=follow)
        self._left_node(node)

    async def getxattr(self, inode: InodeT, name: XAttrNameT, ctx: RequestContext) -> bytes:
        node = self.inodes[inode]
        if node.virtual is not None:
            return await node.virtual.tree.getxattr(node, os.fsdecode(name))
        if name in INDEX_XATTRS:
            value = self._index_xattrs(node).get(name)
            if value is None:
                raise _fuse(pyfuse3.ENOATTR)
            return value
        path, follow = self._xattr_target(node)
        try:
            return os.getxattr(path, name, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                raise _fuse(pyfuse3.ENOATTR) from None
            raise

    def _status(self, node: Node) -> str | None:
        if node.kind != stat.S_IFREG:
            return None
        path = self.relpath(node)
        return self.sink.status_of(path) if path else None

    def _index_xattrs(self, node: Node) -> dict[bytes, bytes]:
        """The index's xattrs of a real file that has them, from the indexer's memory: no store
        call (a stalled store must not stall a getxattr). Until the catalog is loaded at mount
        a file has none, like a file the index has not seen. The error is shown while it is
        the file's state (failed or metadata-only)."""
        status = self._status(node)
        path = self.relpath(node)
        if status is None or path is None:
            return {}
        out = {STATUS_XATTR: status.encode()}
        error = self.sink.error_of(path) if status in ("failed", "metadata-only") else None
        if error:
            out[ERROR_XATTR] = os.fsencode(" ".join(error.split()))
        warnings = self.sink.warnings_of(path)
        if warnings:
            out[WARNINGS_XATTR] = os.fsencode("\n".join(warnings))
        fields = self.sink.fields_of(path)
        if fields is not None:
            shown = fields.shown()
            out.update((xattr, shown[key].encode()) for xattr, key in FIELD_XATTRS.items()
                       if key in shown)
        return out

    async def listxattr(self, inode: InodeT, ctx: RequestContext) -> Sequence[XAttrNameT]:
        node = self.inodes[inode]
        if node.virtual is not None:
            return [XAttrNameT(n) for n in await node.virtual.tree.listxattr(node)]
        path, follow = self._xattr_target(node)
        names = [XAttrNameT(os.fsencode(n)) for n in os.listxattr(path, follow_symlinks=follow)]
        # a stored user.memex.* (set before the mount) is shadowed by the index's, not listed twice
        names = [n for n in names if n not in INDEX_XATTRS]
        names += [XAttrNameT(n) for n in self._index_xattrs(node)]
        return names

    async def removexattr(self, inode: InodeT, name: XAttrNameT, ctx: RequestContext) -> None:
        node = self._real(inode)
        if name in INDEX_XATTRS:
            raise _fuse(errno.EPERM)
        path, follow = self._xattr_target(node)
        try:
            os.removexattr(path, name, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                raise _fuse(pyfuse3.ENOATTR) from None
            raise
        self._left_node(node)

    async def access(self, inode: InodeT, mode: ModeT, ctx: RequestContext) -> bool:
        # Only reached without default_permissions; we always mount with it.
        return True

    def invalidate_paths(self, paths: list[str]) -> list[int]:
        """Changes made around the mount: drop the kernel's cached names of these vault paths.

        Entries are dropped asynchronously (safe from any thread); the returned inodes' cached
        attributes and pages must be dropped with ``pyfuse3.invalidate_inode`` from a worker
        thread, since that call can wait for writeback requests served by this very loop.
        """
        stale: list[int] = []
        for rel in paths:
            parent = self._known(rel.rpartition("/")[0])
            if parent is not None:
                try:
                    pyfuse3.invalidate_entry_async(InodeT(parent.inode), FileNameT(
                        os.fsencode(rel.rpartition("/")[2])), ignore_enoent=True)
                except (OSError, pyfuse3.FUSEError):
                    pass
            node = self._known(rel)
            if node is not None:
                stale.append(node.inode)
        return stale

    def _known(self, rel: str) -> Node | None:
        """The node the kernel holds for a vault path, (lstat in the vault, never the mount)."""
        try:
            st = os.lstat(os.path.join(self.vault_root, rel))
        except OSError:
            return None
        return self.inodes.by_key((st.st_dev, st.st_ino))

    def close(self) -> None:
        for h in self._handles.values():
            if isinstance(h, Handle):
                try:
                    os.close(h.fd)
                except OSError:
                    pass
        self._handles.clear()
        self.inodes.close_all()
        os.close(self.root_fd)


def invalidate(ops: MemexOperations, inode: int) -> None:
    try:
        pyfuse3.invalidate_inode(InodeT(inode))
    except (OSError, pyfuse3.FUSEError):
        pass


__all__ = ["MemexOperations", "IndexSink", "NullSink", "VirtualTree", "Any"]
