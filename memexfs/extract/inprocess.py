"""Extraction of one file in this process: reading it, choosing its parser, bounding the result.

The worker runs this on the descriptor the daemon sent; :func:`extract_in_process` runs it here,
without isolation (unit tests and benchmarks on trusted files).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

from memexfs.extract.formats import ExtractionError, Job, has_parser, parse
from memexfs.extract.model import OPEN_FLAGS, Extracted, Limits, failed
from memexfs.extract.sniff import SNIFF_BYTES, Sniffed, sniff

log = logging.getLogger(__name__)

MAX_WARNINGS = 20


class _WarningCapture(logging.Handler):
    """Collects library warnings (pypdf logs "incorrect startxref" and the like) for the record."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < MAX_WARNINGS:
            self.messages.append(f"{record.name}: {record.getMessage()}"[:300])


def extract_in_process(
    path: str | os.PathLike[str], limits: Limits = Limits()  # noqa: B008 (frozen dataclass)
) -> Extracted:
    """Extract one file in this process: same logic as the worker, no isolation."""
    return extract_file(os.fspath(path), limits)


def extract_file(path: str, limits: Limits) -> Extracted:
    """Open ``path`` (last component not followed, a FIFO does not block) and extract it here."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return failed(path, "is a symbolic link (not followed)")
        return failed(path, f"cannot read: {exc.strerror or exc}")
    try:
        return extract_fd(fd, path, limits)
    finally:
        os.close(fd)


def _pread_all(fd: int, size: int) -> bytes:
    parts: list[bytes] = []
    offset = 0
    while offset < size:
        block = os.pread(fd, min(size - offset, 1 << 24), offset)
        if not block:
            break
        parts.append(block)
        offset += len(block)
    return b"".join(parts)


def extract_fd(fd: int, path: str, limits: Limits) -> Extracted:
    """Extract the open file ``fd`` (``path`` names it). Never raises for bad input (except
    MemoryError). Reads with pread: a passed descriptor shares its offset with the daemon's."""
    stem = Path(path).stem
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            return _meta_only(Sniffed("special", "inode/x-special"), stem, "not a regular file", {})
        head = os.pread(fd, SNIFF_BYTES, 0)
        with os.fdopen(fd, "rb", closefd=False) as fh:  # for zip sniffing, which seeks
            sniffed = sniff(path, head, fh)
        if sniffed.doc_type == "empty":
            return _meta_only(sniffed, stem, "empty file", {"size": "0"})
        meta = {"size": str(st.st_size)}
        if st.st_size > limits.max_input_bytes:
            return _meta_only(sniffed, stem, f"too big to extract ({st.st_size} bytes > "
                              f"{limits.max_input_bytes})", meta)
        if not has_parser(sniffed.doc_type):
            return _meta_only(sniffed, stem, f"no text: {sniffed.mime}", meta)
        data = _pread_all(fd, min(st.st_size, limits.max_input_bytes) + 1)
    except OSError as exc:  # EIO and the like: the disk's trouble, not the file's content
        return failed(path, f"cannot read: {exc.strerror or exc}", transient=True)

    capture = _WarningCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        parsed = parse(data, sniffed, Job(Path(path).name, limits.max_output_chars))
    except ExtractionError as exc:
        return failed(path, str(exc), doc_type=sniffed.doc_type, mime=sniffed.mime)
    except RecursionError:
        return failed(path, "document nested too deeply", doc_type=sniffed.doc_type,
                      mime=sniffed.mime)
    except MemoryError:
        raise
    except Exception as exc:  # parser bugs on hostile input become a status
        log.debug("parser crashed on %s", path, exc_info=True)
        return failed(path, f"{sniffed.doc_type} parser error: {type(exc).__name__}: {exc}",
                      doc_type=sniffed.doc_type, mime=sniffed.mime)
    finally:
        root.removeHandler(capture)
    assert parsed is not None
    warnings = [*parsed.warnings, *capture.messages]
    if sniffed.note:
        warnings.insert(0, sniffed.note)
    text = parsed.text
    if len(text) > limits.max_output_chars:
        warnings.append(f"text truncated from {len(text)} to {limits.max_output_chars} chars")
        text = text[: limits.max_output_chars]
    meta.update(parsed.meta)
    return Extracted(
        status="ok",
        doc_type=sniffed.doc_type,
        mime=sniffed.mime,
        title=(parsed.title or stem)[:300],
        text=text,
        meta=meta,
        error=None,
        warnings=tuple(w[:300] for w in warnings[:MAX_WARNINGS]),
    )


def _meta_only(sniffed: Sniffed, stem: str, note: str, meta: dict[str, str]) -> Extracted:
    return Extracted(
        status="metadata-only",
        doc_type=sniffed.doc_type,
        mime=sniffed.mime,
        title=stem,
        text="",
        meta=meta,
        error=note,
        warnings=(sniffed.note,) if sniffed.note else (),
    )
