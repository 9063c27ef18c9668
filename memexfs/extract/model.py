"""The extraction record and its limits: what crosses the worker boundary (as JSON) and what the
pipeline reads.

``Extracted.status`` is a closed ``Literal`` and ``transient`` says whether a failure belongs to the
file or to us, so no caller has to read meaning out of an error message.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

ExtractStatus = Literal["ok", "metadata-only", "failed"]
_STATUSES: frozenset[str] = frozenset(get_args(ExtractStatus))

# Shared by the pool and the worker: how a file is opened (last component not followed, a FIFO
# does not block) and the largest request datagram.
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
MAX_REQUEST_BYTES = 64 * 1024


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
