"""The plumbing every virtual tree shares: nodes, attributes, and result listings searched in a
worker thread behind a limiter and a deadline, cached per index generation and caller.

Searches never run on the trio thread (the encoder and the store are behind them); a listing is
kept while the index generation is unchanged, per folder and per caller (uid and groups decide
what is visible: the kernel's caches are shared). When the index changes, ``invalidate`` drops
the listings and the kernel's view of live folders, so an open ``ls`` loop sees new files.
"""

from __future__ import annotations

import abc
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import trio
from pyfuse3 import EntryAttributes, InodeT, ModeT, RequestContext

from memexfs.access import can_read
from memexfs.errors import (
    BadQuery,
    IndexUnavailable,
    InvalidArgument,
    IsADirectory,
    NoAttribute,
    NotFound,
    ReadOnly,
)
from mount import kernel_cache
from mount.inodes import InodeTable, Node
from mount.virtual.caller import caller_gids
from mount.virtual.results import ABOUT, RESULTS, Hit, Listing, dedup_names

log = logging.getLogger(__name__)

DIR_TIMEOUT_S = 1.0
# Read at each search, so one assignment here tunes every tree (tests cut it before mounting).
SEARCH_DEADLINE_S = 10.0  # a search's answer
STARTUP_DEADLINE_S = 120.0  # the first search, which may wait for the encoder to load


# What a virtual node is: a tree's root, a folder, a result link, a folder's .results or .query
# (about) file, the control file, a browse folder (a path being walked to a file), a summary file.
# A Literal, so mypy --strict flags a comparison with a kind that does not exist.
VKind = Literal["root", "dir", "link", "results", "about", "ctl", "browse", "summary"]


@dataclass
class VObj:
    """The ``virtual`` payload of a node: which tree, what kind, and its arguments."""

    tree: Any
    kind: VKind
    segments: tuple[str, ...] = ()
    hit: Hit | None = None
    uid: int = 0
    listing: Listing | None = None  # what a .results file shows (captured at lookup)


@dataclass(frozen=True)
class CacheKey:
    """A listing is cached per folder and per caller (uid and groups decide what is visible)."""

    segments: tuple[str, ...]
    uid: int
    gids: frozenset[int]


class SearchBackend:
    """What the trees need from the query side (built by the daemon around a SearchEngine)."""

    def __init__(self, search: Callable[[tuple[str, ...]], tuple[list[Any], str | None]],
                 related: Callable[[str], tuple[list[Any], str | None]],
                 generation: Callable[[], int],
                 ready: Callable[[], bool] = lambda: True,
                 explain: Callable[[tuple[str, ...], str | None], str] | None = None) -> None:
        self.search = search
        self.related = related
        self.generation = generation
        self.ready = ready  # False while the encoder still loads (seconds, once per mount)
        self.explain = explain  # a query folder's ``.query`` text (segments, engine's reason)


