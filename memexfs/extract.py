"""Text extraction: public API, content sniffing and the isolated worker pool.

Parsing untrusted files (corrupt PDFs, 2 MB single lines, odd encodings) is done in a separate
process with time, memory and output limits, so one bad file can neither crash nor hang the mount.
The parsers themselves live in :mod:`memexfs.extract_worker`; this module only decides *what* a file
is (by its bytes first, its extension second) and manages the worker processes. The worker gets the
caller's open descriptor, never a path to reopen, and a failure of the worker itself (not of the
file) is marked ``transient`` so the file is retried instead of remembered as bad.
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
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, get_args

log = logging.getLogger(__name__)

__all__ = [
    "ExtractStatus",
    "Extracted",
    "Extractor",
    "Limits",
    "Sniffed",
    "extract_in_process",
    "known_binary",
    "sniff",
]

ExtractStatus = Literal["ok", "metadata-only", "failed"]
_STATUSES: frozenset[str] = frozenset(get_args(ExtractStatus))


@dataclass(frozen=True)
class Limits:
    """Resource limits for extracting one file."""

    timeout_s: float = 20.0
    memory_mb: int = 768  # RLIMIT_AS of the worker process
    max_input_bytes: int = 64 * 2**20  # bigger files: metadata only
    max_output_chars: int = 2_000_000  # text truncated beyond this (recorded in warnings)


@dataclass(frozen=True)
class Extracted:
    """What extraction learnt about one file; always produced, even for failures.

    ``transient`` marks a failure that says nothing about the file (the worker died, timed out, the
    pipe broke, a bug of ours): it must be retried, not remembered. Content failures (a corrupt PDF,
    out of memory on a hostile file) are permanent until the file changes.
    """

    status: ExtractStatus
    doc_type: str  # "text","markdown","code","html","pdf","docx","email","csv","json","binary",...
    mime: str
    title: str
    text: str
    meta: dict[str, str]
    error: str | None
    warnings: tuple[str, ...] = ()
    transient: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Extracted:
        status = str(data["status"])
        if status not in _STATUSES:
            raise ValueError(f"unknown extraction status {status!r}")
        return cls(
            status=status,  # type: ignore[arg-type]  # checked against ExtractStatus above
            doc_type=str(data["doc_type"]),
            mime=str(data["mime"]),
            title=str(data["title"]),
            text=str(data["text"]),
            meta={str(k): str(v) for k, v in dict(data["meta"]).items()},
            error=None if data.get("error") is None else str(data["error"]),
            warnings=tuple(str(w) for w in data.get("warnings", ())),
            transient=bool(data.get("transient", False)),
        )


# --------------------------------------------------------------------------------------------
# Sniffing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sniffed:
    """The type of a file as judged from its content (and its extension where content is silent)."""

    doc_type: str
    mime: str
    encoding: str | None = None  # for text types: the codec to decode with
    note: str | None = None  # e.g. "extension .jpg but content is text"
    extra: dict[str, str] = field(default_factory=dict)


_BINARY_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xd8\xff", "image", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image", "image/png"),
    (b"GIF87a", "image", "image/gif"),
    (b"GIF89a", "image", "image/gif"),
    (b"II*\x00", "image", "image/tiff"),
    (b"MM\x00*", "image", "image/tiff"),
    (b"BM", "image", "image/bmp"),
    (b"\x00\x00\x01\x00", "image", "image/x-icon"),
    (b"\x7fELF", "binary", "application/x-executable"),
    (b"\x1f\x8b", "archive", "application/gzip"),
    (b"BZh", "archive", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "archive", "application/x-xz"),
    (b"7z\xbc\xaf\x27\x1c", "archive", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "archive", "application/vnd.rar"),
    (b"\x28\xb5\x2f\xfd", "archive", "application/zstd"),
    (b"OggS", "audio", "audio/ogg"),
    (b"fLaC", "audio", "audio/flac"),
    (b"ID3", "audio", "audio/mpeg"),
    (b"SQLite format 3\x00", "binary", "application/vnd.sqlite3"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "binary", "application/x-ole-storage"),
)

_TEXT_TYPES_BY_EXT: dict[str, tuple[str, str]] = {
    ".md": ("markdown", "text/markdown"),
    ".markdown": ("markdown", "text/markdown"),
    ".mdown": ("markdown", "text/markdown"),
    ".rst": ("text", "text/x-rst"),
    ".html": ("html", "text/html"),
    ".htm": ("html", "text/html"),
    ".xhtml": ("html", "application/xhtml+xml"),
    ".eml": ("email", "message/rfc822"),
    ".csv": ("csv", "text/csv"),
    ".tsv": ("csv", "text/tab-separated-values"),
    ".json": ("json", "application/json"),
    ".jsonl": ("json", "application/x-ndjson"),
    ".ndjson": ("json", "application/x-ndjson"),
}

CODE_EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".jsx": "javascript", ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".cxx": "cpp", ".go": "go", ".rs": "rust",
    ".java": "java", ".kt": "kotlin", ".scala": "scala", ".rb": "ruby", ".php": "php",
    ".sh": "shell", ".bash": "shell", ".zsh": "shell", ".fish": "shell", ".pl": "perl",
    ".lua": "lua", ".r": "r", ".sql": "sql", ".swift": "swift", ".cs": "csharp",
    ".m": "objc", ".hs": "haskell", ".ml": "ocaml", ".ex": "elixir", ".exs": "elixir",
    ".erl": "erlang", ".clj": "clojure", ".dart": "dart", ".jl": "julia", ".zig": "zig",
    ".nim": "nim", ".ps1": "powershell", ".bat": "batch", ".mk": "make", ".cmake": "cmake",
    ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".ini": "ini", ".cfg": "ini",
    ".xml": "xml", ".css": "css", ".scss": "css", ".vue": "vue", ".svelte": "svelte",
    ".tex": "latex", ".ipynb": "json",
}
_CODE_FILENAMES = {"makefile": "make", "dockerfile": "docker", "cmakelists.txt": "cmake"}

_EMAIL_HEADERS = (
    b"from:", b"to:", b"subject:", b"date:", b"message-id:", b"received:", b"return-path:",
    b"mime-version:", b"content-type:", b"cc:", b"reply-to:", b"delivered-to:",
)

SNIFF_BYTES = 64 * 1024


def _looks_like_email(head: bytes) -> bool:
    """RFC 822: the file opens with `Name: value` header lines, several of them mail headers."""
    lines = head[:8192].replace(b"\r\n", b"\n").split(b"\n")
    known = 0
    for line in lines[:40]:
        if not line.strip():
            break
        if line[:1] in (b" ", b"\t"):
            continue
        name, sep, _ = line.partition(b":")
        if not sep or b" " in name.strip() or not name:
            return False
        if any(line.lower().startswith(h) for h in _EMAIL_HEADERS):
            known += 1
    return known >= 3


def _looks_like_html(head: bytes) -> bool:
    start = head[:2048].lstrip().lower()
    if start.startswith(b"\xef\xbb\xbf"):
        start = start[3:].lstrip()
    return start.startswith((b"<!doctype html", b"<html")) or (
        start.startswith(b"<") and b"<body" in head[:8192].lower()
    )


def _zip_type(source: str | IO[bytes]) -> tuple[str, str]:
    """Office documents are zip files; tell them apart by their members."""
    try:
        with zipfile.ZipFile(source) as zf:
            names = set(zf.namelist()[:2000])
    except (zipfile.BadZipFile, OSError, ValueError):
        return "archive", "application/zip"
    if "word/document.xml" in names:
        return "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    if "xl/workbook.xml" in names:
        return "binary", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    if "ppt/presentation.xml" in names:
        return "binary", "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    if "mimetype" in names and "content.xml" in names:
        return "binary", "application/vnd.oasis.opendocument"
    if "META-INF/container.xml" in names:
        return "binary", "application/epub+zip"
    return "archive", "application/zip"


def detect_text_encoding(data: bytes) -> str | None:
    """Return a codec that decodes ``data`` as sensible text, or None when it looks binary.

    UTF-8 is tried first (most files); BOMs and the zero-byte pattern of UTF-16 are recognised;
    anything else goes to charset-normalizer and the result is checked for control characters.
    """
    if not data:
        return "utf-8"
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    sample = data[:SNIFF_BYTES]
    zeros = sample.count(0)
    if zeros:
        # BOM-less UTF-16 of mostly-ASCII text: the zero bytes sit on one parity only.
        even = sample[0::2].count(0)
        odd = sample[1::2].count(0)
        if zeros > len(sample) // 8 and (even == 0 or odd == 0):
            codec = "utf-16-le" if even == 0 else "utf-16-be"
            with contextlib.suppress(UnicodeDecodeError):
                if _printable_ratio(sample[: len(sample) // 2 * 2].decode(codec)) > 0.95:
                    return codec
        return None
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # A multibyte sequence cut by the sample boundary is still UTF-8.
        if exc.start >= len(sample) - 4 and len(data) > len(sample):
            return "utf-8"
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample))
    if not matches:
        return None
    best = min(matches, key=lambda m: (m.chaos, -m.coherence))
    codec = str(best.encoding)
    # Short Western text fits several single-byte code pages equally well; windows-1252 (what
    # browsers use for "latin-1") is by far the likeliest of the ties.
    ties = {str(m.encoding) for m in matches
            if m.chaos <= best.chaos and m.coherence >= best.coherence - 0.05}
    if "cp1252" in ties:
        codec = "cp1252"
    try:
        decoded = sample.decode(codec, errors="replace")
    except LookupError:
        return None
    return codec if _printable_ratio(decoded) > 0.97 else None


def _printable_ratio(text: str) -> float:
    if not text:
        return 1.0
    bad = sum(1 for ch in text if (ord(ch) < 32 and ch not in "\n\r\t\f\v") or ch == "\ufffd")
    return 1.0 - bad / len(text)


def known_binary(head: bytes) -> bool:
    """Cheap, parse-free: does the file open with the magic of a format that has no text?

    Lets the daemon skip a full content hash for files that will be metadata-only anyway; agrees
    with :func:`sniff`, which looks for a PDF header before the binary magics.
    """
    if b"%PDF-" in head[:1024]:
        return False
    return any(head.startswith(magic) for magic, _, _ in _BINARY_MAGIC if magic != b"BM")


def sniff(path: str | os.PathLike[str], head: bytes | None = None,
          fileobj: IO[bytes] | None = None) -> Sniffed:
    """Decide a file's type from its bytes; the extension only refines text types.

    A ``.jpg`` that holds text is text; a ``.txt`` that starts with ``%PDF-`` is a PDF. With
    ``fileobj`` (the open file) nothing is reopened by name: ``path`` only gives the extension.
    """
    p = Path(path)
    if head is None:
        with open(p, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    ext = p.suffix.lower()
    if not head:
        return Sniffed("empty", "application/x-empty")
    if b"%PDF-" in head[:1024]:
        return _with_note(Sniffed("pdf", "application/pdf"), ext, {".pdf"})
    if head.startswith(b"PK\x03\x04"):
        kind, mime = _zip_type(fileobj if fileobj is not None else os.fspath(p))
        return _with_note(Sniffed(kind, mime), ext, {".docx"} if kind == "docx" else set())
    for magic, kind, mime in _BINARY_MAGIC:
        if head.startswith(magic) and not (magic == b"BM" and detect_text_encoding(head)):
            return Sniffed(kind if kind != "binary" else "binary", mime)
    encoding = detect_text_encoding(head)
    if encoding is None:
        return Sniffed("binary", "application/octet-stream")
    text_head = head.decode(encoding, errors="replace").encode("utf-8", errors="replace")
    if ext in _TEXT_TYPES_BY_EXT:
        kind, mime = _TEXT_TYPES_BY_EXT[ext]
        if kind == "email" and not _looks_like_email(text_head):
            kind, mime = "text", "text/plain"
        return Sniffed(kind, mime, encoding)
    if _looks_like_email(text_head):
        return Sniffed("email", "message/rfc822", encoding)
    if _looks_like_html(text_head):
        return Sniffed("html", "text/html", encoding)
    lang = CODE_EXTENSIONS.get(ext) or _CODE_FILENAMES.get(p.name.lower())
    if lang is None and text_head.startswith(b"#!"):
        lang = "shell" if b"sh" in text_head.split(b"\n", 1)[0] else "script"
    if lang is not None:
        return Sniffed("code", f"text/x-{lang}", encoding, extra={"language": lang})
    note = None
    if ext and ext not in {".txt", ".text", ".log", ".me", ".nfo", ""}:
        note = f"extension {ext} but content is text"
    return Sniffed("text", "text/plain", encoding, note=note)


def _with_note(s: Sniffed, ext: str, expected: set[str]) -> Sniffed:
    if ext and expected and ext not in expected:
        note = f"extension {ext} but content is {s.doc_type}"
        return Sniffed(s.doc_type, s.mime, s.encoding, note)
    return s


# --------------------------------------------------------------------------------------------
# In-process extraction (used by the worker and by unit tests)
# --------------------------------------------------------------------------------------------


def extract_in_process(
    path: str | os.PathLike[str], limits: Limits = Limits()  # noqa: B008 (frozen dataclass)
) -> Extracted:
    """Extract one file in this process: same logic as the worker, no isolation."""
    from memexfs.extract_worker import extract_file

    return extract_file(os.fspath(path), limits)


def failed(path: str, error: str, *, doc_type: str = "unknown", mime: str = "",
           transient: bool = False) -> Extracted:
    """The record for a file whose extraction did not complete (``transient``: retry it)."""
    return Extracted(
        status="failed",
        doc_type=doc_type,
        mime=mime or "application/octet-stream",
        title=Path(path).stem,
        text="",
        meta={},
        error=error.splitlines()[0][:500] if error else "extraction failed",
        transient=transient,
    )


# --------------------------------------------------------------------------------------------
# Worker pool
# --------------------------------------------------------------------------------------------

MAX_REQUEST_BYTES = 64 * 1024
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class _WorkerDied(Exception):
    pass


class _Worker:
    """One long-lived ``python -m memexfs.extract_worker``.

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
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["MEMEXFS_EXTRACT_MEMORY_MB"] = str(self.limits.memory_mb)
        # Native libraries must not spawn thread pools inside the worker.
        env.setdefault("OMP_NUM_THREADS", "1")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "memexfs.extract_worker"],
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
