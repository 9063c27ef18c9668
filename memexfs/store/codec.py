"""Names that are not UTF-8, and the payloads that carry them across the store boundary.

A file name that is not UTF-8 reaches us as a str with surrogate escapes (``os.fsdecode``); Qdrant
payload strings must be UTF-8. At the store boundary each such surrogate U+DC80..U+DCFF becomes
ESC + two hex digits, and ESC itself (a noncharacter no real name carries) becomes ESC ESC. The
mapping is per character, so prefixes (``dirs``) and equality filters keep working, and strings
without either character are stored as before. Every backend goes through the helpers below.
"""

from __future__ import annotations

import re
from typing import Any

from memexfs.schema import FileRecord, ancestors
from memexfs.store.api import DENSE, ChunkHit, ChunkPoint

ESC = "\U0010ffff"
_NEEDS_ESCAPE = re.compile("[\udc80-\udcff\U0010ffff]")
_ESCAPED = re.compile("\U0010ffff(\U0010ffff|[0-9a-f]{2})")


def escape_str(s: str) -> str:
    """The UTF-8-safe stored form of ``s`` (identity for ordinary strings)."""
    if s.isascii() or not _NEEDS_ESCAPE.search(s):
        return s
    return _NEEDS_ESCAPE.sub(
        lambda m: ESC + ESC if m[0] == ESC else f"{ESC}{ord(m[0]) - 0xDC00:02x}", s)


def unescape_str(s: str) -> str:
    """Inverse of :func:`escape_str`."""
    if ESC not in s:
        return s
    return _ESCAPED.sub(lambda m: ESC if m[1] == ESC else chr(0xDC00 + int(m[1], 16)), s)


def escape_value(v: Any) -> Any:
    """``escape_str`` over every string in a payload value (dicts, lists, tuples)."""
    if isinstance(v, str):
        return escape_str(v)
    if isinstance(v, dict):
        return {escape_str(k) if isinstance(k, str) else k: escape_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [escape_value(x) for x in v]
    return v


def unescape_value(v: Any) -> Any:
    if isinstance(v, str):
        return unescape_str(v)
    if isinstance(v, dict):
        return {unescape_str(k) if isinstance(k, str) else k: unescape_value(x)
                for k, x in v.items()}
    if isinstance(v, list):
        return [unescape_value(x) for x in v]
    return v


# ---- what each backend stores and gives back ---------------------------------------------------
def record_of(payload: Any) -> FileRecord:
    """The catalog entry of a stored payload."""
    return FileRecord.from_payload(unescape_value(dict(payload or {})))


def file_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """``update_file``'s payload: a new ``path`` brings its ``name`` and ``dirs`` along."""
    if "path" in changes:
        changes = {**changes, "name": changes["path"].rsplit("/", 1)[-1],
                   "dirs": ancestors(changes["path"])}
    stored: dict[str, Any] = escape_value(changes)
    return stored


def chunk_payload(file_id: str, p: ChunkPoint) -> dict[str, Any]:
    """A chunk's stored payload: the caller's, plus the keys the store itself relies on."""
    payload: dict[str, Any] = escape_value({**p.payload, "file_id": file_id,
                                            "chunk_index": p.index})
    return payload


def hit_of(point_id: Any, score: float, payload: Any, vector: Any = None) -> ChunkHit:
    """A search or scroll result, whatever client returned it."""
    dense = list(vector[DENSE]) if isinstance(vector, dict) and DENSE in vector else None
    return ChunkHit(str(point_id), float(score), unescape_value(dict(payload or {})), dense)


def vectors_by_hash(records: Any) -> dict[str, list[float]]:
    """``chunk_vectors``' answer from scrolled records with payload and dense vector."""
    out: dict[str, list[float]] = {}
    for rec in records:
        vec = rec.vector
        if isinstance(vec, dict) and DENSE in vec and rec.payload:
            out[unescape_str(str(rec.payload.get("chunk_hash", "")))] = list(vec[DENSE])
    return out
