"""Virtual namespaces: ``/q/<query>/`` (search folders), ``/related/<path>/`` and the control file.

A query folder lists its results as relative symlinks to the real files, in rank order, plus a
hidden ``.results`` file (``rank\\tscore\\tpath\\tsnippet``; a result's extracted fields on the
comment line after its row: ``# rank\\tkind=invoice\\tvendor=acme...``). Searches run in a worker
thread behind a limiter and a deadline (the encoder and Qdrant never run on the trio thread) and
are cached per index generation and caller; when the index changes, the kernel's cached entries
of live query folders are invalidated so an open ``ls`` loop sees new files.
"""

from __future__ import annotations

import abc
import errno
import json
import logging
import os
import platform
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyfuse3
import trio
from pyfuse3 import EntryAttributes, InodeT, ModeT, RequestContext

from memexfs.access import can_reach, can_read
from memexfs.errors import BadQuery, IndexUnavailable, NameTooLong, ReadOnly
from memexfs.fields_memory import DocFields
from mount.inodes import InodeTable, Node

log = logging.getLogger(__name__)

SEARCH_DEADLINE_S = 10.0
STARTUP_DEADLINE_S = 120.0
DIR_TIMEOUT_S = 1.0
RESULTS = ".results"
ABOUT = ".query"  # how the folder's name was read (query folders only)


@dataclass
class Hit:
    name: str  # entry name (basename, deduplicated)
    path: str  # vault-relative path of the real file
    score: float
    rank: int
    snippet: str
    fields: DocFields | None = None  # extracted fields, from the hit's payload


@dataclass
class Listing:
    hits: list[Hit]
    reason: str | None
    generation: int
    about: str = ""  # the text of ``.query``: how the name was read ("" = no such file)
    created: float = field(default_factory=time.monotonic)
    # Entry nodes handed out for this listing, by name: repeated ``ls`` of a folder gives the
    # kernel the same inodes instead of a fresh one per entry per opendir.
    nodes: dict[str, Node] = field(default_factory=dict)

    def results_text(self) -> bytes:
        lines = ["# rank\tscore\tpath\tsnippet"]
        if self.reason:
            lines.append(f"# {' '.join(self.reason.split())}")
        for h in self.hits:
            snippet = " ".join(h.snippet.split())
            lines.append(f"{h.rank}\t{h.score:.4f}\t{escape_field(h.path)}\t{snippet}")
            if h.fields is not None:
                lines.append(fields_line(h.rank, h.fields))
        return os.fsencode("\n".join(lines) + "\n")


def fields_line(rank: int, fields: DocFields) -> str:
    """The comment line after a result's row that carries its fields: ``# 3\\tkind=invoice\\t
    vendor=acme\\tamount=120.00...`` (known ones only). A comment, so the four columns of the
    rows stay what every reader of ``.results`` splits; ``name=value``, so fields can be added."""
    pairs = (f"{name}={escape_field(value)}" for name, value in fields.shown().items())
    return "\t".join((f"# {rank}", *pairs))


def read_fields_line(line: str) -> tuple[int, DocFields | None] | None:
    """(rank, fields) of a line :func:`fields_line` wrote; None for any other line (a reason
    line never holds a tab: it is one line of words)."""
    head, sep, rest = line.partition("\t")
    if not sep or not head.startswith("# ") or not head[2:].isdigit():
        return None
    values = {}
    for pair in rest.split("\t"):
        name, _, value = pair.partition("=")
        values[name] = unescape_field(value)
    return int(head[2:]), DocFields.from_text(values)


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_field(value: str) -> str:
    """A ``.results`` column: backslash, tab, newline and CR escaped so a row stays one line of
    tab-separated fields whatever a file is called (``unescape_field`` reverses it)."""
    return "".join(_ESCAPES.get(c, c) for c in value)


def unescape_field(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for c in chars:
        if c != "\\":
            out.append(c)
            continue
        nxt = next(chars, "")
        out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(nxt, "\\" + nxt))
    return "".join(out)


