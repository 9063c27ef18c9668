"""``/q``: any name is a query; nested names refine it; saved queries persist per user."""

from __future__ import annotations

import json
import os
from typing import Any

from pyfuse3 import RequestContext

from memexfs.errors import AlreadyExists, NotADirectory, NotFound, ReadOnly
from mount.inodes import InodeTable, Node
from mount.names import check_query
from mount.virtual.base import BaseTree, SearchBackend, VObj
from mount.virtual.caller import caller_gids, caller_intent


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
        obj: VObj = parent.virtual
        if obj.kind == "root":
            check_query(name)
            segments: tuple[str, ...] = (name,)
            if name not in self.saved(ctx.uid) and caller_intent(ctx.pid) is not None:
                raise NotFound("mkdir saves it; a create gets EROFS")
            await self.listing(segments, ctx.uid, caller_gids(ctx))  # validates the query
            return self.dir_node(segments, ctx.uid)
        if obj.kind != "dir":
            raise NotADirectory(f"{name}: not in a query folder")
        child = await self._dir_child(parent, name, ctx)
        if child is not None:
            return child
        if name.startswith("."):
            raise NotFound(f"no {name} in this folder")
        if caller_intent(ctx.pid) is not None:
            raise NotFound("making a name here: the maker says EROFS")
        check_query(name)
        segments = (*obj.segments, name)  # not a result: a refinement
        await self.listing(segments, ctx.uid, caller_gids(ctx))
        return self.dir_node(segments, ctx.uid)

    async def entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]:
        obj: VObj = node.virtual
        if obj.kind == "root":
            return [(n, self.dir_node((n,), ctx.uid)) for n in self.saved(ctx.uid)]
        if obj.kind != "dir":
            raise NotADirectory("not a query folder")
        return await self._dir_entries(node, ctx)

    async def mkdir(self, node: Node, name: str, ctx: RequestContext) -> Node:
        obj: VObj = node.virtual
        check_query(name)
        if obj.kind != "root":
            raise ReadOnly("only /q itself takes new (saved) queries")
        entries = self._load_saved()
        if (name, ctx.uid) in entries:
            raise AlreadyExists(f"{name} is saved already")
        await self.listing((name,), ctx.uid, caller_gids(ctx))  # a bad query is refused up front
        self._save([*entries, (name, ctx.uid)])
        return self.dir_node((name,), ctx.uid)

    async def rmdir(self, node: Node, name: str, ctx: RequestContext) -> None:
        obj: VObj = node.virtual
        entries = self._load_saved()
        if obj.kind != "root" or (name, ctx.uid) not in entries:
            raise ReadOnly("only saved queries can be removed")
        self._save([e for e in entries if e != (name, ctx.uid)])
