"""The sandboxed worker process: ``python -m memexfs.extract.worker``.

Its stdin is a SOCK_SEQPACKET socket on which each request (``{"path": ..., "limits": {...}}``)
arrives with the open file's descriptor attached; it answers one JSON line on stdout. It reads only
that descriptor: the path names the file in messages and gives its extension, and is never reopened
(a symlink swapped in meanwhile is not followed). It limits its own address space (RLIMIT_AS) and
exits when its parent goes away, so a runaway parser cannot outlive the mount.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import BinaryIO

from memexfs.extract.inprocess import extract_fd
from memexfs.extract.model import MAX_REQUEST_BYTES, Extracted, Limits, failed

log = logging.getLogger(__name__)


def _limit_memory() -> None:
    mb = int(os.environ.get("MEMEXFS_EXTRACT_MEMORY_MB", "0") or 0)
    if mb <= 0:
        return
    import resource

    limit = mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _watch_parent() -> None:
    """Exit when the parent dies, even in the middle of a long parse."""
    parent = os.getppid()

    def loop() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=loop, name="parent-watch", daemon=True).start()


def serve(sock: socket.socket, stdout: BinaryIO) -> None:
    """Answer requests until the daemon closes its end of ``sock``."""
    with contextlib.suppress(BrokenPipeError, ConnectionError):  # the daemon died: just go
        _serve(sock, stdout)


def _serve(sock: socket.socket, stdout: BinaryIO) -> None:
    while True:
        msg, fds, flags, _ = socket.recv_fds(sock, MAX_REQUEST_BYTES, 4)
        if not msg and not fds:
            return
        for extra in fds[1:]:
            os.close(extra)
        fd = fds[0] if fds else None
        try:
            result, exit_after = _answer(msg, flags, fd)
        finally:
            if fd is not None:
                os.close(fd)
        reply = json.dumps({"result": result.to_json(), "exit": exit_after}, ensure_ascii=True)
        stdout.write(reply.encode("ascii") + b"\n")
        stdout.flush()
        if exit_after:
            return


def _answer(msg: bytes, flags: int, fd: int | None) -> tuple[Extracted, bool]:
    """One request -> (result, whether this worker should be replaced afterwards)."""
    path, limits = "?", Limits()
    try:
        request = json.loads(msg)
        path = str(request["path"])
        limits = Limits(**request.get("limits", {}))
        if flags & socket.MSG_TRUNC or fd is None:
            raise ValueError("request truncated or without a file descriptor")
        return extract_fd(fd, path, limits), False
    except MemoryError:
        # the heap may be in a bad state: let the parent start a fresh one
        return failed(path, f"out of memory (limit {limits.memory_mb} MB)"), True
    except Exception as exc:  # our bug, not the file's: retried later
        log.error("extract worker error on %s", path, exc_info=True)
        return failed(path, f"extract worker error: {type(exc).__name__}: {exc}",
                      transient=True), False


def main() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.ERROR)  # warnings go into the reply, not to the mount's stderr
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    _watch_parent()
    # Import the parsers before limiting memory so the limit bounds parsing, not start-up.
    import bs4  # noqa: F401
    import docx  # noqa: F401
    import pypdf  # noqa: F401

    _limit_memory()
    serve(socket.socket(fileno=0), sys.stdout.buffer)


if __name__ == "__main__":
    main()