@dataclass
class VObj:
    """The ``virtual`` payload of a node: which tree, what kind, and its arguments."""

    tree: Any
    kind: str  # root | dir | link | results | about | ctl | browse
    segments: tuple[str, ...] = ()
    hit: Hit | None = None
    uid: int = 0
    listing: Listing | None = None  # what a .results file shows (captured at lookup)


def dedup_names(paths: list[str]) -> list[str]:
    """Basenames, made unique with a ' (2)' suffix before the extension when two collide."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        base = p.rsplit("/", 1)[-1]
        n = seen.get(base, 0) + 1
        seen[base] = n
        if n > 1:
            stem, dot, ext = base.rpartition(".")
            base = f"{stem} ({n}).{ext}" if dot and stem else f"{base} ({n})"
        out.append(base)
    return out


@dataclass(frozen=True)
class CacheKey:
    """A listing is cached per folder and per caller (uid and groups decide what is visible)."""

    segments: tuple[str, ...]
    uid: int
    gids: frozenset[int]


def _gids(ctx: RequestContext) -> frozenset[int]:
    try:
        groups = pyfuse3.get_sup_groups(ctx.pid)
    except (OSError, ValueError):
        groups = set()
    return frozenset({ctx.gid, *groups})


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
        key = (segments, uid)
        node = self._dirs.get(key)
        if node is None or node.inode not in self.inodes.nodes:
            node = self._node(VObj(self, "dir", segments, uid=uid))
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
            # ``fields``: query.engine.FileHit's, from the payload of its best chunk
            [Hit(n, h.path, float(h.score), i + 1, h.snippet, getattr(h, "fields", None))
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
        for node in list(self._dirs.values()):
            try:
                pyfuse3.invalidate_inode(InodeT(node.inode))
            except (OSError, pyfuse3.FUSEError):
                pass
        root = self._root
        if root is not None:
            for (segments, _uid), _node in list(self._dirs.items()):
                if len(segments) == 1:
                    try:
                        pyfuse3.invalidate_entry_async(
                            InodeT(root.inode), os.fsencode(segments[0]), ignore_enoent=True)
                    except (OSError, pyfuse3.FUSEError):
                        pass

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
        raise pyfuse3.FUSEError(errno.ENOENT)

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
            raise pyfuse3.FUSEError(errno.EINVAL)
        return self._target(obj)

    async def read(self, node: Node, off: int, size: int) -> bytes:
        obj: VObj = node.virtual
        if obj.kind not in ("results", "about"):
            raise pyfuse3.FUSEError(errno.EISDIR)
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
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

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
                kind = "about" if special == ABOUT else "results"
                node = self._node(VObj(self, kind, segments, uid=uid, listing=listing))
            else:
                node = self._node(VObj(self, "link", segments, hit, uid=uid))
            listing.nodes[name] = node
        return node

    async def _dir_lookup(self, parent: Node, name: str, ctx: RequestContext) -> Node:
        obj: VObj = parent.virtual
        gids = _gids(ctx)
        listing = await self.listing(obj.segments, ctx.uid, gids)
        if name == RESULTS or (name == ABOUT and listing.about):
            return self._entry(listing, obj.segments, ctx.uid, None, name)
        for hit in listing.hits:
            if hit.name == name:
                return self._entry(listing, obj.segments, ctx.uid, hit)
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def _dir_entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]:
        obj: VObj = node.virtual
        listing = await self.listing(obj.segments, ctx.uid, _gids(ctx))
        # ``.query`` answers lookups but is not listed: scripts that walk a folder's entries
        # keep seeing the results and ``.results`` only.
        out = [(RESULTS, self._entry(listing, obj.segments, ctx.uid, None))]
        out += [(h.name, self._entry(listing, obj.segments, ctx.uid, h)) for h in listing.hits]
        return out

    async def mkdir(self, node: Node, name: str, ctx: RequestContext) -> Node:
        raise ReadOnly(f"{self.name} is read-only")

    async def rmdir(self, node: Node, name: str, ctx: RequestContext) -> None:
        raise ReadOnly(f"{self.name} is read-only")


# System calls that make a name, per machine (see _caller_intent): mkdir(2)/mkdirat(2) apart,
# open(2)/openat(2) only with O_CREAT (argument index of the flags), and the rest outright.
_SYSCALLS: dict[str, dict[str, Any]] = {
    "x86_64": {"mkdir": {83, 258}, "open": {2: 1, 257: 2},
               # creat, mknod(at), symlink(at), link(at), rename(at/at2)
               "make": {85, 133, 259, 88, 266, 86, 265, 82, 264, 316}},
    "aarch64": {"mkdir": {34}, "open": {56: 2}, "make": {33, 36, 37, 38, 276}},
}
_SYSCALLS["arm64"] = _SYSCALLS["aarch64"]
_NR = _SYSCALLS.get(platform.machine(), {})


def _caller_intent(pid: int) -> str | None:
    """Is the caller's thread inside a system call that makes a name: "mkdir", "create" or None?

    Every name under /q is a query, so the kernel's lookup before ``mkdir /q/<name>`` (or before
    creating a file, a link or a rename target in a query folder) always finds a folder and
    answers EEXIST/EISDIR itself, never asking us. FUSE does not pass the lookup's intent, but the
    caller's current system call is in /proc; when it makes a name, the lookup of a name that is
    not a saved query or a result answers ENOENT, so the kernel goes on to our mkdir (which saves
    the query) or to a create/link/rename (which answer EROFS). A lookup cannot tell the last
    component of the caller's path from the ones before it: a query folder on that path that the
    kernel has not cached yet answers ENOENT too, so such a call fails with ENOENT rather than
    EROFS; either way nothing is written. Where /proc cannot tell, lookups stay positive and
    the kernel answers EEXIST/EISDIR: another arch, openat2(2) (its flags are in a struct /proc
    does not show), or no permission to read the caller's /proc entry (a daemon that is not root
    under Yama's ptrace_scope >= 1).
    """
    if not _NR or pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/syscall", "rb") as f:
            fields = f.read(200).split()
    except OSError:
        return None
    if not fields or not fields[0].isdigit():
        return None
    nr = int(fields[0])
    if nr in _NR["mkdir"]:
        return "mkdir"
    if nr in _NR["make"]:
        return "create"
    flags_at = _NR["open"].get(nr)
    if flags_at is not None and len(fields) > flags_at + 1:
        try:
            flags = int(fields[flags_at + 1], 16)
        except ValueError:
            return None
        return "create" if flags & os.O_CREAT else None
    return None


def _check_name(name: str) -> None:
    """A name under /related is a real file's name: only the kernel's length limit applies."""
    if len(os.fsencode(name)) > 255:
        raise NameTooLong("name longer than 255 bytes")


def _check_query(name: str) -> None:
    """A name under /q is a query: UTF-8 text without control characters."""
    _check_name(name)
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadQuery("control characters are not allowed in a query")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode left surrogate escapes: the bytes were not UTF-8
        raise BadQuery("a query must be UTF-8 text") from None


class QueryTree(BaseTree):
    """``/q``: any name is a query; nested names refine it; saved queries persist in the vault."""

    name = "q"

    def __init__(self, inodes: InodeTable, backend: SearchBackend, vault_root: str,
                 owner: tuple[int, int], saved_file: str) -> None:
        super().__init__(inodes, backend, vault_root, owner)
        self.saved_file = saved_file

    def _load_saved(self) -> list[tuple[str, int]]:
        """(name, uid) of every saved query; the first format (a list of names) was the
        vault owner's."""
        try:
            with open(self.saved_file) as f:
                data = json.load(f)
        except (OSError, ValueError):
            return []
        if isinstance(data, list):
            return [(str(x), self.uid) for x in data]
        return [(str(q["name"]), int(q["uid"])) for q in data.get("queries", [])
                if isinstance(q, dict) and "name" in q and "uid" in q]

    def saved(self, uid: int) -> list[str]:
        """The queries ``uid`` saved: each user's saved names are their own (they say what
        someone looks for)."""
        return [n for n, owner in self._load_saved() if owner == uid]

    def _save(self, entries: list[tuple[str, int]]) -> None:
        tmp = self.saved_file + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"version": 2, "queries": [{"name": n, "uid": u} for n, u in entries]}, f)
        os.replace(tmp, self.saved_file)

    def _run(self, segments: tuple[str, ...]) -> tuple[list[Any], str | None]:
        return self.backend.search(segments)

    def _explain(self, segments: tuple[str, ...], reason: str | None) -> str:
        return self.backend.explain(segments, reason) if self.backend.explain else ""

    async def lookup(self, parent: Node | None, name: str, ctx: RequestContext) -> Node:
        if parent is None:
            return self.root()
        _check_name(name)
        obj: VObj = parent.virtual
        if obj.kind == "root":
            _check_query(name)
            segments: tuple[str, ...] = (name,)
            if name not in self.saved(ctx.uid) and _caller_intent(ctx.pid) is not None:
                raise pyfuse3.FUSEError(errno.ENOENT)  # mkdir saves it; a create gets EROFS
            await self.listing(segments, ctx.uid, _gids(ctx))  # validates the query (EINVAL)
            return self.dir_node(segments, ctx.uid)
        if obj.kind != "dir":
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        try:
            return await self._dir_lookup(parent, name, ctx)
        except pyfuse3.FUSEError as exc:
            if exc.errno != errno.ENOENT or name.startswith("."):
                raise
        if _caller_intent(ctx.pid) is not None:
            raise pyfuse3.FUSEError(errno.ENOENT)  # making a name here: the maker says EROFS
        _check_query(name)
        segments = (*obj.segments, name)  # not a result: a refinement
        await self.listing(segments, ctx.uid, _gids(ctx))
        return self.dir_node(segments, ctx.uid)

    async def entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]:
        obj: VObj = node.virtual
        if obj.kind == "root":
            return [(n, self.dir_node((n,), ctx.uid)) for n in self.saved(ctx.uid)]
        if obj.kind != "dir":
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return await self._dir_entries(node, ctx)

    async def mkdir(self, node: Node, name: str, ctx: RequestContext) -> Node:
        obj: VObj = node.virtual
        _check_query(name)
        if obj.kind != "root":
            raise ReadOnly("only /q itself takes new (saved) queries")
        entries = self._load_saved()
        if (name, ctx.uid) in entries:
            raise pyfuse3.FUSEError(errno.EEXIST)
        await self.listing((name,), ctx.uid, _gids(ctx))  # a bad query is refused up front
        self._save([*entries, (name, ctx.uid)])
        return self.dir_node((name,), ctx.uid)

    async def rmdir(self, node: Node, name: str, ctx: RequestContext) -> None:
        obj: VObj = node.virtual
        entries = self._load_saved()
        if obj.kind != "root" or (name, ctx.uid) not in entries:
            raise ReadOnly("only saved queries can be removed")
        self._save([e for e in entries if e != (name, ctx.uid)])


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
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    async def lookup(self, parent: Node | None, name: str, ctx: RequestContext) -> Node:
        if parent is None:
            return self.root()
        _check_name(name)
        obj: VObj = parent.virtual
        if obj.kind == "dir":
            # The kernel's dentry of related/<file> is shared by every user for its timeout:
            # whoever reaches the folder through it must still be allowed to read the file.
            if not can_read(self.vault_root, "/".join(obj.segments), ctx.uid, _gids(ctx)):
                raise pyfuse3.FUSEError(errno.EACCES)
            return await self._dir_lookup(parent, name, ctx)
        segments = (*obj.segments, name)
        if not segments or segments[0] == ".memexfs":
            raise pyfuse3.FUSEError(errno.ENOENT)
        # The caller sees the vault through /related only as far as the real tree lets them:
        # search permission on every folder down to it, read permission on a file.
        if not can_reach(self.vault_root, "/".join(segments), ctx.uid, _gids(ctx)):
            raise pyfuse3.FUSEError(errno.EACCES)
        st = self._real(segments)
        if stat.S_ISDIR(st.st_mode):
            key = (segments, -1)
            node = self._dirs.get(key)
            if node is None or node.inode not in self.inodes.nodes:
                node = self._node(VObj(self, "browse", segments))
                self._dirs[key] = node
            return node
        if stat.S_ISREG(st.st_mode):
            if not can_read(self.vault_root, "/".join(segments), ctx.uid, _gids(ctx)):
                raise pyfuse3.FUSEError(errno.EACCES)
            return self.dir_node(segments, ctx.uid)
        raise pyfuse3.FUSEError(errno.ENOENT)

    async def entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]:
        obj: VObj = node.virtual
        if obj.kind == "dir":
            if not can_read(self.vault_root, "/".join(obj.segments), ctx.uid, _gids(ctx)):
                raise pyfuse3.FUSEError(errno.EACCES)  # a cached dentry from another user
            return await self._dir_entries(node, ctx)
        folder = os.path.join(self.vault_root, *obj.segments)
        if not can_read(self.vault_root, "/".join(obj.segments), ctx.uid, _gids(ctx)):
            raise pyfuse3.FUSEError(errno.EACCES)
        out = []
        for entry in sorted(os.listdir(folder)):
            if not obj.segments and entry == ".memexfs":
                continue
            try:
                out.append((entry, await self.lookup(node, entry, ctx)))
            except pyfuse3.FUSEError:
                continue
        return out