class BaseTree(abc.ABC):
    """Shared plumbing: attributes, result listings with caching, permission filtering."""

    name = ""

    def __init__(self, inodes: InodeTable, backend: SearchBackend, vault_root: str,
                 owner: tuple[int, int]) -> None:
        self.inodes = inodes
        self.backend = backend
        self.vault_root = vault_root
        self.uid, self.gid = owner
        self.limiter = trio.CapacityLimiter(2)
        self._cache: dict[CacheKey, Listing] = {}
        self._root: Node | None = None
        self._dirs: dict[tuple[tuple[str, ...], int], Node] = {}
        self._mtime_ns = time.time_ns()

    # -- nodes
    def _node(self, obj: VObj) -> Node:
        node = self.inodes.add_virtual(obj)
        return node

    def root(self) -> Node:
        if self._root is None or self._root.inode not in self.inodes.nodes:
            self._root = self._node(VObj(self, "root"))
            self._root.extra["pinned"] = True
        return self._root

    def dir_node(self, segments: tuple[str, ...], uid: int) -> Node:
        return self._folder(segments, uid, "dir")

    def browse_node(self, segments: tuple[str, ...]) -> Node:
        """A folder of the vault being walked to a file (the same for every caller)."""
        return self._folder(segments, -1, "browse")

    def _folder(self, segments: tuple[str, ...], uid: int, kind: VKind) -> Node:
        """The node of a folder, made once per (segments, caller) while the kernel holds it."""
        key = (segments, uid)
        node = self._dirs.get(key)
        if node is None or node.inode not in self.inodes.nodes:
            node = self._node(VObj(self, kind, segments, uid=uid if uid >= 0 else 0))
            self._dirs[key] = node
        return node

    def _attrs(self, node: Node, mode: int, size: int = 0, nlink: int = 1,
               timeout: float = DIR_TIMEOUT_S) -> EntryAttributes:
        e = EntryAttributes()
        e.st_ino = InodeT(node.inode)
        e.entry_timeout = timeout
        e.attr_timeout = timeout
        e.st_mode = ModeT(mode)
        e.st_nlink = nlink
        e.st_uid = self.uid
        e.st_gid = self.gid
        e.st_size = size
        e.st_blksize = 4096
        e.st_blocks = (size + 511) // 512
        e.st_atime_ns = e.st_mtime_ns = e.st_ctime_ns = self._mtime_ns
        return e

    # -- listings
    async def listing(self, segments: tuple[str, ...], ctx_uid: int,
                      gids: frozenset[int]) -> Listing:
        gen = self.backend.generation()
        # Per caller: uid and groups decide what is visible (the kernel's caches are shared).
        key = CacheKey(segments, ctx_uid, gids)
        cached = self._cache.get(key)
        if cached is not None and cached.generation == gen:
            return cached
        # The first search may have to wait for the encoder to load: that is not slowness.
        deadline = SEARCH_DEADLINE_S if self.backend.ready() else STARTUP_DEADLINE_S
        try:
            with trio.fail_after(deadline):
                # abandon_on_cancel: a store or encoder call that hangs in native code cannot be
                # interrupted, so the deadline leaves the thread behind (it still holds its
                # limiter token until it returns) and the caller gets EIO on time.
                listing = await trio.to_thread.run_sync(
                    self._build, segments, ctx_uid, gids, gen, limiter=self.limiter,
                    abandon_on_cancel=True)
        except trio.TooSlowError:
            log.warning("%s/%s: no answer within %.0f s", self.name, "/".join(segments),
                        deadline)
            raise IndexUnavailable(f"{self.name} took too long") from None
        except BadQuery as exc:
            log.info("%s/%s: %s", self.name, "/".join(segments), exc)
            raise
        if len(self._cache) > 512:
            self._cache.clear()
        self._cache[key] = listing
        return listing

    def _build(self, segments: tuple[str, ...], uid: int, gids: frozenset[int],
               gen: int) -> Listing:
        """Worker thread: search, explain, and keep what the caller may read (the permission
        checks stat the vault: not on the trio thread)."""
        hits, reason, about = self._run_and_explain(segments)
        visible = [h for h in hits if uid == 0 or can_read(self.vault_root, h.path, uid, gids)]
        names = dedup_names([h.path for h in visible])
        return Listing(
            # ``fields``, ``cosine``: query.engine.FileHit's (the payload and the cosine of its
            # best chunk)
            [Hit(n, h.path, float(h.score), i + 1, h.snippet, getattr(h, "fields", None),
                 getattr(h, "cosine", None))
             for i, (n, h) in enumerate(zip(names, visible, strict=True))],
            reason, gen, about)

    @abc.abstractmethod
    def _run(self, segments: tuple[str, ...]) -> tuple[list[Any], str | None]:
        """Search for this tree's folder (runs in a worker thread)."""

    def _explain(self, segments: tuple[str, ...], reason: str | None) -> str:
        """The folder's ``.query`` text, "" for none (runs in the search's worker thread)."""
        return ""

    def _run_and_explain(self, segments: tuple[str, ...]) -> tuple[list[Any], str | None, str]:
        hits, reason = self._run(segments)
        return hits, reason, self._explain(segments, reason)

    def invalidate(self) -> None:
        """The index changed: forget cached listings and the kernel's view of live folders."""
        self._cache.clear()
        self._mtime_ns = time.time_ns()
        # Folders the kernel has forgotten need no invalidation (and would pile up here).
        self._dirs = {k: n for k, n in self._dirs.items() if n.inode in self.inodes.nodes}
        kernel_cache.drop_inodes(n.inode for n in self._dirs.values())  # no pages: no writeback
        root = self._root
        if root is not None:
            for segments, _uid in list(self._dirs):
                if len(segments) == 1:
                    kernel_cache.drop_entry(root.inode, os.fsencode(segments[0]))

    # -- VirtualTree protocol
    async def getattr(self, node: Node) -> EntryAttributes:
        obj: VObj = node.virtual
        if obj.kind in ("root", "dir", "browse"):
            return self._attrs(node, stat.S_IFDIR | 0o555, nlink=2)
        # Entries inside a result folder are cached by the kernel for no time: its dentry cache
        # is shared by all users, and a name root just looked up must not be visible (nor a
        # .results with root's rows readable) to a user who may not read that file.
        if obj.kind == "link":
            assert obj.hit is not None
            target = self._target(obj)
            return self._attrs(node, stat.S_IFLNK | 0o777, size=len(target), timeout=0)
        if obj.kind in ("results", "about"):
            return self._attrs(node, stat.S_IFREG | 0o444, size=len(self._text(obj)), timeout=0)
        raise NotFound(f"no {obj.kind} node in {self.name}")

    @staticmethod
    def _text(obj: VObj) -> bytes:
        if obj.listing is None:
            return b""
        if obj.kind == "about":
            return obj.listing.about.encode()
        return obj.listing.results_text()

    def _target(self, obj: VObj) -> bytes:
        assert obj.hit is not None
        depth = 1 + len(obj.segments)  # the tree's root folder + one per segment
        return os.fsencode("../" * depth + obj.hit.path)

    async def readlink(self, node: Node) -> bytes:
        obj: VObj = node.virtual
        if obj.kind != "link":
            raise InvalidArgument("not a symlink")
        return self._target(obj)

    async def read(self, node: Node, off: int, size: int) -> bytes:
        obj: VObj = node.virtual
        if obj.kind not in ("results", "about"):
            raise IsADirectory("a folder has no text")
        return self._text(obj)[off:off + size]

    async def getxattr(self, node: Node, name: str) -> bytes:
        obj: VObj = node.virtual
        if obj.kind == "link" and obj.hit is not None:
            value = {"user.memex.score": f"{obj.hit.score:.4f}",
                     "user.memex.rank": str(obj.hit.rank),
                     "user.memex.snippet": " ".join(obj.hit.snippet.split()),
                     "user.memex.path": obj.hit.path}.get(name)
            if value is not None:
                return value.encode()
        raise NoAttribute(name)

    async def listxattr(self, node: Node) -> list[bytes]:
        # Linux refuses user.* xattr reads on symlinks before asking us (getxattr answers
        # ENODATA), so advertising them only makes ``getfattr -h -d`` print errors. The values
        # stay served for callers that reach the inode otherwise; ``.results`` is the channel.
        return []

    def _entry(self, listing: Listing, segments: tuple[str, ...], uid: int,
               hit: Hit | None, special: str = RESULTS) -> Node:
        """The node of ``hit`` (or of the ``special`` file when None) in this listing, made
        once."""
        name = hit.name if hit is not None else special
        node = listing.nodes.get(name)
        if node is None or node.inode not in self.inodes.nodes:
            if hit is None:
                kind: VKind = "about" if special == ABOUT else "results"
                node = self._node(VObj(self, kind, segments, uid=uid, listing=listing))
            else:
                node = self._node(VObj(self, "link", segments, hit, uid=uid))
            listing.nodes[name] = node
        return node

    async def _dir_child(self, parent: Node, name: str, ctx: RequestContext) -> Node | None:
        """The entry ``name`` of a result folder (a result or a special file), or None."""
        obj: VObj = parent.virtual
        listing = await self.listing(obj.segments, ctx.uid, caller_gids(ctx))
        if name == RESULTS or (name == ABOUT and listing.about):
            return self._entry(listing, obj.segments, ctx.uid, None, name)
        for hit in listing.hits:
            if hit.name == name:
                return self._entry(listing, obj.segments, ctx.uid, hit)
        return None

    async def _dir_lookup(self, parent: Node, name: str, ctx: RequestContext) -> Node:
        node = await self._dir_child(parent, name, ctx)
        if node is None:
            raise NotFound(f"no {name} in this folder")
        return node

    async def _dir_entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]:
        obj: VObj = node.virtual
        listing = await self.listing(obj.segments, ctx.uid, caller_gids(ctx))
        # ``.query`` answers lookups but is not listed: scripts that walk a folder's entries
        # keep seeing the results and ``.results`` only.
        out = [(RESULTS, self._entry(listing, obj.segments, ctx.uid, None))]
        out += [(h.name, self._entry(listing, obj.segments, ctx.uid, h)) for h in listing.hits]
        return out

    async def mkdir(self, node: Node, name: str, ctx: RequestContext) -> Node:
        raise ReadOnly(f"{self.name} is read-only")

    async def rmdir(self, node: Node, name: str, ctx: RequestContext) -> None:
        raise ReadOnly(f"{self.name} is read-only")

