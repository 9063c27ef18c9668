"""``memexfs`` whose store can be made to block while holding the GIL, with short store deadlines.

Run as ``python tests/mount/store_fault_daemon.py mount ...``. The same script is the store
process (``... store-child FD``), so the planted fault sits in ``EdgeStore`` wherever it runs:
in the daemon if the store is in-process, in the child if it has a process of its own.

- ``EdgeStore.put_file`` of a path containing ``gil-block`` blocks for ``GIL_BLOCK_S`` in a C call
  that keeps the GIL (``ctypes.PyDLL``), as Qdrant Edge does on a frozen disk; once per vault:
  the first such call creates the marker file named by ``MEMEXFS_TEST_GIL_MARKER``, so a test
  knows the block has begun.
- Store calls time out after ``MEMEXFS_TEST_STORE_TIMEOUT`` seconds (default 3) and a failed
  store process is restarted after a short backoff.
"""

from __future__ import annotations

import ctypes
import os
import sys

from memexfs import cli, store
from memexfs.schema import FileRecord
from memexfs.store import process as store_process

GIL_BLOCK_S = 8
_put_file = store.EdgeStore.put_file


def blocking_put_file(self: store.EdgeStore, rec: FileRecord) -> None:
    marker = os.environ.get("MEMEXFS_TEST_GIL_MARKER")
    if marker and "gil-block" in rec.path:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass
        else:
            ctypes.PyDLL(None).sleep(GIL_BLOCK_S)  # the GIL stays held for the whole call
    _put_file(self, rec)


store.EdgeStore.put_file = blocking_put_file  # type: ignore[method-assign]
store_process.CHILD_ARGV = [sys.executable, os.path.abspath(__file__), "store-child"]
store_process.DEFAULT_TIMEOUT_S = float(os.environ.get("MEMEXFS_TEST_STORE_TIMEOUT", "3"))
store_process.BACKOFF_S = (0.2, 1.0)

if __name__ == "__main__":
    if sys.argv[1:2] == ["store-child"]:
        sys.exit(store_process.main(sys.argv[2:]))
    sys.exit(cli.main(sys.argv[1:]))
