"""The store process's wire: length-prefixed pickle messages and error replies.

Shared by both ends of ``memexfs.store.process``: the parent sends ``(method, args, kwargs)``,
the child answers ``("ok", value)`` or ``("err", kind, name, message)``; :func:`rebuild_error`
turns an error reply back into the exception a caller sees (``IndexUnavailable`` for anything
from the engine, caller bugs keeping their type).
"""

from __future__ import annotations

import errno
import pickle
import signal
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

from memexfs import errors
from memexfs.errors import IndexUnavailable, MemexError
from memexfs.store.api import IndexTooNew
from memexfs.store.edge import is_panic

# What the child answers to; iterators travel as pages (files_page / chunks_page).
METHODS = frozenset({
    "put_file", "get_file", "file_by_path", "update_file", "delete_file", "files_page",
    "count_files", "put_chunks", "delete_chunks", "move_chunks", "chunk_vectors", "count_chunks",
    "search", "search_batch", "chunks_page", "distinct", "flush", "close", "ping",
    "index_status", "start_index_build", "poll_index_build",
})
_PASS_THROUGH = (ValueError, TypeError, KeyError)  # caller bugs keep their type across the pipe
_STORE_ERRORS: dict[str, type[MemexError]] = {"IndexTooNew": IndexTooNew}  # beside memexfs.errors

_HEADER = struct.Struct("!Q")
_SMALL = 1 << 16


# ---- framing -------------------------------------------------------------------------------
def send_msg(sock: socket.socket, obj: Any, deadline: float | None = None) -> None:
    send_bytes(sock, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), deadline)


def send_bytes(sock: socket.socket, data: bytes, deadline: float | None = None) -> None:
    _settimeout(sock, deadline)
    if len(data) < _SMALL:
        sock.sendall(_HEADER.pack(len(data)) + data)
    else:  # no copy of a large payload just to prepend eight bytes
        sock.sendall(_HEADER.pack(len(data)))
        _settimeout(sock, deadline)
        sock.sendall(data)


def recv_msg(sock: socket.socket, deadline: float | None = None) -> Any:
    (n,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, deadline))
    return pickle.loads(_recv_exact(sock, n, deadline))


def _recv_exact(sock: socket.socket, n: int, deadline: float | None) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        _settimeout(sock, deadline)
        k = sock.recv_into(view[got:])
        if k == 0:
            raise EOFError("the other end closed the connection")
        got += k
    return buf


def _settimeout(sock: socket.socket, deadline: float | None) -> None:
    if deadline is None:
        sock.settimeout(None)
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    sock.settimeout(left)


# ---- replies -------------------------------------------------------------------------------
Reply = tuple[Any, ...]


def handle(store: Any, method: str, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[
        Reply, bool]:
    """Run one request against ``store``; returns (reply, fatal). Fatal means a panic: the
    engine's state is unknown afterwards, so the child exits and the parent starts a new one."""
    if method not in METHODS:
        return ("err", "builtin", "ValueError", f"unknown store method {method!r}"), False
    try:
        return ("ok", getattr(store, method)(*args, **kwargs)), False
    except MemexError as exc:
        return ("err", "memex", type(exc).__name__, str(exc)), False
    except _PASS_THROUGH as exc:
        return ("err", "builtin", type(exc).__name__, str(exc)), False
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            return ("err", "memex", "IndexFull", f"index disk full: {exc}"), False
        return ("err", "engine", type(exc).__name__, str(exc)), False
    except Exception as exc:  # every engine error crosses the pipe as a reply
        return ("err", "engine", type(exc).__name__, str(exc)), False
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # pyo3's PanicException is a BaseException
        kind = "panic" if is_panic(exc) else "engine"
        return ("err", kind, type(exc).__name__, str(exc)), True


def rebuild_error(reply: Reply) -> Exception:
    """The exception a caller sees for an error reply."""
    _, kind, name, message = reply
    if kind == "memex":
        cls = _STORE_ERRORS.get(name) or getattr(errors, name, None)
        if isinstance(cls, type) and issubclass(cls, MemexError):
            return cls(message)
        return IndexUnavailable(message)
    if kind == "builtin":
        builtin = {c.__name__: c for c in _PASS_THROUGH}.get(name, ValueError)
        return builtin(message)
    if kind == "panic":
        return IndexUnavailable(f"the index engine panicked: {message}")
    return IndexUnavailable(f"index engine error: {name}: {message}")


def death(rc: int | None) -> str:
    if rc is None:
        return "index process stopped answering (killed)"
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        hint = " (a full or vanished index disk?)" if -rc == signal.SIGBUS else ""
        return f"index process died: {name} (signal {-rc}){hint}"
    return f"index process exited with status {rc}"
