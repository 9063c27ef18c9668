"""Inode table of the mount: our node ids mapped to O_PATH descriptors of vault objects.

Like libfuse's passthrough_ll, every known inode holds an ``O_PATH`` descriptor, and operations use
``*at()`` calls relative to it. Renames in or around the mount never leave a stale path behind, and
hard links share one node (keyed by the vault's ``(st_dev, st_ino)``). A real node's id *is* the
vault object's inode number (as in libfuse's passthrough_hp), so ``st_ino`` through the mount is
the vault's, stable across renames, cache invalidations and remounts (``find -samefile``, rsync's
hard-link detection and POSIX rename checks rely on that); numbers cannot collide while a node
lives, because its O_PATH descriptor keeps the file system from reusing them. Virtual nodes (``/q``
and its folders) take ids from the top half of the 64-bit space, with ``fd == -1``.

The kernel keeps what it looked up (every readdirplus entry counts) until memory pressure makes it
forget, so a walk over a big vault would hold one descriptor per file and end in EMFILE for every
request. The table therefore sheds: past a high-water mark of open descriptors it names the least
recently used entries, and the operations ask the kernel to drop them (``invalidate_entry``); the
FORGETs that follow close the descriptors. Nothing is ever closed under a running request.
"""

from __future__ import annotations

import itertools
import os
import resource
import stat
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyfuse3

from memexfs.errors import NotFound

ROOT = pyfuse3.ROOT_INODE
VIRTUAL_BASE = 1 << 63  # virtual node ids count up from here
FALLBACK_BASE = 1 << 62  # a vault inode number that cannot serve as an id (the root's, 0, huge)


@dataclass
class Node:
    inode: int
    fd: int  # O_PATH descriptor, -1 for virtual nodes
    key: tuple[int, int] | None  # (st_dev, st_ino) of the vault object
    nlookup: int = 0
    kind: int = 0  # S_IFMT of the vault object (fixed for an inode's life); 0 for virtual nodes
    parent: int = 0  # where the kernel last learned of it (parent inode, name): what to invalidate
    name: bytes = b""
    virtual: Any = None  # the virtual namespace's own object for virtual nodes
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def proc(self) -> str:
        """A path that reaches this object through its descriptor (the /proc magic link)."""
        return f"/proc/self/fd/{self.fd}"


def fd_high_water() -> int:
    """Half the descriptor limit: the rest is for open files, the index and the encoder."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(64, soft // 2) if soft != resource.RLIM_INFINITY else 1 << 20


class InodeTable:
    def __init__(self, root_fd: int, high_water: int | None = None) -> None:
        st = os.fstat(root_fd)
        self.high_water = high_water or fd_high_water()
        self.open_fds = 0  # O_PATH descriptors held for nodes other than the root
        self._recent: OrderedDict[int, None] = OrderedDict()  # real nodes, least recent first
        self._next_shed = self.high_water  # hysteresis: FORGETs arrive some requests later
        self._next_virtual = VIRTUAL_BASE
        self._next_fallback = FALLBACK_BASE
        self.nodes: dict[int, Node] = {}
        self._by_key: dict[tuple[int, int], int] = {}
        key = (st.st_dev, st.st_ino)
        self.nodes[ROOT] = Node(ROOT, root_fd, key, nlookup=1, kind=stat.S_IFMT(st.st_mode))
        self._by_key[key] = ROOT

    def __getitem__(self, inode: int) -> Node:
        try:
            return self.nodes[inode]
        except KeyError:
            raise NotFound(f"stale inode {inode}") from None

    def _real_id(self, st: os.stat_result) -> int:
        ino = st.st_ino
        if ROOT < ino < FALLBACK_BASE and ino not in self.nodes:
            return ino
        inode = self._next_fallback
        self._next_fallback += 1
        return inode

    def _virtual_id(self) -> int:
        inode = self._next_virtual
        self._next_virtual += 1
        return inode

    def adopt(self, fd: int, st: os.stat_result, parent: int = 0, name: bytes = b"") -> Node:
        """Register a freshly opened O_PATH fd; reuse the node when the object is known."""
        key = (st.st_dev, st.st_ino)
        known = self._by_key.get(key)
        if known is not None:
            os.close(fd)
            node = self.nodes[known]
            if known != ROOT:
                self._recent.move_to_end(known)
        else:
            node = Node(self._real_id(st), fd, key, kind=stat.S_IFMT(st.st_mode))
            self.nodes[node.inode] = node
            self._by_key[key] = node.inode
            self._recent[node.inode] = None
            self.open_fds += 1
        if parent:
            node.parent, node.name = parent, name
        return node

    def shed(self, invalidate: Callable[[int, bytes], None]) -> int:
        """Past the high-water mark, ask (via ``invalidate(parent, name)``) that the least
        recently used quarter be forgotten; returns how many were named."""
        if self.open_fds <= self._next_shed:
            return 0
        want = self.open_fds - self.high_water * 3 // 4
        self._next_shed = self.open_fds + max(self.high_water // 4, 1)
        named = 0
        for inode in list(itertools.islice(self._recent, want)):
            node = self.nodes[inode]
            self._recent.move_to_end(inode)  # don't name it again before the others
            if node.parent and node.parent in self.nodes and not node.extra.get("pinned"):
                invalidate(node.parent, node.name)
                named += 1
        return named

    def by_key(self, key: tuple[int, int]) -> Node | None:
        """The node the kernel knows for a vault object, if any."""
        inode = self._by_key.get(key)
        return self.nodes.get(inode) if inode is not None else None

    def add_virtual(self, obj: Any) -> Node:
        node = Node(self._virtual_id(), -1, None, virtual=obj)
        self.nodes[node.inode] = node
        return node

    def forget(self, inode: int, count: int) -> None:
        node = self.nodes.get(inode)
        if node is None or inode == ROOT:
            return
        node.nlookup -= count
        if node.nlookup <= 0 and not node.extra.get("pinned"):
            del self.nodes[inode]
            if node.key is not None:
                self._by_key.pop(node.key, None)
            if node.fd >= 0:
                os.close(node.fd)
                self.open_fds -= 1
                self._recent.pop(inode, None)
                if self.open_fds <= self.high_water:
                    self._next_shed = self.high_water

    def close_all(self) -> None:
        for node in list(self.nodes.values()):
            if node.fd >= 0 and node.inode != ROOT:
                try:
                    os.close(node.fd)
                except OSError:
                    pass
        self.nodes.clear()
        self._by_key.clear()
        self._recent.clear()
        self.open_fds = 0
