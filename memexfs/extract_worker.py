"""The subprocess side of extraction: per-format parsers and the request loop.

Run as ``python -m memexfs.extract_worker``; its stdin is a SOCK_SEQPACKET socket on which each
request (``{"path": ..., "limits": {...}}``) arrives with the open file's descriptor attached; it
answers one JSON line on stdout. It reads only that descriptor: the path names the file in
messages and gives its extension, and is never reopened (a symlink swapped in meanwhile is not
followed). It limits its own address
space (RLIMIT_AS) and exits when its parent goes away, so a runaway parser cannot outlive the mount.
Parsers work on bytes so that e-mail attachments reuse them.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import logging
import os
import re
import socket
import stat
import sys
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO

from memexfs.extract import (
    MAX_REQUEST_BYTES,
    OPEN_FLAGS,
    SNIFF_BYTES,
    Extracted,
    Limits,
    Sniffed,
    detect_text_encoding,
    failed,
    sniff,
)

log = logging.getLogger(__name__)

MAX_ATTACHMENT_DEPTH = 2
MAX_WARNINGS = 20
TEXT_TYPES = frozenset({"text", "markdown", "code", "pdf", "docx", "html", "csv", "json", "email"})


@dataclass
class Parsed:
    """What one parser produced; merged into an :class:`Extracted` by :func:`extract_file`."""

    text: str
    title: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class ExtractionError(Exception):
    """A file that its parser cannot read; the message becomes the file's status line."""


