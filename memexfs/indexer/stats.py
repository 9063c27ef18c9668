"""What the indexer reports: ``Stats`` (the stats xattr) and the catalog's status mirror."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from memexfs.indexer import tuning


@dataclass
class Stats:
    state: str = "starting"  # starting | reconciling | indexing | idle | error
    queued: int = 0
    current: str | None = None
    files: int = 0
    indexed: int = 0
    failed: int = 0
    metadata_only: int = 0
    pending: int = 0
    chunks: int = 0
    embedded_texts: int = 0
    done_since_start: int = 0
    files_per_s: float = 0.0
    texts_per_s: float = 0.0
    encode_seconds: float = 0.0  # time in the encoder: end-to-end overhead = elapsed - this
    generation: int = 0
    encoder: str = ""
    started_at: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    errors: dict[str, str] = field(default_factory=dict)
    errors_total: int = 0
    # path -> extraction warnings of a file that was read (a page that failed, a truncation)
    warnings: dict[str, tuple[str, ...]] = field(default_factory=dict)
    warnings_total: int = 0
    last_error: str | None = None
    watcher: str = "off"  # off | watching | restarting
    watcher_restarts: int = 0
    outside_events: int = 0  # watcher paths taken as changes made around the mount
    echoes_dropped: int = 0  # watcher paths that only showed what the mount itself did

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors_total"] = len(self.errors)
        if len(self.errors) > tuning.MAX_ERRORS_SHOWN:
            out["errors"] = dict(sorted(self.errors.items())[:tuning.MAX_ERRORS_SHOWN])
        out["warnings_total"] = len(self.warnings)
        if len(self.warnings) > tuning.MAX_WARNINGS_SHOWN:
            out["warnings"] = dict(sorted(self.warnings.items())[:tuning.MAX_WARNINGS_SHOWN])
        return out


def _describe(exc: BaseException) -> str:
    """One line for a failure, unwrapping the exception groups trio/anyio put around it."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


class StatusMirror(dict[str, str]):
    """path -> status, with the number of files per status kept as entries change: the loop
    reports counts on every turn, and walking a large vault's mirror each time was O(files)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __setitem__(self, path: str, status: str) -> None:
        old = self.get(path)
        if old is not None:
            self.counts[old] -= 1
        super().__setitem__(path, status)
        self.counts[status] += 1

    def __delitem__(self, path: str) -> None:
        self.counts[self[path]] -= 1
        super().__delitem__(path)

    def pop(self, path: str, *default: Any) -> Any:
        if path in self:
            self.counts[self[path]] -= 1
        return super().pop(path, *default)

    def popitem(self) -> tuple[str, str]:
        path, status = super().popitem()
        self.counts[status] -= 1
        return path, status

    def setdefault(self, path: str, status: str) -> str:
        if path not in self:
            self[path] = status
        return self[path]

    def update(self, *args: Any, **kwargs: str) -> None:
        for path, status in dict(*args, **kwargs).items():
            self[path] = status

    def __ior__(self, other: Any) -> StatusMirror:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        super().clear()
        self.counts.clear()
