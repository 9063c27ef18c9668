"""What the operations talk to: the index (``IndexSink``) and the virtual namespaces
(``VirtualTree``), as protocols, so ``mount.ops`` imports neither the indexer nor the trees."""

from __future__ import annotations

from typing import Protocol

from pyfuse3 import EntryAttributes, RequestContext

from memexfs.echo import OwnChanges
from memexfs.fields_memory import DocFields
from mount.inodes import Node


class IndexSink(Protocol):
    """What the mount tells the index. Calls must return at once (they only enqueue).

    ``own`` learns what every request left in the vault, so the vault watcher does not echo our
    own changes back as outside ones (``memexfs.echo``).
    """

    own: OwnChanges

    def changed(self, path: str) -> None: ...
    def removed(self, path: str) -> None: ...
    def moved(self, old: str, new: str) -> None: ...
    def exchanged(self, a: str, b: str) -> None: ...
    def status_of(self, path: str) -> str | None: ...
    def error_of(self, path: str) -> str | None: ...
    def fields_of(self, path: str) -> DocFields | None: ...
    def warnings_of(self, path: str) -> tuple[str, ...]: ...


class NullSink:
    """No index: the mount is a plain passthrough (tests, and the base of recording sinks)."""

    def __init__(self) -> None:
        self.own = OwnChanges()

    def changed(self, path: str) -> None:
        pass

    def removed(self, path: str) -> None:
        pass

    def moved(self, old: str, new: str) -> None:
        pass

    def exchanged(self, a: str, b: str) -> None:
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
    """A namespace mounted at a root name (``q``, ``related``). See ``mount.virtual``.

    Methods raise ``memexfs.errors`` classes; the handlers' boundary turns them into errno.
    """

    async def lookup(self, node: Node | None, name: str, ctx: RequestContext) -> Node: ...
    async def getattr(self, node: Node) -> EntryAttributes: ...
    async def entries(self, node: Node, ctx: RequestContext) -> list[tuple[str, Node]]: ...
    async def readlink(self, node: Node) -> bytes: ...
    async def read(self, node: Node, off: int, size: int) -> bytes: ...
    async def getxattr(self, node: Node, name: str) -> bytes: ...
    async def listxattr(self, node: Node) -> list[bytes]: ...
    async def mkdir(self, node: Node, name: str, ctx: RequestContext) -> Node: ...
    async def rmdir(self, node: Node, name: str, ctx: RequestContext) -> None: ...
