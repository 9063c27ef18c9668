"""Knowledge folders: ``topics/``, ``backlinks/``, ``bridges/``, ``connect/`` and ``summary/``.

Built on :mod:`mount.virtual`'s plumbing (nodes, attributes, symlinks relative to the mount
root, ``.results``). Every answer is computed by :class:`query.knowledge.Knowledge` in a worker
thread behind the tree's limiter and a deadline (EIO on time when the engine is slow), and the
caller's permissions are applied in that thread too: a caller sees only files they may read —
as links, in ``.results``, in ``.topic`` and as topic folders.
"""

from __future__ import annotations

import abc
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyfuse3 import EntryAttributes, RequestContext

from memexfs.access import can_reach, can_read
from memexfs.errors import IsADirectory, NotADirectory, NotFound, PermissionDenied
from mount.inodes import InodeTable, Node
from mount.names import STATE_DIR, check_query
from mount.ops import VirtualTree
from mount.virtual.base import BaseTree, SearchBackend, VObj
from mount.virtual.caller import caller_gids
from mount.virtual.related import RelatedTree
from mount.virtual.results import Hit, Listing, dedup_names

if TYPE_CHECKING:  # built by the daemon on first use: numpy stays out of the mount's start
    from query.knowledge import Knowledge

log = logging.getLogger(__name__)

TOPIC_FILE = ".topic"
Visible = Callable[[str], bool]


@dataclass
class KHit:
    """One answer before permission filtering; ``also`` are paths it reveals too."""

    path: str
    score: float
    snippet: str = ""
    also: tuple[str, ...] = ()


@dataclass
class KListing(Listing):
    dirs: list[str] = field(default_factory=list)  # sub-folders (topics/ only)


@dataclass
class Answer:
    hits: list[KHit] = field(default_factory=list)
    reason: str | None = None
    about: str = ""  # the folder's hidden text file (``.topic``)
    dirs: list[str] = field(default_factory=list)


def backend_for(knowledge: Knowledge) -> SearchBackend:
    """The BaseTree backend of a knowledge tree: its generation and readiness."""

    def unused(_: Any) -> tuple[list[Any], str | None]:
        return [], None

    return SearchBackend(unused, unused, knowledge.generation, ready=knowledge.ready)


class KnowledgeMixin(BaseTree):
    """Listings computed by ``_answer`` in a worker thread, filtered there per caller."""

    def __init__(self, inodes: InodeTable, knowledge: Knowledge, vault_root: str,
                 owner: tuple[int, int]) -> None:
        super().__init__(inodes, backend_for(knowledge), vault_root, owner)
        self.knowledge = knowledge

    def _run(self, segments: tuple[str, ...]) -> tuple[list[Any], str | None]:
        # Knowledge listings are built by _build (below) from _answer, not from a search.
        raise AssertionError(f"{type(self).__name__} lists through _answer, not _run")

    @abc.abstractmethod
    def _answer(self, segments: tuple[str, ...], visible: Visible) -> Answer:
        """The folder at ``segments`` with only what ``visible`` allows (a worker thread)."""

    def _build(self, segments: tuple[str, ...], uid: int, gids: frozenset[int],
               gen: int) -> KListing:
        """Worker thread: the answer, with only what the caller may read."""
        seen: dict[str, bool] = {}

        def visible(path: str) -> bool:
            if uid == 0:
                return True
            if path not in seen:
                seen[path] = can_read(self.vault_root, path, uid, gids)
            return seen[path]

        ans = self._answer(segments, visible)
        hits = [h for h in ans.hits if visible(h.path) and all(map(visible, h.also))]
        names = dedup_names([h.path for h in hits])
        return KListing([Hit(n, h.path, float(h.score), i + 1, h.snippet)
                         for i, (n, h) in enumerate(zip(names, hits, strict=True))],
                        ans.reason, gen, ans.about, dirs=ans.dirs)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ---- topics/ -----------------------------------------------------------------------------------
