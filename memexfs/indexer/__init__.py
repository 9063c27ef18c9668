"""The indexer: turns mount and watcher notifications into index updates, off the trio thread.

Notifications (``changed``/``removed``/``moved``) only append to an in-memory list and return at
once; they implement ``mount.ops.IndexSink``. One trio task applies them in order: moves and
removals are cheap catalog updates, changes mark the catalog entry ``pending`` (so a crash loses no
job: reconcile re-queues pending entries) and, after a short quiet period (editors write in bursts),
go through the pipeline in batches. Every store/encoder call runs in a worker thread behind a
limiter, so FUSE requests are never blocked by indexing.

The catalog is the truth; ``_status`` is its in-memory mirror so ``status_of`` (called from FUSE
``getxattr``) never touches the store; ``fields`` (``memexfs.fields_memory``) and the stats'
errors and warnings are mirrored the same way for the other index xattrs. Every path that leaves
the queue ends with a catalog write (indexed, metadata-only, failed — with the error — or
removed) and the mirrors follow it.

The parts live by concern in this package: ``core`` (state, notifications), ``ops`` (the op
queue), ``stream`` (prepare -> embed -> commit), ``outside`` (the watcher), ``stats``, ``tuning``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from memexfs import reconcile
from memexfs.errors import IndexUnavailable
from memexfs.indexer.queued import Changed
from memexfs.indexer.stats import Stats, StatusMirror
from memexfs.indexer.stream import _Stream

__all__ = ["Indexer", "Stats", "StatusMirror"]

log = logging.getLogger("memexfs.indexer")  # one logger for the package: what operators filter on


class Indexer(_Stream):
    """Mount and watcher notifications in; index updates out (see the module docstring)."""

    # ------------------------------------------------------------- the task
    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with trio.open_nursery() as nursery:
            if self.watch:  # first: what changes while we reconcile is queued, not missed
                nursery.start_soon(self._watch)
            plan = await self._reconcile()
            self._queue_plan(plan)
            log.info("reconcile: %d changed, %d moved, %d removed, %d unchanged",
                     len(plan.changed), len(plan.moved), len(plan.removed), plan.unchanged)
            try:
                # Loading the encoder takes seconds: a signal meanwhile must not wait for it.
                self.pipeline = await trio.to_thread.run_sync(
                    self._pipeline_factory, limiter=self._limiter, abandon_on_cancel=True)
            except Exception as exc:
                self.stats.state = "error"
                self.stats.last_error = f"encoder unavailable: {exc}"
                log.exception("cannot start the indexing pipeline")
                return
            self.stats.encoder = self.pipeline.encoder.name
            self._ops.extend(Changed(path) for path in
                             await self._sync(self._other_encoder, self.stats.encoder))
            await self._loop()

    async def _reconcile(self) -> reconcile.Plan:
        """Compare vault and catalog; while the index is unavailable (a store that cannot open,
        a corrupt index being rebuilt), plain files are served and this waits, with backoff."""
        wait = 1.0
        while True:
            self.stats.state = "reconciling"
            try:
                await self._sync(self._load_status)
                plan: reconcile.Plan = await self._sync(reconcile.plan, self.vault, self.store)
                return plan
            except IndexUnavailable as exc:
                self.stats.state = "error"
                self.stats.last_error = f"index unavailable: {exc}"
                await trio.sleep(wait)
                wait = min(wait * 2, 60.0)

    def _load_status(self) -> None:
        """The catalog's state, errors, warnings and fields into memory: one scroll of its
        payloads (no vectors), in a worker thread while the mount already serves files. Until a
        file's entry is in, its index xattrs answer ENODATA, all of them together."""
        for rec in self.store.iter_files():
            self._status[rec.path] = rec.status
            if rec.error:
                self.stats.errors[rec.path] = rec.error
            self._remember(rec.path, rec)
        self._recount()

    async def _loop(self) -> None:
        while True:
            await self._apply_ops()
            now = time.monotonic()
            if self._due(now):
                if self.stats.state != "indexing":
                    self.stats.state = "indexing"
                    self._busy_since, self._busy_files, self._busy_texts = now, 0, 0
                await self._stream()
                self._chunks_stale = True
                self._recount()
                await trio.lowlevel.checkpoint()
                continue
            if self._chunks_stale and not self._ops:
                # before queued drops to 0, so "idle" always comes with a current chunk count
                self._chunks_stale = False
                try:
                    self.stats.chunks = await self._sync(self.store.count_chunks)
                except Exception:
                    log.exception("cannot count chunks")
                continue
            self._recount()
            self._wake = trio.Event()
            if self._ops:
                continue
            if not self._pending:
                self.stats.state = "idle"
                self.stats.current = None
            wait = (min(self._pending.values()) - now) if self._pending else None
            with trio.move_on_after(wait if wait is not None else float("inf")):
                await self._wake.wait()
