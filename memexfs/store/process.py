"""The Qdrant Edge store in a process of its own, behind the ``Store`` protocol.

Qdrant Edge 0.9 holds the GIL while it blocks on disk (a frozen or slow index file system would
stop every FUSE handler of the daemon), panics with an exception that is not an ``Exception``
on a corrupt shard, and dies by SIGBUS when its mmapped files hit a full disk. So the daemon
keeps ``EdgeStore`` in a child: a fresh interpreter (``python -m memexfs.store serve FD``,
never a fork of the daemon with its trio and FUSE state) that inherits only one end of a
socketpair, and answers one length-prefixed pickle message per call.

The parent (:class:`ProcessStore`) gives each call a deadline. A child that does not answer in
time is killed; one that died (a signal, an exit) or panicked is reaped; either way the call
raises ``IndexUnavailable`` with the reason, one error line is logged per failure streak, and
the next call after a backoff starts a new child. A waiting caller only sits in ``recv`` (GIL
released), so whatever the engine does, plain file I/O in the daemon keeps going.

Size: the parent's proxy and the child's loop are two halves of one protocol with its
deadlines and restart rules; ``wire`` holds the framing.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from memexfs.errors import IndexUnavailable, MemexError
from memexfs.schema import FileRecord
from memexfs.store.api import PAGE, ChunkHit, ChunkPoint, ChunkQuery, Filter
from memexfs.store.edge import EdgeStore
from memexfs.store.optimize import IndexPolicy
from memexfs.store.wire import death, handle, rebuild_error, recv_msg, send_bytes, send_msg

log = logging.getLogger(__name__)

# Module-level so a test harness can point them elsewhere (a child with planted faults, short
# deadlines); ProcessStore reads them when it is created.
CHILD_ARGV: list[str] = [sys.executable, "-m", "memexfs.store", "serve"]
DEFAULT_TIMEOUT_S = 30.0  # per call, once the store is open
OPEN_TIMEOUT_S = 120.0  # opening a large index replays its WAL
BACKOFF_S = (0.5, 30.0)  # first and longest wait before restarting a failed store process


# ---- the parent side -----------------------------------------------------------------------
class ProcessStore:
    """``Store`` whose ``EdgeStore`` lives in a child process; safe from many threads.

    One request at a time holds ``_lock`` (the engine serialises calls anyway). A caller waits
    at most ``timeout`` for the lock and ``timeout`` for its answer. Creating the store starts the
    child but does not wait for the index to open, and never raises for a broken index: each
    call raises ``IndexUnavailable`` with the reason until a new child opens it (``ping`` asks
    eagerly; ``repair`` rebuilds an index that cannot be opened). The child's stderr (its log,
    a fatal signal's traceback, the engine's panic messages) is the caller's, or appended to
    ``log_to`` (a command line tool's stderr is for one-line errors).

    The child keeps HNSW built in the background (``index_policy``, default
    :class:`IndexPolicy`; ``background_index=False`` turns it off): the build runs in a third
    process, so searches and writes keep their deadlines meanwhile.
    """

    def __init__(self, root: str | Path, dim: int, *, timeout: float | None = None,
                 open_timeout: float | None = None, reserve_bytes: int | None = None,
                 repair: bool = False, backoff: tuple[float, float] | None = None,
                 log_to: str | Path | None = None, background_index: bool = True,
                 index_policy: IndexPolicy | None = None) -> None:
        self.root = Path(root)
        self.index_policy = (index_policy or IndexPolicy()) if background_index else None
        self.log_to = log_to
        self.dim = dim
        self.timeout = DEFAULT_TIMEOUT_S if timeout is None else timeout
        self.open_timeout = OPEN_TIMEOUT_S if open_timeout is None else open_timeout
        self.backoff = BACKOFF_S if backoff is None else backoff
        self.reserve_bytes = reserve_bytes
        self.moved_aside: str | None = None  # set when a repair moved a broken index aside
        self._argv = list(CHILD_ARGV)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._open_deadline: float | None = None  # the child's "opened" answer is still due
        self._failing: str | None = None  # reason of the current failure streak
        self._retry_at = 0.0
        self._wait = 0.0
        self._closed = False
        with self._lock:
            self._start(repair)

    # -- child lifecycle (all under _lock)
    def _start(self, repair: bool = False) -> None:
        try:
            self._spawn(repair)
        except OSError as exc:
            self._lose(f"cannot start the index process: {exc}")

    def _spawn(self, repair: bool) -> None:
        log_fd = (os.open(self.log_to, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                          0o600) if self.log_to is not None else None)
        mine, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [*self._argv, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                close_fds=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=log_fd)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
            if log_fd is not None:
                os.close(log_fd)
        self._sock = mine
        config = {"root": str(self.root), "dim": self.dim, "reserve_bytes": self.reserve_bytes,
                  "repair": repair, "index_policy": self.index_policy}
        self._open_deadline = time.monotonic() + self.open_timeout
        send_msg(mine, config, self._open_deadline)

    def _finish_open(self) -> None:
        assert self._sock is not None
        assert self._open_deadline is not None
        reply = recv_msg(self._sock, self._open_deadline)
        self._open_deadline = None
        if reply[0] != "ok":
            raise rebuild_error(reply)
        self.moved_aside = reply[1].get("moved_aside") or self.moved_aside

    def _ensure_running(self) -> None:
        if self._closed:
            raise IndexUnavailable("the index is closed")
        if self._proc is not None:
            return
        if time.monotonic() < self._retry_at:
            raise IndexUnavailable(self._failing or "the index process is not running")
        self._start()
        if self._proc is None:
            raise IndexUnavailable(self._failing or "the index process is not running")

    def _reap(self) -> int | None:
        """Stop the child (if it still runs) and return its exit status (None: killed by us)."""
        proc, sock = self._proc, self._sock
        self._proc, self._sock, self._open_deadline = None, None, None
        if sock is not None:
            sock.close()
        if proc is None:
            return None
        try:
            return proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None

    def _lose(self, reason: str) -> None:
        """The child failed: reap it, start or extend the failure streak, schedule a retry."""
        self._reap()
        low, high = self.backoff
        self._wait = low if self._failing is None else min(self._wait * 2, high)
        self._retry_at = time.monotonic() + self._wait
        if self._failing is None:
            log.error("index unavailable: %s (will retry)", reason)
        self._failing = reason

    def _ok(self) -> None:
        if self._failing is not None:
            log.info("index available again (after: %s)", self._failing)
            self._failing = None
            self._wait = 0.0

    # -- one request
    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if not self._lock.acquire(timeout=self.timeout):
            raise IndexUnavailable(f"index busy: no turn within {self.timeout:g} s")
        try:
            self._ensure_running()
            sock = self._sock
            assert sock is not None
            request = pickle.dumps((method, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
            try:
                if self._open_deadline is not None:
                    self._finish_open()
                deadline = time.monotonic() + self.timeout
                send_bytes(sock, request, deadline)
                reply = recv_msg(sock, deadline)
            except TimeoutError:
                if self._proc is not None:
                    self._proc.kill()
                reason = f"index process did not answer {method} within {self.timeout:g} s"
                self._lose(reason)
                raise IndexUnavailable(reason) from None
            except (EOFError, OSError):
                reason = death(self._reap())
                self._lose(reason)
                raise IndexUnavailable(reason) from None
            except IndexUnavailable as exc:  # the child could not open the index
                self._lose(str(exc))
                raise
            except Exception as exc:  # a garbled reply: the stream is out of step
                reason = f"index process protocol error: {exc!r}"
                self._lose(reason)
                raise IndexUnavailable(reason) from exc
            except BaseException:  # interrupted mid-exchange: a later reply would be stale
                self._reap()
                raise
            if reply[0] == "ok":
                self._ok()
                return reply[1]
            error = rebuild_error(reply)
            if reply[1] == "panic":  # the child exits after a panic
                self._lose(str(error))
            else:
                self._ok()  # it answered: the process is healthy
            raise error
        finally:
            self._lock.release()

    def _pages(self, method: str, flt: Filter | None) -> Iterator[Any]:
        offset = None
        while True:
            page, offset = self._call(method, flt, offset, PAGE)
            yield from page
            if offset is None:
                return

    # -- control
    @property
    def pid(self) -> int | None:
        """The store process's pid (None while none runs)."""
        proc = self._proc
        return proc.pid if proc is not None else None

    @property
    def failure(self) -> str | None:
        """Why the index is unavailable right now (None when the last call worked)."""
        return self._failing

    def ping(self) -> None:
        """Raise ``IndexUnavailable`` (with the reason) unless the store is open and answers."""
        self._call("ping")

    def repair(self) -> str | None:
        """Reopen the index; if it cannot be opened, move it aside and start an empty one.
        Returns where the broken index went (None if it opened fine)."""
        with self._lock:
            self._shutdown()
            self._closed = False
            self._failing, self._retry_at = None, 0.0
            self.moved_aside = None
            self._start(repair=True)
        self.ping()
        return self.moved_aside

    def _shutdown(self) -> None:
        if self._proc is None:
            return
        try:
            assert self._sock is not None
            if self._open_deadline is not None:
                self._finish_open()
            deadline = time.monotonic() + self.timeout
            send_msg(self._sock, ("close", (), {}), deadline)
            recv_msg(self._sock, deadline)
        except (OSError, EOFError, MemexError):
            log.debug("store process did not close cleanly", exc_info=True)
        proc = self._proc
        try:
            proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
        self._reap()

    def close(self) -> None:
        if not self._lock.acquire(timeout=self.timeout):
            log.error("closing the index: a call is stuck; killing the store process")
            proc = self._proc
            if proc is not None:
                proc.kill()
            return
        try:
            if not self._closed:
                self._closed = True
                self._shutdown()
        finally:
            self._lock.release()

    # -- the Store protocol
    def put_file(self, rec: FileRecord) -> None:
        self._call("put_file", rec)

    def get_file(self, file_id: str) -> FileRecord | None:
        return self._call("get_file", file_id)  # type: ignore[no-any-return]

    def file_by_path(self, path: str) -> FileRecord | None:
        return self._call("file_by_path", path)  # type: ignore[no-any-return]

    def update_file(self, file_id: str, **changes: Any) -> None:
        self._call("update_file", file_id, **changes)

    def delete_file(self, file_id: str) -> None:
        self._call("delete_file", file_id)

    def iter_files(self, flt: Filter | None = None) -> Iterator[FileRecord]:
        return self._pages("files_page", flt)

    def count_files(self, flt: Filter | None = None) -> int:
        return int(self._call("count_files", flt))

    def put_chunks(self, file_id: str, points: Sequence[ChunkPoint]) -> None:
        self._call("put_chunks", file_id, list(points))

    def delete_chunks(self, file_id: str) -> None:
        self._call("delete_chunks", file_id)

    def move_chunks(self, file_id: str, payload: dict[str, Any]) -> None:
        self._call("move_chunks", file_id, payload)

    def chunk_vectors(self, file_id: str) -> dict[str, list[float]]:
        return self._call("chunk_vectors", file_id)  # type: ignore[no-any-return]

    def count_chunks(self, flt: Filter | None = None) -> int:
        return int(self._call("count_chunks", flt))

    def search(self, q: ChunkQuery) -> list[ChunkHit]:
        return self._call("search", q)  # type: ignore[no-any-return]

    def search_batch(self, qs: Sequence[ChunkQuery]) -> list[list[ChunkHit]]:
        return self._call("search_batch", list(qs))  # type: ignore[no-any-return]

    def iter_chunks(self, flt: Filter | None = None) -> Iterator[ChunkHit]:
        return self._pages("chunks_page", flt)

    def distinct(self, key: str) -> list[str | int | bool]:
        return self._call("distinct", key)  # type: ignore[no-any-return]

    def flush(self) -> None:
        self._call("flush")

    # -- the background HNSW build (see EdgeStore)
    def index_status(self) -> dict[str, Any]:
        return self._call("index_status")  # type: ignore[no-any-return]

    def start_index_build(self, policy: IndexPolicy | None = None) -> bool:
        """Start a build; the child copies the shard in a thread, so this returns at once."""
        return bool(self._call("start_index_build", policy, wait=False))

    def poll_index_build(self) -> bool:
        """Start swapping a finished build in (True); the child swaps in a thread."""
        return bool(self._call("poll_index_build", wait=False))


# ---- the child side ------------------------------------------------------------------------
def _on_term(signum: int, frame: Any) -> None:
    raise SystemExit(0)  # close (flush) the shards, then exit


def serve(sock: socket.socket, store: Any) -> bool:
    """Answer requests until the parent closes the connection, asks to close (returns True),
    or the engine panics (exits)."""
    while True:
        try:
            method, args, kwargs = recv_msg(sock)
        except (EOFError, ConnectionError):
            return False  # the daemon is gone
        reply, fatal = handle(store, method, args, kwargs)
        try:
            send_msg(sock, reply)
        except OSError:
            return bool(method == "close")
        if fatal:
            log.error("the index engine panicked in %s: exiting so a new process takes over",
                      method)
            os._exit(70)  # its state is unknown: no flush through a panicked engine
        if method == "close":
            return True


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    sock = socket.socket(fileno=int(args[0]))
    os.umask(0o077)  # the index holds the documents' text: never group/world readable
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's to handle
    signal.signal(signal.SIGTERM, _on_term)
    faulthandler.enable()  # a SIGBUS leaves its traceback in the daemon's log
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[store %(process)d]: "
                               "%(message)s")
    try:
        config = recv_msg(sock)
    except (EOFError, ConnectionError):
        return 0  # the daemon died before it asked for anything
    try:
        store = EdgeStore(config["root"], int(config["dim"]),
                          reserve_bytes=config.get("reserve_bytes"),
                          repair=bool(config.get("repair")),
                          index_policy=config.get("index_policy"))
    except MemexError as exc:
        with contextlib.suppress(OSError):  # a daemon that is gone needs no answer
            send_msg(sock, ("err", "memex", type(exc).__name__, str(exc)))
        return 1
    moved = str(store.moved_aside) if store.moved_aside else None
    closed = False
    try:
        try:
            send_msg(sock, ("ok", {"pid": os.getpid(), "moved_aside": moved}))
        except OSError:  # the daemon died while the shards opened: flush and go
            return 0
        closed = serve(sock, store)
    finally:
        if not closed:  # the daemon went away (or SIGTERM): flush what we have
            store.close()
    return 0