class TopicsTree(KnowledgeMixin):
    """``topics/<topic>[/<sub-topic>]/``: files as links by centrality, a hidden ``.topic``."""

    name = "topics"

    def _answer(self, segments: tuple[str, ...], visible: Visible) -> Answer:
        folder = self.knowledge.folder(segments, visible)
        if folder is None:
            raise NotFound(f"no topic {'/'.join(segments)}")
        hits = [KHit(p, s) for p, s in folder.files]
        about = self.knowledge.topic_text(segments, visible) if segments else ""
        return Answer(hits, None, about, folder.dirs)

    def _listing_of(self, listing: Listing) -> KListing:
        assert isinstance(listing, KListing)
        return listing

    def _about_node(self, listing: Listing, segments: tuple[str, ...], uid: int) -> Node:
        node = listing.nodes.get(TOPIC_FILE)
        if node is None or node.inode not in self.inodes.nodes:
            node = self._node(VObj(self, "about", segments, uid=uid, listing=listing))
            listing.nodes[TOPIC_FILE] = node
        return node

    async def lookup(self, parent: Node | None, name: str, ctx: RequestContext) -> Node:
        if parent is None:
            return self.root()
        obj: VObj = parent.virtual
        if obj.kind not in ("root", "dir"):
            raise NotADirectory("not a folder here")
        listing = self._listing_of(await self.listing(obj.segments, ctx.uid, caller_gids(ctx)))
        if name in listing.dirs:
            return self.dir_node((*obj.segments, name), ctx.uid)
        if obj.kind == "dir" and name == TOPIC_FILE:
            return self._about_node(listing, obj.segments, ctx.uid)
        for hit in listing.hits:
            if hit.name == name:
                return self._entry(listing, obj.segments, ctx.uid, hit)
        raise NotFound(name)

    async def entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]:
        obj: VObj = node.virtual
        if obj.kind not in ("root", "dir"):
            raise NotADirectory("not a folder here")
        listing = self._listing_of(await self.listing(obj.segments, ctx.uid, caller_gids(ctx)))
        out = [(d, self.dir_node((*obj.segments, d), ctx.uid)) for d in listing.dirs]
        if obj.kind == "dir":
            out.insert(0, (TOPIC_FILE, self._about_node(listing, obj.segments, ctx.uid)))
        out += [(h.name, self._entry(listing, obj.segments, ctx.uid, h)) for h in listing.hits]
        return out


# ---- backlinks/ and bridges/: mirrors of the vault --------------------------------------------
class _MirrorTree(KnowledgeMixin, RelatedTree):
    """Folders browse the vault (as ``related/`` does); a file's folder lists the answer."""


class BacklinksTree(_MirrorTree):
    """``backlinks/<path>/``: the files that link to ``path`` (wiki, markdown, e-mail reply)."""

    name = "backlinks"

    def _answer(self, segments: tuple[str, ...], visible: Visible) -> Answer:
        path = "/".join(segments)
        hits = [KHit(e.source, 1.0, f"{e.kind} link at line {e.line}: {e.text}"
                     if e.line else f"{e.kind}: {e.text}")
                for e in self.knowledge.backlinks(path)]
        return Answer(hits, None if hits else "nothing links to this file")


class BridgesTree(_MirrorTree):
    """``bridges/<path>/``: files like ``path`` in another topic and folder, not linked to it;
    ``.results`` gives why: this file's passage, then the other file's."""

    name = "bridges"

    def _answer(self, segments: tuple[str, ...], visible: Visible) -> Answer:
        path = "/".join(segments)
        try:
            found = self.knowledge.bridges(path)
        except NotFound:
            return Answer([], "this file is not indexed (yet)")
        hits = [KHit(b.path, b.score, f"here: {_one_line(b.source.text)} | there: "
                     f"{_one_line(b.target.text)}") for b in found]
        return Answer(hits, None if hits else "no bridges above the similarity floor")


# ---- connect/ ---------------------------------------------------------------------------------
class ConnectTree(KnowledgeMixin):
    """``connect/<subject A>/<subject B>/``: files tying two subjects, strongest first."""

    name = "connect"

    def _answer(self, segments: tuple[str, ...], visible: Visible) -> Answer:
        a, b = segments
        hits = []
        for c in self.knowledge.connect(a, b):
            why_a = _one_line(c.why_a.text) if c.why_a else ""
            why_b = _one_line(c.why_b.text) if c.why_b else ""
            via = f" via {c.via}" if c.via else ""
            hits.append(KHit(c.path, c.score, f"A ({c.sim_a:.2f}): {why_a} | B ({c.sim_b:.2f})"
                             f"{via}: {why_b}", (c.via,) if c.via else ()))
        return Answer(hits, None if hits else "nothing ties these two subjects")

    async def lookup(self, parent: Node | None, name: str, ctx: RequestContext) -> Node:
        if parent is None:
            return self.root()
        obj: VObj = parent.virtual
        if obj.kind == "root":
            check_query(name)
            return self._first(name)
        if obj.kind == "browse":
            check_query(name)
            segments = (*obj.segments, name)
            await self.listing(segments, ctx.uid, caller_gids(ctx))
            return self.dir_node(segments, ctx.uid)
        if obj.kind != "dir":
            raise NotADirectory("not a folder here")
        return await self._dir_lookup(parent, name, ctx)

    def _first(self, name: str) -> Node:
        return self.browse_node((name,))

    async def entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]:
        obj: VObj = node.virtual
        if obj.kind in ("root", "browse"):
            return []  # any name is a subject
        if obj.kind != "dir":
            raise NotADirectory("not a folder here")
        return await self._dir_entries(node, ctx)


