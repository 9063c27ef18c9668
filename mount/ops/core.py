"""The state every handler shares: the vault's root, the inode table, open handles, the index
sink, and the helpers that look up real objects and record what a request left in the vault."""

from __future__ import annotations

import os
import stat

import pyfuse3
from pyfuse3 import EntryAttributes, FileHandleT, InodeT, ModeT

from memexfs.echo import lstat_signature, signature
from memexfs.errors import BadHandle, NotFound, ReadOnly
from mount import kernel_cache
from mount.inodes import ROOT, InodeTable, Node
from mount.names import STATE_DIR
from mount.ops.protocols import IndexSink, NullSink, VirtualTree


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
    """An open directory (its entries, read at opendir) or an open virtual file."""

    __slots__ = ("inode", "entries")

    def __init__(self, inode: int, entries: list[tuple[bytes, Node | None]]) -> None:
        self.inode = inode
        self.entries = entries


class OpsCore(pyfuse3.Operations):
    """The base of every handler group in ``mount.ops``; holds no handler itself."""

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

    # -- handles
    def _fh(self, obj: Handle | DirHandle) -> FileHandleT:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = obj
        return FileHandleT(fh)

    def _file(self, fh: int) -> Handle:
        h = self._handles.get(fh)
        if not isinstance(h, Handle):
            raise BadHandle(f"no open file {fh}")
        return h

    # -- nodes and paths
    def _real(self, inode: int) -> Node:
        node = self.inodes[inode]
        if node.fd < 0:
            if node.virtual is not None:
                raise ReadOnly("virtual folders are read-only")
            raise NotFound("no such object")
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

    @staticmethod
    def _tree(node: Node) -> VirtualTree:
        """The tree a virtual node belongs to."""
        tree: VirtualTree = node.virtual.tree
        return tree

    def _hidden(self, parent: int, name: bytes) -> bool:
        return parent == ROOT and name == STATE_DIR.encode()

    def _mounts(self, parent: int, name: bytes) -> bool:
        """Is ``name`` in ``parent`` the root of a virtual tree?"""
        return parent == ROOT and os.fsdecode(name) in self.virtual

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
            self.inodes.shed(kernel_cache.drop_entry)
        return node, st

    def _entry(self, parent: Node, name: bytes) -> EntryAttributes:
        node, st = self._lookup_real(parent, name)
        node.nlookup += 1
        return self.attrs(node, st)

    # -- what a request left in the vault (for the watcher's echo filter)
    def _made(self, parent: Node, name: bytes) -> EntryAttributes:
        """``_entry`` for an object this request created: its state is ours, not news."""
        node, st = self._lookup_real(parent, name)
        node.nlookup += 1
        path = self.relpath(parent, name)
        if path:
            self.own.record(path, signature(st))
        return self.attrs(node, st)

    def _left(self, parent: Node, name: bytes, path: str | None = None) -> None:
        """Record what this request left at ``parent/name``."""
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

    # -- changes made around the mount
    def invalidate_paths(self, paths: list[str]) -> list[int]:
        """Changes made around the mount: drop the kernel's cached names of these vault paths.

        Entries are dropped at once (asynchronously); the returned inodes' cached attributes
        and pages are for ``kernel_cache.drop_inodes`` in a worker thread.
        """
        stale: list[int] = []
        for rel in paths:
            head, _, name = rel.rpartition("/")
            parent = self._known(head)
            if parent is not None:
                kernel_cache.drop_entry(parent.inode, os.fsencode(name))
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
