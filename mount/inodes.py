"""Inode table of the mount: our node ids mapped to O_PATH descriptors of vault objects.

Like libfuse's passthrough_ll, every known inode holds an ``O_PATH`` descriptor, and operations use
``*at()`` calls relative to it. Renames in or around the mount never leave a stale path behind, and
hard links share one node (keyed by the vault's ``(st_dev, st_ino)``). Virtual nodes (``/q`` and its
folders) live in the same id space with ``fd == -1``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

import pyfuse3

ROOT = pyfuse3.ROOT_INODE


@dataclass
class Node:
    inode: int
    fd: int  # O_PATH descriptor, -1 for virtual nodes
    key: tuple[int, int] | None  # (st_dev, st_ino) of the vault object
    nlookup: int = 0
    kind: int = 0  # S_IFMT of the vault object (fixed for an inode's life); 0 for virtual nodes
    virtual: Any = None  # the virtual namespace's own object for virtual nodes
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def proc(self) -> str:
        """A path that reaches this object through its descriptor (the /proc magic link)."""
        return f"/proc/self/fd/{self.fd}"


class InodeTable:
    def __init__(self, root_fd: int) -> None:
        st = os.fstat(root_fd)
        self._next = ROOT + 1
        self.nodes: dict[int, Node] = {}
        self._by_key: dict[tuple[int, int], int] = {}
        root = Node(ROOT, root_fd, (st.st_dev, st.st_ino), nlookup=1,
                    kind=stat.S_IFMT(st.st_mode))
        self.nodes[ROOT] = root
        self._by_key[root.key] = ROOT  # type: ignore[index]

    def __getitem__(self, inode: int) -> Node:
        try:
            return self.nodes[inode]
        except KeyError:
            raise OSError(2, "stale inode") from None

    def new_id(self) -> int:
        inode = self._next
        self._next += 1
        return inode

    def adopt(self, fd: int, st: os.stat_result) -> Node:
        """Register a freshly opened O_PATH fd; reuse the node when the object is known."""
        key = (st.st_dev, st.st_ino)
        known = self._by_key.get(key)
        if known is not None:
            os.close(fd)
            node = self.nodes[known]
        else:
            node = Node(self.new_id(), fd, key, kind=stat.S_IFMT(st.st_mode))
            self.nodes[node.inode] = node
            self._by_key[key] = node.inode
        return node

    def add_virtual(self, obj: Any) -> Node:
        node = Node(self.new_id(), -1, None, virtual=obj)
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

    def close_all(self) -> None:
        for node in list(self.nodes.values()):
            if node.fd >= 0 and node.inode != ROOT:
                try:
                    os.close(node.fd)
                except OSError:
                    pass
        self.nodes.clear()
        self._by_key.clear()
