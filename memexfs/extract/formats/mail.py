"""E-mail (RFC 822): headers as metadata, the text body, and attachments parsed by content."""

from __future__ import annotations

import tempfile
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

from memexfs.extract.formats.base import ExtractionError, Job, Parsed, decode, parse, register
from memexfs.extract.formats.markup import parse_html
from memexfs.extract.sniff import Sniffed, sniff

MAX_ATTACHMENT_DEPTH = 2


@register("email")
def parse_email(data: bytes, sniffed: Sniffed, job: Job) -> Parsed:
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
        bodies.append(_part_text(body_part, warnings, job))
    for part in msg.walk():
        if part is body_part or part.is_multipart():
            continue
        filename = part.get_filename()
        ctype = part.get_content_type()
        if not filename and ctype in ("text/plain", "text/html") and body_part is None:
            bodies.append(_part_text(part, warnings, job))
            continue
        if not filename and part.get_content_disposition() != "attachment" and ctype != (
            "message/rfc822"
        ):
            continue
        label = filename or ctype
        names.append(label)
        if job.depth >= MAX_ATTACHMENT_DEPTH:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        try:
            sub = _parse_bytes(payload, Job(label, job.max_chars, job.depth + 1))
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


def _part_text(part: Message, warnings: list[str], job: Job) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or None
    try:
        text = payload.decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError):
        text, _ = decode(payload, None)
        warnings.append(f"body charset {charset!r} wrong or unknown; detected instead")
    if part.get_content_type() == "text/html":
        return parse_html(text.encode("utf-8"), Sniffed("html", "text/html", "utf-8"), job).text
    return text.replace("\r\n", "\n")


def _parse_bytes(data: bytes, job: Job) -> Parsed | None:
    """Parse an attachment by content; binary attachments yield None (listed by name only)."""
    head = data[:65536]
    suffix = Path(job.name).suffix if "/" not in job.name else ""
    if head.startswith(b"PK\x03\x04"):
        # zip sniffing needs a file; attachments are small enough for a temp file.
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(data)
            tmp.flush()
            sniffed = sniff(tmp.name, head)
    else:
        sniffed = sniff(Path("attachment" + suffix), head)
    return parse(data, sniffed, job)
