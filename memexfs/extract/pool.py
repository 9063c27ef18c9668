"""The worker pool: the daemon's side of extraction.

Parsing untrusted files (corrupt PDFs, 2 MB single lines, odd encodings) is done in a separate
process with time, memory and output limits, so one bad file can neither crash nor hang the mount.
The worker gets the caller's open descriptor, never a path to reopen, and a failure of the worker
itself (not of the file) is marked ``transient`` so the file is retried, not remembered as bad.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import IO

from memexfs.extract.model import OPEN_FLAGS, Extracted, Limits, failed

log = logging.getLogger(__name__)

WORKER_MODULE = "memexfs.extract.worker"


class _WorkerDied(Exception):
    pass


class _Worker:
    """One long-lived ``python -m memexfs.extract.worker``.

    Requests go over a SOCK_SEQPACKET socket (the worker's stdin), each with the open file's
    descriptor attached (SCM_RIGHTS): the worker reads the file the daemon opened and hashed and
    never reopens a path by name. Replies come back as JSON lines on a pipe (no size limit per
    message), waited for with poll(), which unlike select() takes descriptors above 1024.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._buf = b""

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the folder holding memexfs/
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["MEMEXFS_EXTRACT_MEMORY_MB"] = str(self.limits.memory_mb)
        # Native libraries must not spawn thread pools inside the worker.
        env.setdefault("OMP_NUM_THREADS", "1")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE],
                stdin=theirs.fileno(),
                stdout=subprocess.PIPE,
                stderr=None,
                env=env,
                close_fds=True,
                start_new_session=True,  # a Ctrl-C meant for the mount does not kill the worker
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # only the worker holds its end: its death is EOF here
        self._sock = ours
        self._buf = b""
        log.debug("extract worker started, pid %d", proc.pid)
        return proc

    def request(self, path: str, fd: int) -> Extracted:
        msg = json.dumps({"path": path, "limits": asdict(self.limits)}, ensure_ascii=True)
        for attempt in range(2):
            if self.proc is None or self.proc.poll() is not None:
                self.kill()
                self.proc = self._start()
            assert self._sock is not None
            try:
                socket.send_fds(self._sock, [msg.encode("ascii")], [fd])
                break
            except OSError as exc:  # died between two requests: the file was never seen
                self.kill()
                if attempt:
                    raise _WorkerDied(f"worker pipe broken: {exc}") from exc
        proc = self.proc
        assert proc is not None
        assert proc.stdout is not None
        line = self._read_line(proc.stdout, time.monotonic() + self.limits.timeout_s)
        reply = json.loads(line)
        if reply.get("exit"):
            self.kill()  # the worker asked to be replaced (e.g. after MemoryError)
        return Extracted.from_json(reply["result"])

    def _read_line(self, stdout: IO[bytes], deadline: float) -> bytes:
        fd = stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)  # POLLHUP and POLLERR are always reported
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise TimeoutError
            if not poller.poll(max(1, math.ceil(remaining * 1000))):
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                code = self.kill()
                raise _WorkerDied(_describe_exit(code))
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def kill(self) -> int | None:
        proc, self.proc = self.proc, None
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()
        return proc.wait()

    def close(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None and self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)  # EOF: the worker exits on its own
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self.kill()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "extract worker vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        fatal = (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT)
        hint = " (memory limit?)" if -code in fatal else ""
        return f"extract worker killed by {name}{hint}"
    return f"extract worker exited with status {code}"


class Extractor:
    """A persistent pool of worker subprocesses (one by default), restarted after a crash,
    timeout or memory kill — starting Python and its parsers per file would cost too much.

    Thread-safe: each call borrows one idle worker; with ``workers=1`` calls are serialised.
    """

    def __init__(self, limits: Limits = Limits(), workers: int = 1) -> None:  # noqa: B008
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.limits = limits
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all = [_Worker(limits) for _ in range(workers)]
        for w in self._all:
            self._idle.put(w)
        self._closed = False
        self._lock = threading.Lock()

    def extract(self, path: str | os.PathLike[str], *, fd: int | None = None) -> Extracted:
        """Extract ``path`` in a worker; never raises for bad input or a failing worker.

        ``fd`` is the file as the caller opened (and hashed) it; the worker reads that descriptor.
        Without it the path is opened here, its last component not followed. Worker-side trouble
        (timeout, crash, broken pipe, garbled reply) gives a *transient* ``failed`` record.
        """
        if self._closed:
            raise RuntimeError("Extractor is closed")
        spath = os.path.abspath(os.fspath(path))
        if fd is not None:
            return self._extract_fd(spath, fd)
        try:
            own = os.open(spath, OPEN_FLAGS)
        except OSError as exc:
            return failed(spath, f"cannot open: {exc.strerror or exc}",
                          transient=exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP))
        try:
            return self._extract_fd(spath, own)
        finally:
            os.close(own)

    def _extract_fd(self, spath: str, fd: int) -> Extracted:
        worker = self._idle.get()
        try:
            try:
                return worker.request(spath, fd)
            except TimeoutError:
                msg = f"extraction timed out after {self.limits.timeout_s:g}s"
            except _WorkerDied as exc:
                msg = str(exc)
            except (ValueError, KeyError, TypeError) as exc:  # garbled reply
                worker.kill()
                msg = f"bad reply from extract worker: {type(exc).__name__}: {exc}"
            except OSError as exc:  # no socket, no process (EMFILE, EAGAIN...)
                worker.kill()
                msg = f"extract worker unavailable: {exc}"
            except Exception as exc:  # a bug of ours must not mark the file as bad for good
                log.exception("extract worker request failed")
                worker.kill()
                msg = f"extract worker error: {type(exc).__name__}: {exc}"
            log.warning("extract %s: %s", spath, msg)
            return failed(spath, msg, mime=_cheap_mime(fd), transient=True)
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for w in self._all:
            w.close()

    def __enter__(self) -> Extractor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _cheap_mime(fd: int) -> str:
    """Best-effort mime for a failure record, without parsing anything."""
    try:
        head = os.pread(fd, 8, 0)
    except OSError:
        return "application/octet-stream"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return "application/octet-stream"
