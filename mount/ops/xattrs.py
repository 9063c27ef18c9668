"""Extended attributes, passed through to the vault, plus the index's own ``user.memex.*``.

The index's xattrs (status, error, warnings, extracted fields) are answered from the indexer's
memory, never stored on the file and never a store call: a stalled store must not stall a
getxattr. No caller may set or remove them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from pyfuse3 import InodeT, RequestContext, XAttrNameT

from memexfs.errors import NoAttribute, NotPermitted, ReadOnly
from memexfs.fields_memory import SHOWN
from mount.inodes import Node
from mount.ops.core import OpsCore

STATUS_XATTR = b"user.memex.status"
ERROR_XATTR = b"user.memex.error"  # why a file is failed or metadata-only (one line)
WARNINGS_XATTR = b"user.memex.warnings"  # what extraction noted (one line per warning)
# user.memex.kind, .vendor, .amount, .currency, .due, .date, .payment: the extracted fields
FIELD_XATTRS = {b"user.memex." + name.encode(): name for name in SHOWN}
# served by the index, never stored on the file
INDEX_XATTRS = frozenset((STATUS_XATTR, ERROR_XATTR, WARNINGS_XATTR, *FIELD_XATTRS))


def _target(node: Node) -> tuple[str, bool]:
    """(path, follow) that reaches the object itself for the *xattr calls.

    An O_PATH fd is refused by f*xattr (EBADF), and its /proc link must be *followed*: the
    l*xattr calls would ask procfs about the link. A symlink is the exception: following
    would reach its target, so it is addressed by its resolved path, not followed. (The
    kernel already refuses user.* on symlinks before we are asked.)
    """
    if node.kind == stat.S_IFLNK:
        return os.readlink(node.proc), False
    return node.proc, True


class XattrOps(OpsCore):
    async def setxattr(self, inode: InodeT, name: XAttrNameT, value: bytes,
                       ctx: RequestContext) -> None:
        node = self.inodes[inode]
        if node.virtual is not None:
            setter = getattr(self._tree(node), "setxattr", None)
            if setter is None:
                raise ReadOnly("this virtual object takes no xattrs")
            await setter(node, os.fsdecode(name), value)
            return
        if name in INDEX_XATTRS:
            raise NotPermitted("the index's xattrs are its own")
        path, follow = _target(node)
        os.setxattr(path, name, value, follow_symlinks=follow)
        self._left_node(node)

    async def getxattr(self, inode: InodeT, name: XAttrNameT, ctx: RequestContext) -> bytes:
        node = self.inodes[inode]
        if node.virtual is not None:
            return await self._tree(node).getxattr(node, os.fsdecode(name))
        if name in INDEX_XATTRS:
            value = self._index_xattrs(node).get(name)
            if value is None:
                raise NoAttribute(os.fsdecode(name))
            return value
        path, follow = _target(node)
        return os.getxattr(path, name, follow_symlinks=follow)  # ENODATA is Linux's ENOATTR

    def _status(self, node: Node) -> str | None:
        if node.kind != stat.S_IFREG:
            return None
        path = self.relpath(node)
        return self.sink.status_of(path) if path else None

    def _index_xattrs(self, node: Node) -> dict[bytes, bytes]:
        """The index's xattrs of a real file that has them. Until the catalog is loaded at
        mount a file has none, like a file the index has not seen. The error is shown while it
        is the file's state (failed or metadata-only)."""
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
            return [XAttrNameT(n) for n in await self._tree(node).listxattr(node)]
        path, follow = _target(node)
        names = [XAttrNameT(os.fsencode(n)) for n in os.listxattr(path, follow_symlinks=follow)]
        # a stored user.memex.* (set before the mount) is shadowed by the index's, not listed twice
        names = [n for n in names if n not in INDEX_XATTRS]
        names += [XAttrNameT(n) for n in self._index_xattrs(node)]
        return names

    async def removexattr(self, inode: InodeT, name: XAttrNameT, ctx: RequestContext) -> None:
        node = self._real(inode)
        if name in INDEX_XATTRS:
            raise NotPermitted("the index's xattrs are its own")
        path, follow = _target(node)
        os.removexattr(path, name, follow_symlinks=follow)  # ENODATA is Linux's ENOATTR
        self._left_node(node)
