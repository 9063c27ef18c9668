"""``memexfs`` with two bugs planted, to prove the error boundary keeps the mount alive.

Run as ``python tests/mount/faulty_daemon.py mount --foreground VAULT MNT``. The faults sit in
helpers *inside* the real, boundary-wrapped handlers (not in replacement handlers), so what is
tested is the boundary exactly as production installs it:

- ``getxattr``/``listxattr`` of a file whose name contains ``boom-attr`` raise RuntimeError
  (via ``MemexOperations._status``);
- ``read``/``write``/``fsync`` on a handle of a file whose name contains ``boom-io`` raise
  RuntimeError (via ``MemexOperations._file``).
"""

from __future__ import annotations

import os
import sys

from memexfs import cli  # the package is installed (editable) in the venv
from mount import ops


def _is_magic(node: ops.Node, magic: str) -> bool:
    try:
        return magic in os.path.basename(os.readlink(node.proc))
    except OSError:
        return False


_status = ops.MemexOperations._status
_file = ops.MemexOperations._file


def faulty_status(self: ops.MemexOperations, node: ops.Node) -> str | None:
    if _is_magic(node, "boom-attr"):
        raise RuntimeError("injected fault in getxattr")
    return _status(self, node)


def faulty_file(self: ops.MemexOperations, fh: int) -> ops.Handle:
    h = _file(self, fh)
    node = self.inodes.nodes.get(h.inode)
    if node is not None and _is_magic(node, "boom-io"):
        raise RuntimeError("injected fault in file I/O")
    return h


ops.MemexOperations._status = faulty_status  # type: ignore[method-assign]
ops.MemexOperations._file = faulty_file  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