# ---- summary/ ---------------------------------------------------------------------------------
@dataclass
class _Text:
    """A summary file's text, per caller and generation (None until computed)."""

    text: bytes | None = None
    generation: int = -1


class SummaryTree(KnowledgeMixin):
    """``summary/<path>``: a read-only text file per vault file, its extractive summary."""

    name = "summary"

    def _answer(self, segments: tuple[str, ...], visible: Visible) -> Answer:
        return Answer(about=self.knowledge.summary("/".join(segments)))

    def _file_node(self, segments: tuple[str, ...], uid: int) -> Node:
        key = (segments, uid)
        node = self._dirs.get(key)
        if node is None or node.inode not in self.inodes.nodes:
            node = self._node(VObj(self, "summary", segments, uid=uid))
            node.extra["text"] = _Text()
            self._dirs[key] = node
        return node

    async def _text_of(self, node: Node) -> bytes:
        obj: VObj = node.virtual
        box: _Text = node.extra["text"]
        gen = self.backend.generation()
        if box.text is None or box.generation != gen:
            listing = await self.listing(obj.segments, obj.uid, frozenset())
            box.text, box.generation = listing.about.encode(), gen
        return box.text

    async def lookup(self, parent: Node | None, name: str, ctx: RequestContext) -> Node:
        if parent is None:
            return self.root()
        obj: VObj = parent.virtual
        if obj.kind not in ("root", "browse"):
            raise NotADirectory("not a folder here")
        segments = (*obj.segments, name)
        if segments[0] == STATE_DIR:
            raise NotFound(name)
        rel = "/".join(segments)
        if not can_reach(self.vault_root, rel, ctx.uid, caller_gids(ctx)):
            raise PermissionDenied(rel)
        try:
            st = os.lstat(os.path.join(self.vault_root, *segments))
        except OSError:
            raise NotFound(name) from None
        if stat.S_ISDIR(st.st_mode):
            return self.browse_node(segments)
        if not stat.S_ISREG(st.st_mode):
            raise NotFound(name)
        if not can_read(self.vault_root, rel, ctx.uid, caller_gids(ctx)):
            raise PermissionDenied(rel)
        node = self._file_node(segments, ctx.uid)
        await self._text_of(node)  # the size a stat shows is the summary's
        return node

    async def entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]:
        obj: VObj = node.virtual
        if obj.kind not in ("root", "browse"):
            raise NotADirectory("not a folder here")
        rel = "/".join(obj.segments)
        if obj.segments and not can_read(self.vault_root, rel, ctx.uid, caller_gids(ctx)):
            raise PermissionDenied(rel)
        folder = os.path.join(self.vault_root, *obj.segments)
        out = []
        for entry in sorted(os.listdir(folder)):
            if not obj.segments and entry == STATE_DIR:
                continue
            segments = (*obj.segments, entry)
            try:
                st = os.lstat(os.path.join(folder, entry))
            except OSError:
                continue
            path = "/".join(segments)
            if stat.S_ISDIR(st.st_mode) and can_reach(self.vault_root, path, ctx.uid,
                                                      caller_gids(ctx)):
                out.append((entry, await self.lookup(node, entry, ctx)))
            elif stat.S_ISREG(st.st_mode) and can_read(self.vault_root, path, ctx.uid,
                                                       caller_gids(ctx)):
                out.append((entry, self._file_node(segments, ctx.uid)))  # computed on read
        return out

    async def getattr(self, node: Node) -> EntryAttributes:
        obj: VObj = node.virtual
        if obj.kind == "summary":
            box: _Text = node.extra["text"]
            size = len(box.text) if box.text is not None else 0
            return self._attrs(node, stat.S_IFREG | 0o444, size=size, timeout=0)
        return await super().getattr(node)

    async def read(self, node: Node, off: int, size: int) -> bytes:
        obj: VObj = node.virtual
        if obj.kind != "summary":
            raise IsADirectory("a folder has no text")
        return (await self._text_of(node))[off:off + size]


def knowledge_trees(inodes: InodeTable, knowledge: Knowledge, vault_root: str,
                    owner: tuple[int, int]) -> dict[str, VirtualTree]:
    """Every knowledge tree by its mount-root name."""
    args = (inodes, knowledge, vault_root, owner)
    return {"topics": TopicsTree(*args), "backlinks": BacklinksTree(*args),
            "bridges": BridgesTree(*args), "connect": ConnectTree(*args),
            "summary": SummaryTree(*args)}


__all__ = ["TOPIC_FILE", "knowledge_trees"]