class ControlTree:
    """``/.memexfs``: a hidden, owner-only file whose xattrs report and steer the index.

    ``getfattr -n user.memex.stats`` gives the indexer's JSON stats; ``user.memex.idle`` is "1" when
    nothing is queued; ``setfattr -n user.memex.reindex -v PATH`` queues a file again.
    """

    def __init__(self, inodes: InodeTable, stats: Callable[[], dict[str, Any]],
                 idle: Callable[[], bool], reindex: Callable[[str], None],
                 owner: tuple[int, int]) -> None:
        self.inodes = inodes
        self.stats = stats
        self.idle = idle
        self.reindex = reindex
        self.uid, self.gid = owner
        self._node: Node | None = None

    async def lookup(self, parent: Node | None, name: str, ctx: RequestContext) -> Node:
        if self._node is None or self._node.inode not in self.inodes.nodes:
            self._node = self.inodes.add_virtual(VObj(self, "ctl"))
            self._node.extra["pinned"] = True
        return self._node

    async def getattr(self, node: Node) -> EntryAttributes:
        e = EntryAttributes()
        e.st_ino = InodeT(node.inode)
        e.st_mode = ModeT(stat.S_IFREG | 0o600)
        e.st_uid, e.st_gid = self.uid, self.gid
        e.st_nlink = 1
        e.entry_timeout = e.attr_timeout = 0
        now = time.time_ns()
        e.st_atime_ns = e.st_mtime_ns = e.st_ctime_ns = now
        return e

    async def entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]:
        raise pyfuse3.FUSEError(errno.ENOTDIR)

    async def readlink(self, node: Node) -> bytes:
        raise pyfuse3.FUSEError(errno.EINVAL)

    async def read(self, node: Node, off: int, size: int) -> bytes:
        return (json.dumps(self.stats(), indent=2) + "\n").encode()[off:off + size]

    async def getxattr(self, node: Node, name: str) -> bytes:
        if name == "user.memex.stats":
            return json.dumps(self.stats()).encode()
        if name == "user.memex.idle":
            return b"1" if self.idle() else b"0"
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def listxattr(self, node: Node) -> list[bytes]:
        return [b"user.memex.stats", b"user.memex.idle"]

    async def setxattr(self, node: Node, name: str, value: bytes) -> None:
        if name == "user.memex.reindex":
            self.reindex(os.fsdecode(value))
            return
        raise pyfuse3.FUSEError(errno.EINVAL)

    async def mkdir(self, node: Node, name: str, ctx: RequestContext) -> Node:
        raise pyfuse3.FUSEError(errno.ENOTDIR)

    async def rmdir(self, node: Node, name: str, ctx: RequestContext) -> None:
        raise pyfuse3.FUSEError(errno.ENOTDIR)
