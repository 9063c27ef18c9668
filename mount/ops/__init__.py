"""FUSE operations: the real vault tree passed through, plus the virtual namespaces.

Only operations live here (S3QL's split): wiring is in ``mount.daemon``; the index is reached
through the ``IndexSink`` protocol (non-blocking notifications) and virtual folders through
``VirtualTree``. ``MemexOperations`` is the one class the daemon builds, composed of one handler
group per module (lookup and attributes, namespace changes, files, directories, xattrs) over
``OpsCore``'s shared state; every handler runs inside ``mount.boundary``'s error boundary.

File I/O on the vault runs directly on the trio thread, as in pyfuse3's passthrough example: a
local ``pread``/``pwrite`` is shorter than a thread hand-off. Nothing here calls Qdrant or the
encoder.
"""

from __future__ import annotations

from mount.boundary import guard_all
from mount.inodes import Node
from mount.names import STATE_DIR
from mount.ops.attrs import AttrOps
from mount.ops.core import Handle
from mount.ops.dirs import DirOps
from mount.ops.files import FileOps
from mount.ops.namespace import NamespaceOps
from mount.ops.protocols import IndexSink, NullSink, VirtualTree
from mount.ops.xattrs import XattrOps


@guard_all
class MemexOperations(AttrOps, NamespaceOps, FileOps, DirOps, XattrOps):
    supports_dot_lookup = False
    enable_writeback_cache = True


# Node and Handle: what a planted-fault daemon (tests/mount/faulty_daemon.py) patches around.
__all__ = ["STATE_DIR", "Handle", "IndexSink", "MemexOperations", "Node", "NullSink",
           "VirtualTree"]
