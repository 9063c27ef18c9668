"""The indexer: turns mount and watcher notifications into index updates, off the trio thread.

Notifications (``changed``/``removed``/``moved``) only append to an in-memory list and return at
once; they implement ``mount.ops.IndexSink``. One trio task applies them in order: moves and
removals are cheap catalog updates, changes mark the catalog entry ``pending`` (so a crash loses no
job: reconcile re-queues pending entries) and, after a short quiet period (editors write in bursts),
go through the pipeline in batches. Every store/encoder call runs in a worker thread behind a
limiter, so FUSE requests are never blocked by indexing.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

from memexfs import reconcile, schema
from memexfs.pipeline import Pipeline, Prepared
from memexfs.schema import FileRecord, location_payload
from memexfs.store import Filter, Match, Store
from memexfs.vault import STATE_DIR, Vault

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.25
BATCH_FILES = 16
BATCH_TEXTS = 128


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
    generation: int = 0
    encoder: str = ""
    started_at: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    errors: dict[str, str] = field(default_factory=dict)
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Indexer:
    def __init__(
        self,
        vault: Vault,
        store: Store,
        pipeline_factory: Callable[[], Pipeline],
        on_change: Callable[[set[str]], None] | None = None,
        watch: bool = True,
    ) -> None:
        self.vault = vault
        self.store = store
        self._pipeline_factory = pipeline_factory
        self.pipeline: Pipeline | None = None
        self.on_change = on_change or (lambda paths: None)
        self.watch = watch
        self.stats = Stats()
        self._ops: list[tuple[str, str, str]] = []
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._status: dict[str, str] = {}
        self._wake = trio.Event()
        self._idle = trio.Event()
        self._limiter = trio.CapacityLimiter(1)
        self._trio_token: trio.lowlevel.TrioToken | None = None

    # ------------------------------------------------------------- IndexSink (trio thread)
    def changed(self, path: str) -> None:
        self._push("changed", path)

    def removed(self, path: str) -> None:
        self._push("removed", path)

    def moved(self, old: str, new: str) -> None:
        self._push("moved", old, new)

    def status_of(self, path: str) -> str | None:
        if path in self._pending:
            return schema.PENDING
        return self._status.get(path)

    def _push(self, op: str, a: str, b: str = "") -> None:
        if a.split("/", 1)[0] == STATE_DIR:
            return
        self._ops.append((op, a, b))
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        self._wake.set()

    def notify_threadsafe(self, op: str, a: str, b: str = "") -> None:
        """For the watcher thread: hop onto the trio thread first."""
        if self._trio_token is not None:
            trio.from_thread.run_sync(self._push, op, a, b, trio_token=self._trio_token)

    @property
    def idle(self) -> bool:
        return self.stats.state == "idle" and not self._ops and not self._pending

    async def wait_idle(self) -> None:
        while not self.idle:
            await trio.sleep(0.05)

    # ------------------------------------------------------------- the task
    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._trio_token = trio.lowlevel.current_trio_token()
        task_status.started()
        async with trio.open_nursery() as nursery:
            self.stats.state = "reconciling"
            await self._sync(self._load_status)
            plan = await self._sync(reconcile.plan, self.vault, self.store)
            for old, new in plan.moved:
                self._ops.append(("moved", old, new))
            for file_id, path in plan.removed:
                self._ops.append(("removed", path, file_id))
            for path in plan.changed:
                self._ops.append(("changed", path, ""))
            log.info("reconcile: %d changed, %d moved, %d removed, %d unchanged",
                     len(plan.changed), len(plan.moved), len(plan.removed), plan.unchanged)
            try:
                self.pipeline = await self._sync(self._pipeline_factory)
            except Exception as exc:
                self.stats.state = "error"
                self.stats.last_error = f"encoder unavailable: {exc}"
                log.exception("cannot start the indexing pipeline")
                return
            self.stats.encoder = self.pipeline.encoder.name
            if self.watch:
                nursery.start_soon(self._watch)
            await self._loop()

    async def _sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _load_status(self) -> None:
        for rec in self.store.iter_files():
            self._status[rec.path] = rec.status
        self._recount()

    def _recount(self) -> None:
        counts: dict[str, int] = {}
        for st in self._status.values():
            counts[st] = counts.get(st, 0) + 1
        s = self.stats
        s.files = len(self._status)
        s.indexed = counts.get(schema.INDEXED, 0)
        s.failed = counts.get(schema.FAILED, 0)
        s.metadata_only = counts.get(schema.METADATA_ONLY, 0)
        s.pending = counts.get(schema.PENDING, 0)
        s.queued = len(self._pending) + len(self._ops)

    async def _loop(self) -> None:
        while True:
            await self._apply_ops()
            now = time.monotonic()
            due = [p for p, t in self._pending.items() if t <= now]
            if due:
                self.stats.state = "indexing"
                await self._index_batch(due[:BATCH_FILES])
                continue
            self._recount()
            if not self._pending and not self._ops:
                self.stats.state = "idle"
                self.stats.current = None
                self._idle.set()
            self._wake = trio.Event()
            if self._ops:
                continue
            wait = (min(self._pending.values()) - now) if self._pending else None
            with trio.move_on_after(wait if wait is not None else float("inf")):
                await self._wake.wait()

    async def _apply_ops(self) -> None:
        while self._ops:
            ops, self._ops = self._ops, []
            for op, a, b in ops:
                try:
                    await self._apply(op, a, b)
                except Exception as exc:
                    self.stats.last_error = f"{op} {a}: {exc}"
                    log.exception("index update %s %s failed", op, a)

    async def _apply(self, op: str, a: str, b: str) -> None:
        if op == "changed":
            self._pending[a] = time.monotonic() + DEBOUNCE_S
            self._pending.move_to_end(a)
            await self._sync(self._mark_pending, a)
        elif op == "removed":
            self._pending.pop(a, None)
            if await self._sync(self._remove, a, b):
                self._status.pop(a, None)
                self._changed({a})
        elif op == "moved":
            moved = await self._sync(self._move, a, b)
            for old, new in moved:
                if old in self._status:
                    self._status[new] = self._status.pop(old)
                if old in self._pending:
                    self._pending[new] = self._pending.pop(old)
            if moved:
                self._changed({p for pair in moved for p in pair})

    # -- store-side helpers (worker thread)
    def _mark_pending(self, path: str) -> None:
        rec = self.store.file_by_path(path)
        if rec is None:
            if not os.path.isfile(self.vault.abspath(path)):
                return
            rec = FileRecord(str(uuid.uuid4()), path, -1, 0)
            self.store.put_file(rec)
        elif rec.status != schema.PENDING:
            self.store.update_file(rec.file_id, status=schema.PENDING)

    def _remove(self, path: str, file_id: str) -> bool:
        if os.path.lexists(self.vault.abspath(path)) and not file_id:
            return False  # replaced already (e.g. rename over it): the watcher lags behind
        rec = self.store.get_file(file_id) if file_id else self.store.file_by_path(path)
        if rec is None:
            return False
        self.store.delete_file(rec.file_id)
        return True

    def _move(self, old: str, new: str) -> list[tuple[str, str]]:
        """Move one file's entry, or every entry under a moved folder; vectors stay put."""
        rec = self.store.file_by_path(old)
        targets = [rec] if rec else list(self.store.iter_files(Filter(must=(Match("dirs", old),))))
        moved = []
        for r in targets:
            new_path = new + r.path[len(old):]
            clash = self.store.file_by_path(new_path)
            if clash is not None and clash.file_id != r.file_id:
                self.store.delete_file(clash.file_id)
            self.store.update_file(r.file_id, path=new_path)
            self.store.move_chunks(r.file_id, location_payload(new_path))
            moved.append((r.path, new_path))
        return moved

    # -- the heavy path
    async def _index_batch(self, paths: list[str]) -> None:
        assert self.pipeline is not None
        pipe = self.pipeline
        for p in paths:
            self._pending.pop(p, None)
        preps: list[Prepared] = []
        texts = 0
        for p in paths:
            self.stats.current = p
            try:
                prep = await self._sync(pipe.prepare, p)
            except Exception as exc:
                self._error(p, exc)
                continue
            preps.append(prep)
            texts += len(prep.missing)
            if texts >= BATCH_TEXTS:
                break
        for p in paths[len(preps):]:
            if p not in {x.rec.path for x in preps} and p not in self.stats.errors:
                self._pending[p] = time.monotonic()  # not reached this round
        try:
            self.stats.embedded_texts += await self._sync(pipe.embed, preps)
        except Exception as exc:
            for prep in preps:
                self._error(prep.rec.path, exc)
            return
        changed: set[str] = set()
        for prep in preps:
            try:
                outcome = await self._sync(pipe.commit, prep)
            except Exception as exc:
                self._error(prep.rec.path, exc)
                continue
            path = prep.rec.path
            if prep.gone:
                if self._status.pop(path, None) is not None or outcome == "removed":
                    changed.add(path)
                continue
            if outcome != "skipped" or self._status.get(path) != prep.rec.status:
                changed.add(path)
            self._status[path] = prep.rec.status
            if prep.rec.error:
                self.stats.errors[path] = prep.rec.error
            else:
                self.stats.errors.pop(path, None)
        self.stats.done_since_start += len(preps)
        elapsed = max(time.time() - self.stats.started_at, 1e-6)
        self.stats.files_per_s = round(self.stats.done_since_start / elapsed, 2)
        if changed:
            self._changed(changed)

    def _error(self, path: str, exc: BaseException) -> None:
        log.exception("indexing %s failed", path, exc_info=exc)
        self.stats.errors[path] = f"{type(exc).__name__}: {exc}"
        self.stats.last_error = self.stats.errors[path]

    def _changed(self, paths: set[str]) -> None:
        self.stats.generation += 1
        try:
            self.on_change(paths)
        except Exception:
            log.exception("change callback failed")

    # -- outside changes
    async def _watch(self) -> None:
        import watchfiles

        root = str(self.vault.root)
        state = os.path.join(root, STATE_DIR)

        def keep(change: watchfiles.Change, path: str) -> bool:
            return not (path == state or path.startswith(state + os.sep))

        try:
            async for changes in watchfiles.awatch(root, watch_filter=keep, debounce=200,
                                                   step=50, recursive=True):
                for kind, full in changes:
                    rel = os.path.relpath(full, root)
                    if kind == watchfiles.Change.deleted:
                        self._push("removed", rel)
                    elif os.path.isdir(full):
                        self._push_tree(full, root)
                    else:
                        self._push("changed", rel)
        except Exception:
            log.exception("vault watcher stopped; changes around the mount wait for remount")

    def _push_tree(self, full: str, root: str) -> None:
        for dirpath, _dirs, files in os.walk(full):
            for name in files:
                self._push("changed", os.path.relpath(os.path.join(dirpath, name), root))
