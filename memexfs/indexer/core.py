"""The indexer's shared state, the ``IndexSink`` notifications, and helpers every part uses."""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from memexfs import reconcile, schema
from memexfs.echo import OwnChanges
from memexfs.fields_memory import DocFields, FieldsMemory
from memexfs.ignore import IGNORE_FILE, IgnoreRules
from memexfs.indexer import tuning
from memexfs.indexer.queued import Changed, Exchanged, Moved, Op, Removed, paths_of
from memexfs.indexer.stats import Stats, StatusMirror
from memexfs.schema import FileRecord
from memexfs.store import Store
from memexfs.vault import STATE_DIR, Vault

if TYPE_CHECKING:
    from memexfs.pipeline import Pipeline

log = logging.getLogger("memexfs.indexer")  # one logger for the package: what operators filter on


class _IndexerCore:
    """State shared by the indexer's parts, the ``IndexSink`` notifications and small helpers."""

    def __init__(
        self,
        vault: Vault,
        store: Store,
        pipeline_factory: Callable[[], Pipeline],
        on_change: Callable[[set[str]], None] | None = None,
        watch: bool = True,
        on_outside: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.vault = vault
        self.store = store
        self._pipeline_factory = pipeline_factory
        self.pipeline: Pipeline | None = None
        self.on_change = on_change or (lambda paths: None)
        self.on_outside = on_outside  # told first about changes made around the mount
        self.watch = watch
        self.stats = Stats()
        # filled by the mount's operations, read by the watcher (nothing kept without one)
        self.own = OwnChanges() if watch else OwnChanges(max_entries=0)
        self._watch_healthy = True  # False from a watcher failure until it works again
        self._rescan_queued = False
        self._ops: list[Op] = []
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._retried: set[str] = set()  # transient extraction failures retried this session
        self._index_wait = 0.0  # current wait before files that met a down index are retried
        self._inflight: set[str] = set()
        self._announced: set[str] = set()  # "changed" ops not yet applied
        self._chunks_stale = True
        self._applying = 0  # ops taken off ``_ops`` and not yet applied
        self._status = StatusMirror()
        self.fields = FieldsMemory()  # what user.memex.kind, .vendor, ... answer
        self._ignore: tuple[float, IgnoreRules] | None = None  # (.memexignore mtime, rules)
        self._wake = trio.Event()
        self._limiter = trio.CapacityLimiter(1)  # extraction and store work
        self._encode_limiter = trio.CapacityLimiter(1)  # the encoder (uses every core itself)
        self._store_limiter = trio.CapacityLimiter(1)  # commits: never behind a slow extraction
        self._busy_since = time.monotonic()
        self._busy_files = 0
        self._busy_texts = 0

    # ------------------------------------------------------------- IndexSink (trio thread)
    def _ignore_rules(self) -> IgnoreRules:
        """``.memexignore`` and the defaults, read again when the file changes (one stat)."""
        try:
            mtime = os.stat(self.vault.root / IGNORE_FILE).st_mtime
        except OSError:
            mtime = 0.0
        if self._ignore is None or self._ignore[0] != mtime:
            self._ignore = (mtime, self.vault.ignore_rules())
        return self._ignore[1]

    def changed(self, path: str) -> None:
        if self._push(Changed(path)):
            self._announced.add(path)

    def removed(self, path: str) -> None:
        self._push(Removed(path))

    def moved(self, old: str, new: str) -> None:
        self._push(Moved(old, new))

    def exchanged(self, a: str, b: str) -> None:
        """``renameat2(RENAME_EXCHANGE)`` of ``a`` and ``b`` (files or folders)."""
        self._push(Exchanged(a, b))

    def status_of(self, path: str) -> str | None:
        if path in self._pending or path in self._inflight or path in self._announced:
            return schema.PENDING
        return self._status.get(path)

    def error_of(self, path: str) -> str | None:
        """The last indexing error of ``path`` (kept in memory: the mount never asks the store)."""
        return self.stats.errors.get(path)

    def fields_of(self, path: str) -> DocFields | None:
        """The extracted fields of ``path`` as its chunks carry them (memory, as above)."""
        return self.fields.get(path)

    def warnings_of(self, path: str) -> tuple[str, ...]:
        """What extraction noted about ``path`` (a page it could not read, a truncation)."""
        return self.stats.warnings.get(path, ())

    def _push(self, op: Op) -> bool:
        if any(p.split("/", 1)[0] == STATE_DIR for p in paths_of(op)):
            return False
        self._ops.append(op)
        self.stats.queued = self._queued()
        self._wake.set()
        return True

    def _queued(self) -> int:
        return len(self._ops) + self._applying + len(self._pending) + len(self._inflight)

    @property
    def idle(self) -> bool:
        return self.stats.state == "idle" and not self._queued()

    async def wait_idle(self) -> None:
        while not self.idle:  # noqa: ASYNC110 (state is polled by design: no event per change)
            await trio.sleep(0.05)

    # ------------------------------------------------------------- helpers
    async def _sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _queue_plan(self, plan: reconcile.Plan) -> None:
        self._ops.extend(Moved(old, new) for old, new in plan.moved)
        self._ops.extend(Removed(path, file_id) for file_id, path in plan.removed)
        self._ops.extend(Changed(path) for path in plan.changed)
        self.stats.queued = self._queued()

    def _recount(self) -> None:
        counts = self._status.counts
        s = self.stats
        s.files = len(self._status)
        s.indexed = counts.get(schema.INDEXED, 0)
        s.failed = counts.get(schema.FAILED, 0)
        s.metadata_only = counts.get(schema.METADATA_ONLY, 0)
        s.pending = counts.get(schema.PENDING, 0)
        s.queued = self._queued()

    def _due(self, now: float) -> str | None:
        """The first queued path whose quiet period is over. ``_pending`` is nearly in due order
        (a rename appends out of order), so this usually returns at the first entry."""
        for path, due in self._pending.items():
            if due <= now:
                return path
        return None

    def _error(self, path: str, exc: BaseException) -> str:
        if isinstance(exc, OSError):  # the file's own trouble (EACCES, EIO...): not a bug
            log.warning("indexing %s failed: %s", path, exc)
        else:
            log.error("indexing %s failed: %s", path, exc, exc_info=exc)
        return self._note_error(path, f"{type(exc).__name__}: {exc}")

    def _note_error(self, path: str, msg: str) -> str:
        self.stats.errors[path] = msg
        self.stats.last_error = f"{path}: {msg}"
        return msg

    def _remember(self, path: str, rec: FileRecord | None) -> None:
        """Fields and warnings of ``path`` from its catalog entry (None: it has none now). A file
        without chunks is matched by no filter, so it shows no fields either."""
        if rec is None:
            self.fields.drop(path)
            self.stats.warnings.pop(path, None)
            return
        # here, not at the top: the pipeline's imports (extraction, fields, numpy) cost the
        # daemon ~0.3 s before it mounts; the first entry is remembered once the mount is live
        from memexfs.pipeline import flat_fields

        self.fields.put(path, DocFields.from_payload(flat_fields(rec.fields))
                        if rec.chunks else None)
        warnings = rec.fields.get("warnings")
        if warnings and isinstance(warnings, list):
            cap = tuning.MAX_WARNINGS_KEPT
            kept = [" ".join(str(w).split())[:tuning.MAX_WARNING_CHARS] for w in warnings[:cap]]
            if len(warnings) > cap:
                kept.append(f"(+{len(warnings) - cap} more)")
            self.stats.warnings[path] = tuple(kept)
        else:
            self.stats.warnings.pop(path, None)

    def _changed(self, paths: set[str]) -> None:
        self.stats.generation += 1
        try:
            self.on_change(paths)
        except Exception:
            log.exception("change callback failed")
