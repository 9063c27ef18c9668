"""What a file is, judged by its bytes first and its extension second.

A ``.jpg`` that holds text is text; a ``.txt`` that starts with ``%PDF-`` is a PDF. Runs in the
daemon (:func:`known_binary` before hashing) and in the worker (before choosing a parser), so it
parses nothing beyond a zip directory and a 64 KiB head.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["CODE_EXTENSIONS", "SNIFF_BYTES", "Sniffed", "detect_text_encoding", "known_binary",
           "sniff"]


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
    from charset_normalizer import from_bytes  # on first use only: most files are UTF-8

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