class _WarningCapture(logging.Handler):
    """Collects library warnings (pypdf logs "incorrect startxref" and the like) for the record."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < MAX_WARNINGS:
            self.messages.append(f"{record.name}: {record.getMessage()}"[:300])


# --------------------------------------------------------------------------------------------
# Per-format parsers (bytes in, Parsed out)
# --------------------------------------------------------------------------------------------


def _decode(data: bytes, encoding: str | None) -> tuple[str, str]:
    codec = encoding or detect_text_encoding(data) or "utf-8"
    try:
        text = data.decode(codec, errors="replace")
    except LookupError:
        codec = "utf-8"
        text = data.decode(codec, errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", ""), codec


def parse_text(data: bytes, sniffed: Sniffed, name: str) -> Parsed:
    text, codec = _decode(data, sniffed.encoding)
    meta = {"encoding": codec}
    meta.update(sniffed.extra)
    title = ""
    if sniffed.doc_type == "markdown":
        title = _markdown_title(text)
    return Parsed(text=text, title=title, meta=meta)


_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_FRONT_MATTER_TITLE = re.compile(
    r"\A---\s*\n(?:.*\n)*?title:\s*[\"']?(.+?)[\"']?\s*\n(?:.*\n)*?---"
)


def _markdown_title(text: str) -> str:
    fm = _FRONT_MATTER_TITLE.match(text[:4000])
    if fm:
        return fm.group(1).strip()
    m = _MD_HEADING.search(text[:20000])
    return _strip_md(m.group(1)) if m else ""


def _strip_md(s: str) -> str:
    return re.sub(r"[*_`]+", "", s).strip()


def parse_pdf(data: bytes, sniffed: Sniffed, name: str, max_chars: int) -> Parsed:
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("PDF is encrypted with a password")
        pages = reader.pages
        meta: dict[str, str] = {"pages": str(len(pages))}
        title = ""
        info = reader.metadata
        if info is not None:
            title = _clean_meta(info.title)
            for key, value in (("author", info.author), ("subject", info.subject),
                               ("creator", info.creator), ("producer", info.producer)):
                if _clean_meta(value):
                    meta[key] = _clean_meta(value)
        parts: list[str] = []
        total = 0
        warnings: list[str] = []
        for i, page in enumerate(pages):
            try:
                page_text = _page_text(page)
            except Exception as exc:  # noqa: BLE001 - one bad page must not lose the others
                warnings.append(f"page {i + 1}: {type(exc).__name__}: {exc}"[:300])
                continue
            parts.append(page_text.strip())
            total += len(page_text)
            if total > max_chars:
                warnings.append(f"stopped after page {i + 1} of {len(pages)}: output limit")
                break
    except ExtractionError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            AssertionError, RecursionError, OSError) as exc:
        raise ExtractionError(f"unreadable PDF: {type(exc).__name__}: {exc}") from exc
    text = "\n\n".join(p for p in parts if p)
    if not text.strip():
        warnings.append("PDF has no text layer (scanned image?)")
    return Parsed(text=text, title=_useful_title(title), meta=meta, warnings=warnings)


def _page_text(page: Any) -> str:
    """Layout mode keeps "Label:   value" on one line (plain mode splits table cells onto lines);
    fall back to plain mode where layout mode fails on odd content streams."""
    try:
        text = page.extract_text(extraction_mode="layout") or ""
    except Exception:  # noqa: BLE001 - layout mode is the less robust of the two
        text = ""
    if not text.strip():
        text = page.extract_text() or ""
    lines = [re.sub(r" {3,}", "  ", ln.strip()) for ln in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _clean_meta(value: object) -> str:
    if value is None:
        return ""
    return " ".join(str(value).split())[:300]


def _useful_title(title: str) -> str:
    """Drop metadata titles that say nothing ("untitled", "Microsoft Word - x.docx")."""
    t = title.strip()
    if not t or t.lower() in {"untitled", "title", "document", "(anonymous)", "none"}:
        return ""
    t = re.sub(r"^Microsoft (?:Word|Excel|PowerPoint) - ", "", t)
    return t


def parse_docx(data: bytes, sniffed: Sniffed, name: str) -> Parsed:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise ExtractionError(f"unreadable DOCX: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - lxml/zipfile raise many types on corrupt files
        raise ExtractionError(f"unreadable DOCX: {type(exc).__name__}: {exc}") from exc
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = block.text.strip()
            if not text:
                continue
            style = (block.style.name if block.style is not None else "") or ""
            level = _heading_level(style)
            lines.append(("#" * level + " " + text) if level else text)
        elif isinstance(block, Table):
            lines.extend(_docx_table_lines(block))
    props = document.core_properties
    meta = {k: _clean_meta(v) for k, v in (
        ("author", props.author), ("subject", props.subject), ("keywords", props.keywords),
        ("created", props.created.isoformat() if props.created else None),
    ) if _clean_meta(v)}
    title = _useful_title(_clean_meta(props.title))
    if not title:
        title = next((ln.lstrip("# ") for ln in lines if ln.startswith("#")), "")
    return Parsed(text="\n\n".join(lines), title=title, meta=meta)


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    m = re.match(r"Heading (\d)", style)
    return min(int(m.group(1)) + 1, 6) if m else 0


def _docx_table_lines(table: Any) -> list[str]:
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            t = " ".join(cell.text.split())
            if not cells or cells[-1] != t:  # merged cells repeat their text
                cells.append(t)
        if any(cells):
            rows.append(" | ".join(cells))
    return rows


_BOILERPLATE_TAGS = ("script", "style", "noscript", "template", "svg", "nav", "header", "footer",
                     "aside", "form", "iframe", "button", "select")
_BOILERPLATE_CLASS = re.compile(
    r"cookie|consent|banner|navbar|menu|sidebar|breadcrumb|advert|promo|social|share|skip-link",
    re.I,
)
_BLOCK_TAGS = {"p", "div", "section", "article", "main", "li", "ul", "ol", "table", "tr", "br",
               "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "dl", "dt", "dd",
               "figure", "figcaption", "hr", "address", "body", "thead", "tbody", "tfoot"}


def parse_html(data: bytes, sniffed: Sniffed, name: str) -> Parsed:
    """Main text of a page: boilerplate (nav, cookie banners, footers) dropped, tables as rows."""
    from bs4 import BeautifulSoup, Comment, NavigableString, Tag

    markup, codec = _decode(data, sniffed.encoding)
    soup = BeautifulSoup(markup, "lxml")
    title = ""
    if soup.title and soup.title.string:
        title = " ".join(soup.title.string.split())
    meta: dict[str, str] = {"encoding": codec}
    for m in soup.find_all("meta"):
        key = str(m.get("name") or m.get("property") or "").lower()
        if key in {"description", "author", "og:title", "og:description", "date"} and m.get(
            "content"
        ):
            meta[key.replace("og:", "og_")] = _clean_meta(m.get("content"))
    for node in soup.find_all(string=lambda s: isinstance(s, Comment)):
        node.extract()
    for tag in soup.find_all(_BOILERPLATE_TAGS):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed or tag.attrs is None:
            continue
        classes: Any = tag.get("class") or []
        class_list = [classes] if isinstance(classes, str) else list(classes)
        attrs = " ".join([*class_list, str(tag.get("id", "")), str(tag.get("role", ""))])
        if _BOILERPLATE_CLASS.search(attrs) and tag.name not in {"html", "body", "main"}:
            tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    out: list[str] = []

    def walk(node: Any) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                s = str(child)
                if s.strip():
                    out.append(" ".join(s.split()) + (" " if s[-1:].isspace() else ""))
                elif out and not out[-1].endswith((" ", "\n")):
                    out.append(" ")
                continue
            if not isinstance(child, Tag):
                continue
            name_ = child.name
            if name_ in {"td", "th"}:
                out.append(" | ")
            elif name_ in _BLOCK_TAGS:
                out.append("\n")
            if name_ and re.fullmatch(r"h[1-6]", name_):
                out.append("#" * int(name_[1]) + " ")
            elif name_ == "li":
                out.append("- ")
            walk(child)
            if name_ == "dt":
                out.append(": ")
            elif name_ in _BLOCK_TAGS:
                out.append("\n")

    walk(root)
    text = "".join(out)
    text = re.sub(r"[ \t]*\|[ \t]*", " | ", text)
    text = "\n".join(_tidy_html_line(ln) for ln in text.split("\n"))
    text = re.sub(r"(?::\s*\n+)", ": ", text)  # <dt>Label</dt><dd>value</dd> -> "Label: value"
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if not title:
        h1 = soup.find("h1")
        title = " ".join(h1.get_text(" ").split()) if h1 else ""
    return Parsed(text=text, title=title, meta=meta)


def _tidy_html_line(line: str) -> str:
    line = " ".join(line.split())
    if line.startswith("| "):
        line = line[2:]
    return line.rstrip(" |")


def parse_csv(data: bytes, sniffed: Sniffed, name: str, max_chars: int) -> Parsed:
    text, codec = _decode(data, sniffed.encoding)
    sample = text[:16384]
    delimiter = "\t" if name.lower().endswith(".tsv") else ","
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        pass
    lines: list[str] = []
    total = 0
    rows = 0
    warnings: list[str] = []
    try:
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            cells = [" ".join(c.split()) for c in row]
            if not any(cells):
                continue
            line = " | ".join(cells)
            lines.append(line)
            rows += 1
            total += len(line) + 1
            if total > max_chars:
                warnings.append(f"stopped after {rows} rows: output limit")
                break
    except csv.Error as exc:
        warnings.append(f"CSV parse error, kept as text: {exc}")
        return Parsed(text=text, meta={"encoding": codec}, warnings=warnings)
    meta = {"encoding": codec, "rows": str(rows), "delimiter": delimiter}
    return Parsed(text="\n".join(lines), meta=meta, warnings=warnings)


def parse_json(data: bytes, sniffed: Sniffed, name: str, max_chars: int) -> Parsed:
    """Flatten JSON into ``a.b[0].c: value`` lines, which read (and embed) like text."""
    text, codec = _decode(data, sniffed.encoding)
    docs: list[Any] = []
    try:
        docs = [json.loads(text)]
    except (json.JSONDecodeError, RecursionError):
        try:
            docs = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        except (json.JSONDecodeError, RecursionError):
            return Parsed(text=text, meta={"encoding": codec},
                          warnings=["not valid JSON, indexed as text"])
    lines: list[str] = []
    budget = [max_chars]

    def flat(value: Any, prefix: str, depth: int) -> None:
        if budget[0] <= 0:
            return
        if depth > 50:
            line = f"{prefix}: {json.dumps(value)[:200]}"
        elif isinstance(value, dict):
            for k, v in value.items():
                flat(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
            return
        elif isinstance(value, list):
            for i, v in enumerate(value):
                flat(v, f"{prefix}[{i}]", depth + 1)
            return
        else:
            line = f"{prefix}: {value}" if prefix else str(value)
        lines.append(line)
        budget[0] -= len(line) + 1

    for doc in docs:
        flat(doc, "", 0)
    warnings = [] if budget[0] > 0 else ["JSON flattened up to the output limit"]
    return Parsed(text="\n".join(lines), meta={"encoding": codec}, warnings=warnings)


def parse_email(data: bytes, sniffed: Sniffed, name: str, max_chars: int, depth: int = 0) -> Parsed:
    """Headers, the text body (HTML converted when there is no plain part) and attachments."""
    msg = BytesParser(policy=policy.default).parsebytes(data)
    meta: dict[str, str] = {}
    header_lines: list[str] = []
    for key in ("From", "To", "Cc", "Date", "Subject"):
        value = _header(msg, key)
        if value:
            meta[key.lower()] = value
            header_lines.append(f"{key}: {value}")
    for key, mkey in (("Message-ID", "message_id"), ("In-Reply-To", "in_reply_to")):
        value = _header(msg, key)
        if value:
            meta[mkey] = value
    if "from" in meta:
        addrs = getaddresses([meta["from"]])
        if addrs:
            meta["from_name"], meta["from_addr"] = addrs[0][0], addrs[0][1].lower()
    if "date" in meta:
        try:
            meta["date_iso"] = parsedate_to_datetime(meta["date"]).isoformat()
        except (TypeError, ValueError, IndexError):
            pass
    bodies: list[str] = []
    attachments: list[str] = []
    warnings: list[str] = []
    names: list[str] = []
    body_part = None
    if isinstance(msg, EmailMessage):
        try:
            body_part = msg.get_body(preferencelist=("plain", "html"))
        except (KeyError, LookupError):
            body_part = None
    if body_part is not None:
        bodies.append(_part_text(body_part, warnings))
    for part in msg.walk():
        if part is body_part or part.is_multipart():
            continue
        filename = part.get_filename()
        ctype = part.get_content_type()
        if not filename and ctype in ("text/plain", "text/html") and body_part is None:
            bodies.append(_part_text(part, warnings))
            continue
        if not filename and part.get_content_disposition() != "attachment" and ctype != (
            "message/rfc822"
        ):
            continue
        label = filename or ctype
        names.append(label)
        if depth >= MAX_ATTACHMENT_DEPTH:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        try:
            sub = _parse_bytes(payload, label, max_chars, depth + 1)
        except ExtractionError as exc:
            warnings.append(f"attachment {label}: {exc}"[:300])
            continue
        if sub is not None and sub.text.strip():
            attachments.append(f"--- Attachment: {label} ---\n{sub.text.strip()}")
            warnings.extend(f"attachment {label}: {w}" for w in sub.warnings[:5])
    if names:
        meta["attachments"] = ", ".join(names)
    parts = ["\n".join(header_lines), *[b.strip() for b in bodies if b.strip()], *attachments]
    return Parsed(text="\n\n".join(p for p in parts if p), title=meta.get("subject", ""),
                  meta=meta, warnings=warnings)


def _header(msg: Message, key: str) -> str:
    try:
        value = msg.get(key)
    except (ValueError, IndexError, TypeError):
        return ""
    return " ".join(str(value).split()) if value else ""


def _part_text(part: Message, warnings: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or None
    try:
        text = payload.decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError):
        text, _ = _decode(payload, None)
        warnings.append(f"body charset {charset!r} wrong or unknown; detected instead")
    if part.get_content_type() == "text/html":
        return parse_html(text.encode("utf-8"), Sniffed("html", "text/html", "utf-8"), "").text
    return text.replace("\r\n", "\n")


def _parse_bytes(data: bytes, name: str, max_chars: int, depth: int) -> Parsed | None:
    """Parse an attachment by content; binary attachments yield None (listed by name only)."""
    import tempfile

    head = data[:65536]
    suffix = Path(name).suffix if "/" not in name else ""
    if head.startswith(b"PK\x03\x04"):
        # zip sniffing needs a file; attachments are small enough for a temp file.
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(data)
            tmp.flush()
            sniffed = sniff(tmp.name, head)
    else:
        sniffed = sniff(Path("attachment" + suffix), head)
    return _dispatch(data, sniffed, name, max_chars, depth)


def _dispatch(data: bytes, sniffed: Sniffed, name: str, max_chars: int, depth: int) -> (
    Parsed | None
):
    kind = sniffed.doc_type
    if kind in {"text", "markdown", "code"}:
        return parse_text(data, sniffed, name)
    if kind == "pdf":
        return parse_pdf(data, sniffed, name, max_chars)
    if kind == "docx":
        return parse_docx(data, sniffed, name)
    if kind == "html":
        return parse_html(data, sniffed, name)
    if kind == "csv":
        return parse_csv(data, sniffed, name, max_chars)
    if kind == "json":
        return parse_json(data, sniffed, name, max_chars)
    if kind == "email":
        return parse_email(data, sniffed, name, max_chars, depth)
    return None


# --------------------------------------------------------------------------------------------
# One file
# --------------------------------------------------------------------------------------------


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
        if sniffed.doc_type not in TEXT_TYPES:
            return _meta_only(sniffed, stem, f"no text: {sniffed.mime}", meta)
        data = _pread_all(fd, min(st.st_size, limits.max_input_bytes) + 1)
    except OSError as exc:  # EIO and the like: the disk's trouble, not the file's content
        return failed(path, f"cannot read: {exc.strerror or exc}", transient=True)

    capture = _WarningCapture()
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        parsed = _dispatch(data, sniffed, Path(path).name, limits.max_output_chars, 0)
    except ExtractionError as exc:
        return failed(path, str(exc), doc_type=sniffed.doc_type, mime=sniffed.mime)
    except RecursionError:
        return failed(path, "document nested too deeply", doc_type=sniffed.doc_type,
                      mime=sniffed.mime)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - parser bugs on hostile input become a status
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


# --------------------------------------------------------------------------------------------
# Request loop
# --------------------------------------------------------------------------------------------


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
    except Exception as exc:  # noqa: BLE001 - our bug, not the file's: retried later
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
