"""The indexer: turns mount and watcher notifications into index updates, off the trio thread.

Notifications (``changed``/``removed``/``moved``) only append to an in-memory list and return at
once; they implement ``mount.ops.IndexSink``. One trio task applies them in order: moves and
removals are cheap catalog updates, changes mark the catalog entry ``pending`` (so a crash loses no
job: reconcile re-queues pending entries) and, after a short quiet period (editors write in bursts),
go through the pipeline in batches. Every store/encoder call runs in a worker thread behind a
limiter, so FUSE requests are never blocked by indexing.

The catalog is the truth; ``_status`` is its in-memory mirror so ``status_of`` (called from FUSE
``getxattr``) never touches the store. Every path that leaves the queue ends with a catalog write
(indexed, metadata-only, failed — with the error — or removed) and the mirror follows it.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

from memexfs import reconcile, schema
from memexfs.echo import OwnChanges, lstat_signature
from memexfs.errors import IndexUnavailable
from memexfs.pipeline import Pipeline, Prepared
from memexfs.schema import FileRecord, location_payload
from memexfs.store import Filter, Match, MatchAny, Store
from memexfs.vault import STATE_DIR, Vault

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.25
BATCH_FILES = 32  # at most this many files per encoder call
EMBED_TEXTS = 64  # hand a group to the encoder once this many texts are ready
MAX_ERRORS_SHOWN = 200  # the stats xattr must stay well under the 64 KiB xattr limit
WATCH_BACKOFF_S = 0.5  # first restart of a failed vault watcher; doubles per failure in a streak
WATCH_BACKOFF_MAX_S = 60.0  # ... up to this (each restart also rescans: a slow poll, in effect)
WATCH_QUIET_S = 60.0  # failures closer than this are one streak: one log line
ECHO_CHECK_BATCH = 256  # paths checked per trio step (each check is one lstat)
TRANSIENT_RETRY_S = 10.0  # a file whose extraction failed for a worker-side reason is tried again
INDEX_RETRY_S = 5.0  # files that met an unavailable index (down, full) wait this long, doubling
INDEX_RETRY_MAX_S = 120.0
# Cancellation and interpreter exits end the watcher; anything else (pyo3 panics are
# BaseExceptions too) is a watcher failure, and the watcher is restarted.
_PROPAGATE = (trio.Cancelled, KeyboardInterrupt, SystemExit, GeneratorExit)


@dataclass
class _Item:
    """One file on its way through the stream: prepared, or failed with an error."""

    path: str
    prep: Prepared | None = None
    error: str | None = None
    index_down: bool = False  # the error was the index's, not the file's: queue it again


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
    last_error: str | None = None
    watcher: str = "off"  # off | watching | restarting
    watcher_restarts: int = 0
    outside_events: int = 0  # watcher paths taken as changes made around the mount
    echoes_dropped: int = 0  # watcher paths that only showed what the mount itself did

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors_total"] = len(self.errors)
        if len(self.errors) > MAX_ERRORS_SHOWN:
            out["errors"] = dict(sorted(self.errors.items())[:MAX_ERRORS_SHOWN])
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

    def pop(self, path: str, *default: Any) -> Any:  # type: ignore[override]
        if path in self:
            self.counts[self[path]] -= 1
        return super().pop(path, *default)

    def popitem(self) -> tuple[str, str]:
        path, status = super().popitem()
        self.counts[status] -= 1
        return path, status

    def setdefault(self, path: str, status: str) -> str:  # type: ignore[override]
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

class Indexer:
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
        self._ops: list[tuple[str, str, str]] = []
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._retried: set[str] = set()  # transient extraction failures retried this session
        self._index_wait = 0.0  # current wait before files that met a down index are retried
        self._inflight: set[str] = set()
        self._announced: set[str] = set()  # "changed" ops not yet applied
        self._chunks_stale = True
        self._applying = 0  # ops taken off ``_ops`` and not yet applied
        self._status = StatusMirror()
        self._wake = trio.Event()
        self._limiter = trio.CapacityLimiter(1)  # extraction and store work
        self._encode_limiter = trio.CapacityLimiter(1)  # the encoder (uses every core itself)
        self._store_limiter = trio.CapacityLimiter(1)  # commits: never behind a slow extraction
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._busy_since = time.monotonic()
        self._busy_files = 0
        self._busy_texts = 0

    # ------------------------------------------------------------- IndexSink (trio thread)
    def changed(self, path: str) -> None:
        if self._push("changed", path):
            self._announced.add(path)

    def removed(self, path: str) -> None:
        self._push("removed", path)

    def moved(self, old: str, new: str) -> None:
        self._push("moved", old, new)

    def status_of(self, path: str) -> str | None:
        if path in self._pending or path in self._inflight or path in self._announced:
            return schema.PENDING
        return self._status.get(path)

    def _push(self, op: str, a: str, b: str = "") -> bool:
        if a.split("/", 1)[0] == STATE_DIR or (b and b.split("/", 1)[0] == STATE_DIR):
            return False
        self._ops.append((op, a, b))
        self.stats.queued = self._queued()
        self._wake.set()
        return True

    def _queued(self) -> int:
        return len(self._ops) + self._applying + len(self._pending) + len(self._inflight)

    def notify_threadsafe(self, op: str, a: str, b: str = "") -> None:
        """For the watcher thread: hop onto the trio thread first."""
        if self._trio_token is not None:
            trio.from_thread.run_sync(self._push, op, a, b, trio_token=self._trio_token)

    @property
    def idle(self) -> bool:
        return self.stats.state == "idle" and not self._queued()

    async def wait_idle(self) -> None:
        while not self.idle:  # noqa: ASYNC110 (state is polled by design: no event per change)
            await trio.sleep(0.05)

    # ------------------------------------------------------------- the task
    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self._trio_token = trio.lowlevel.current_trio_token()
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
            for path in await self._sync(self._other_encoder, self.stats.encoder):
                self._ops.append(("changed", path, ""))
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

    def _queue_plan(self, plan: reconcile.Plan) -> None:
        for old, new in plan.moved:
            self._ops.append(("moved", old, new))
        for file_id, path in plan.removed:
            self._ops.append(("removed", path, file_id))
        for path in plan.changed:
            self._ops.append(("changed", path, ""))
        self.stats.queued = self._queued()

    async def _sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _load_status(self) -> None:
        for rec in self.store.iter_files():
            self._status[rec.path] = rec.status
            if rec.error:
                self.stats.errors[rec.path] = rec.error
        self._recount()

    def _recount(self) -> None:
        counts = self._status.counts
        s = self.stats
        s.files = len(self._status)
        s.indexed = counts.get(schema.INDEXED, 0)
        s.failed = counts.get(schema.FAILED, 0)
        s.metadata_only = counts.get(schema.METADATA_ONLY, 0)
        s.pending = counts.get(schema.PENDING, 0)
        s.queued = self._queued()

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

    async def _apply_ops(self) -> None:
        while self._ops:
            ops, self._ops = self._ops, []
            self._applying = len(ops)
            try:
                await self._apply_run(ops)
            finally:
                self._applying = 0

    async def _apply_run(self, ops: list[tuple[str, str, str]]) -> None:
        # Consecutive "changed" ops go to the store as one call (a bulk copy sends hundreds).
        run: list[str] = []
        for op, a, b in ops:
            if op in ("changed", "touched"):
                run.append(a if op == "changed" else "\0" + a)
                continue
            await self._apply_changes(run)
            run = []
            try:
                await self._apply(op, a, b)
            except Exception as exc:
                self.stats.last_error = f"{op} {a}: {exc}"
                log.exception("index update %s %s failed", op, a)
        await self._apply_changes(run)

    async def _apply_changes(self, run: list[str]) -> None:
        """Queue changed files (debounced) and mark them ``pending`` in the catalog, durably.

        Paths prefixed with NUL come from the watcher and may be echoes of our own writes: those
        whose size and mtime match an up-to-date catalog entry are dropped.
        """
        if not run:
            return
        self._announced.difference_update(run)
        try:
            queued = await self._sync(self._mark_pending, run)
        except Exception as exc:
            self.stats.last_error = f"queue {len(run)} files: {exc}"
            log.exception("cannot mark %d files pending", len(run))
            queued = [p.lstrip("\0") for p in run]  # still index them; reconcile is the backstop
        due = time.monotonic() + DEBOUNCE_S
        for path in queued:
            self._pending[path] = due
            self._pending.move_to_end(path)
            if path in self._status:
                self._status[path] = schema.PENDING
        self.stats.queued = self._queued()

    async def _apply(self, op: str, a: str, b: str) -> None:
        self._chunks_stale = True
        if op == "removed":
            self._pending.pop(a, None)
            removed = await self._sync(self._remove, a, b)
            for path in removed:
                self._status.pop(path, None)
                self.stats.errors.pop(path, None)
            if removed:
                self._changed(set(removed))
        elif op == "outside":
            await self._apply_outside(a.split("\0") if a else [], b.split("\0") if b else [])
        elif op == "rescan":
            await self._rescan()
        elif op == "moved":
            moved = await self._sync(self._move, a, b)
            for old, new in moved:
                if old in self._status:
                    self._status[new] = self._status.pop(old)
                if old in self._pending:
                    self._pending[new] = self._pending.pop(old)
                if old in self.stats.errors:
                    self.stats.errors[new] = self.stats.errors.pop(old)
            if moved:
                self._changed({p for pair in moved for p in pair})

    # -- store-side helpers (worker thread)
    def _mark_pending(self, run: list[str]) -> list[str]:
        """Worker thread: one catalog lookup for the whole run; returns the paths to index."""
        paths = list(dict.fromkeys(p.lstrip("\0") for p in run))
        maybe = {p[1:] for p in run if p.startswith("\0")} - {p for p in run if p[:1] != "\0"}
        known: dict[str, FileRecord] = {}
        for start in range(0, len(paths), 256):
            flt = Filter(must=(MatchAny("path", tuple(paths[start:start + 256])),))
            known.update((rec.path, rec) for rec in self.store.iter_files(flt))
        out = []
        for path in paths:
            rec = known.get(path)
            try:
                st = os.lstat(self.vault.abspath(path))
            except OSError:
                st = None
            if path in maybe and rec is not None and st is not None and \
                    rec.status != schema.PENDING and rec.size == st.st_size and \
                    rec.mtime_ns == st.st_mtime_ns:
                continue  # the watcher saw a write we already know about
            if rec is None:
                if st is None or not os.path.isfile(self.vault.abspath(path)):
                    if path in maybe:
                        continue
                    out.append(path)  # let prepare decide (it records vanished files)
                    continue
                self.store.put_file(FileRecord(str(uuid.uuid4()), path, -1, 0))
            elif rec.status != schema.PENDING:
                self.store.update_file(rec.file_id, status=schema.PENDING)
            out.append(path)
        return out

    def _other_encoder(self, name: str) -> list[str]:
        """Worker thread: entries whose vectors another encoder made (re-embedded in the
        background, as ordinary queued changes)."""
        flt = Filter(must=(MatchAny("status", (schema.INDEXED, schema.METADATA_ONLY)),),
                     must_not=(Match("encoder", name),))
        return [rec.path for rec in self.store.iter_files(flt)]

    def _remove(self, path: str, file_id: str) -> list[str]:
        """Worker thread: drop the entry (or, for a vanished folder, every entry under it)."""
        if os.path.lexists(self.vault.abspath(path)) and not file_id:
            return []  # replaced already (e.g. rename over it): the watcher lags behind
        rec = self.store.get_file(file_id) if file_id else self.store.file_by_path(path)
        recs = [rec] if rec else [] if file_id else list(
            self.store.iter_files(Filter(must=(Match("dirs", path),))))
        for r in recs:
            self.store.delete_file(r.file_id)
        return [r.path for r in recs]

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
    def _due(self, now: float) -> str | None:
        """The first queued path whose quiet period is over. ``_pending`` is nearly in due order
        (a rename appends out of order), so this usually returns at the first entry."""
        for path, due in self._pending.items():
            if due <= now:
                return path
        return None

    async def _stream(self) -> None:
        """Index due files as a three-stage stream: prepare (extract, chunk) -> embed -> commit.

        The stages overlap, so the encoder works on one group while the next is extracted and the
        previous one is written. The producer stops taking files as soon as an op (move, removal)
        arrives, and the stream drains before ops are applied: a commit never writes a record that
        a rename has moved meanwhile.
        """
        assert self.pipeline is not None
        to_embed, embed_in = trio.open_memory_channel[list[_Item]](1)
        to_commit, commit_in = trio.open_memory_channel[list[_Item]](1)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._produce, self.pipeline, to_embed)
                nursery.start_soon(self._embed_stage, self.pipeline, embed_in, to_commit)
                nursery.start_soon(self._commit_stage, self.pipeline, commit_in)
        finally:
            if self._inflight:  # only after a bug in a stage: retry those files a bit later
                log.error("indexing stream left %d files; queued again", len(self._inflight))
                for path in self._inflight:
                    self._pending[path] = time.monotonic() + 5.0
                self._inflight.clear()

    async def _produce(self, pipe: Pipeline, out: trio.MemorySendChannel[list[_Item]]) -> None:
        async with out:
            group: list[_Item] = []
            texts = 0
            while not self._ops:
                path = self._due(time.monotonic())
                if path is None:
                    break
                del self._pending[path]
                self._inflight.add(path)
                self.stats.current = path
                item = _Item(path)
                try:
                    # abandonable: an unmount must not wait for a slow extraction (the entry
                    # stays pending in the catalog, so the next mount picks the file up again)
                    item.prep = await trio.to_thread.run_sync(
                        pipe.prepare, path, limiter=self._limiter, abandon_on_cancel=True)
                    if not (item.prep.skip or item.prep.gone):
                        texts += len(item.prep.missing)
                except IndexUnavailable as exc:
                    item.error, item.index_down = self._note_error(path, str(exc)), True
                except Exception as exc:
                    item.error = self._error(path, exc)
                group.append(item)
                if texts >= EMBED_TEXTS or len(group) >= BATCH_FILES:
                    await out.send(group)
                    group, texts = [], 0
            if group:
                await out.send(group)

    async def _embed_stage(self, pipe: Pipeline, inp: trio.MemoryReceiveChannel[list[_Item]],
                           out: trio.MemorySendChannel[list[_Item]]) -> None:
        async with inp, out:
            async for group in inp:
                todo = [it.prep for it in group
                        if it.prep is not None and not (it.prep.skip or it.prep.gone)]
                if todo:
                    t0 = time.perf_counter()
                    try:
                        self.stats.embedded_texts += await trio.to_thread.run_sync(
                            pipe.embed, todo, limiter=self._encode_limiter,
                            abandon_on_cancel=True)
                        self.stats.encode_seconds += time.perf_counter() - t0
                    except Exception as exc:
                        for it in group:
                            if it.prep in todo:
                                it.error = self._error(it.path, exc)
                await out.send(group)

    async def _commit_stage(self, pipe: Pipeline,
                            inp: trio.MemoryReceiveChannel[list[_Item]]) -> None:
        async with inp:
            async for group in inp:
                try:
                    await self._commit_group(pipe, group)
                finally:
                    self._inflight.difference_update(it.path for it in group)

    async def _commit_group(self, pipe: Pipeline, group: list[_Item]) -> None:
        ok = [it.prep for it in group if it.prep is not None and it.error is None]
        failed = {it.path: it.error for it in group if it.error is not None and not it.index_down}
        later = [it.path for it in group if it.index_down]
        results, errors, down = await trio.to_thread.run_sync(
            self._commit_all, pipe, ok, failed, limiter=self._store_limiter)
        for path, msg in errors.items():
            failed[path] = self._note_error(path, msg)
        self._retry_later([*later, *down])
        now = time.monotonic()
        for done in ok:
            if done.transient and done.rec.path not in self._retried and done.rec.path not in down:
                self._retried.add(done.rec.path)  # once per session; the next mount retries too
                self._pending[done.rec.path] = now + TRANSIENT_RETRY_S
            elif not done.transient:
                self._retried.discard(done.rec.path)
        by_path = {prep.rec.path: prep for prep in ok}
        changed: set[str] = set()
        for path, (outcome, status) in results.items():
            if status is None:  # gone
                if self._status.pop(path, None) is not None or outcome == "removed":
                    changed.add(path)
                self.stats.errors.pop(path, None)
                continue
            if outcome != "skipped" or self._status.get(path) != status:
                changed.add(path)
            self._status[path] = status
            prep = by_path.get(path)
            err = failed.get(path) or (prep.rec.error if prep is not None else None)
            if err:
                self.stats.errors[path] = err
            else:
                self.stats.errors.pop(path, None)
            if prep is not None and not prep.skip:
                self._busy_texts += len(prep.texts)
        self.stats.done_since_start += len(results)
        self._busy_files += len(results)
        elapsed = max(time.monotonic() - self._busy_since, 1e-6)
        self.stats.files_per_s = round(self._busy_files / elapsed, 2)
        self.stats.texts_per_s = round(self._busy_texts / elapsed, 2)
        if changed:
            self._changed(changed)

    def _commit_all(self, pipe: Pipeline, preps: list[Prepared], failed: dict[str, str]) -> (
            tuple[dict[str, tuple[str, str | None]], dict[str, str], list[str]]):
        """Worker thread: write every prepared file, and a ``failed`` entry (with its error) for
        every file that could not be prepared, embedded or committed, so no file is left without
        a durable, visible state. An unavailable index (down, full, corrupt) is no fault of the
        file: nothing is recorded, and the file is returned to be queued again. Returns
        ({path: (outcome, status or None if gone)}, new errors, paths for later); stats are left
        to the trio thread."""
        out: dict[str, tuple[str, str | None]] = {}
        errors: dict[str, str] = {}
        down: list[str] = []
        for prep in preps:
            path = prep.rec.path
            if down:  # the index just failed: don't knock on it for every file of the group
                down.append(path)
                continue
            try:
                out[path] = (pipe.commit(prep), None if prep.gone else prep.rec.status)
            except IndexUnavailable as exc:
                self.stats.last_error = f"index unavailable: {exc}"
                down.append(path)
            except Exception as exc:
                log.error("committing %s failed: %s", path, exc, exc_info=exc)
                errors[path] = f"{type(exc).__name__}: {exc}"
        for path, error in {**failed, **errors}.items():
            if down:
                down.append(path)
                continue
            try:
                out[path] = ("failed", self._record_failure(path, error))
            except IndexUnavailable:
                down.append(path)
            except Exception:
                log.exception("cannot record the failure of %s", path)
                out[path] = ("failed", schema.FAILED)
        return out, errors, down

    def _retry_later(self, paths: list[str]) -> None:
        """Queue files that met an unavailable index again, with a growing wait; the state says
        why (``memexfs status``) until a commit succeeds."""
        if not paths:
            if self._index_wait:
                self._index_wait = 0.0
                if self.stats.state == "error":
                    self.stats.state = "indexing"
            return
        self._index_wait = min(max(self._index_wait * 2, INDEX_RETRY_S), INDEX_RETRY_MAX_S)
        due = time.monotonic() + self._index_wait
        for path in paths:
            self._pending[path] = due
        self.stats.state = "error"

    def _record_failure(self, path: str, error: str) -> str | None:
        """A failed entry without chunks or content hash; size -1 never matches a stat, so the
        next change or the next mount tries again. Returns the status (None: the file is gone)."""
        rec = self.store.file_by_path(path)
        if not os.path.isfile(self.vault.abspath(path)):
            if rec is not None:
                self.store.delete_file(rec.file_id)
            return None
        rec = rec or FileRecord(str(uuid.uuid4()), path, -1, 0)
        if rec.chunks:
            self.store.delete_chunks(rec.file_id)
        rec.status, rec.error, rec.chunks = schema.FAILED, error, 0
        rec.size, rec.mtime_ns, rec.content_hash = -1, 0, ""
        self.store.put_file(rec)
        return schema.FAILED

    def _error(self, path: str, exc: BaseException) -> str:
        log.error("indexing %s failed: %s", path, exc, exc_info=exc)
        return self._note_error(path, f"{type(exc).__name__}: {exc}")

    def _note_error(self, path: str, msg: str) -> str:
        self.stats.errors[path] = msg
        self.stats.last_error = f"{path}: {msg}"
        return msg

    def _changed(self, paths: set[str]) -> None:
        self.stats.generation += 1
        try:
            self.on_change(paths)
        except Exception:
            log.exception("change callback failed")

    # -- outside changes
    async def _watch(self) -> None:
        """Changes made around the mount, for the whole session: a watcher that fails for any
        reason (an undecodable file name, an inotify limit, a panic in its Rust core) is
        restarted with backoff, and each restart rescans the vault for what it missed. One log
        line per streak of failures (a watcher that works for a minute ends the streak).

        The Rust core fails a whole batch on a name that is not UTF-8, so each change to such a
        file costs a restart and a rescan; the backoff starts over whenever a batch got through.
        """
        backoff = WATCH_BACKOFF_S
        last_failure = -WATCH_QUIET_S
        while True:
            started = time.monotonic()
            try:
                await self._watch_vault()
                problem = "it stopped"
            except BaseException as exc:
                if isinstance(exc, _PROPAGATE) or (isinstance(exc, BaseExceptionGroup)
                                                   and exc.subgroup(_PROPAGATE) is not None):
                    raise
                problem = _describe(exc)
            now = time.monotonic()
            self.stats.watcher = "restarting"
            self.stats.watcher_restarts += 1
            if now - last_failure > WATCH_QUIET_S:  # a new streak
                log.warning("vault watcher failed (%s); restarting it with backoff and "
                            "rescanning the vault", problem)
            else:
                log.debug("vault watcher failed again (%s)", problem)
            # it worked in between (a file that keeps failing it must not silence it for long)
            if self._watch_healthy or now - started > WATCH_BACKOFF_MAX_S:
                backoff = WATCH_BACKOFF_S
            else:
                backoff = min(backoff * 2, WATCH_BACKOFF_MAX_S)
            last_failure = now
            self._watch_healthy = False
            await trio.sleep(backoff)
            if not self._rescan_queued:
                # queued now, applied once the new watcher is set up (it is, before our next
                # checkpoint): nothing falls between the rescan and the watcher
                self._rescan_queued = True
                self._push("rescan", "")

    async def _watch_vault(self) -> None:
        """One watcher's life. One op per batch, after dropping our own echoes; all file-system
        work (walking new folders, pairing deletes with adds as renames) happens in a worker
        thread."""
        import watchfiles

        root = str(self.vault.root)
        state = os.path.join(root, STATE_DIR)

        def keep(change: watchfiles.Change, path: str) -> bool:
            return not (path == state or path.startswith(state + os.sep))

        self.stats.watcher = "watching"
        async for changes in watchfiles.awatch(root, watch_filter=keep, debounce=200,
                                               step=50, recursive=True):
            self._watch_healthy = True
            self.stats.watcher = "watching"
            deleted = {os.path.relpath(f, root) for k, f in changes
                       if k == watchfiles.Change.deleted}
            present = {os.path.relpath(f, root) for k, f in changes
                       if k != watchfiles.Change.deleted}
            outside = await self._outside_only(sorted(deleted | present))
            self.stats.echoes_dropped += len(deleted | present) - len(outside)
            if not outside:
                continue
            self.stats.outside_events += len(outside)
            log.debug("outside changes: %d paths (%s...)", len(outside), sorted(outside)[:5])
            gone = sorted(deleted & outside)
            here = sorted(present & outside)
            if self.on_outside is not None:
                await self.on_outside(gone + here)
            self._push("outside", "\0".join(gone), "\0".join(here))

    async def _outside_only(self, paths: list[str]) -> set[str]:
        """The paths whose state is not what our own operations left there (``OwnChanges``).

        On the trio thread, where the operations record: a path's lstat and its check happen
        in one step, never between a request's syscall and its record. Batched, so a big outside
        copy does not hold up FUSE requests for long.
        """
        root = str(self.vault.root)
        out: set[str] = set()
        for start in range(0, len(paths), ECHO_CHECK_BATCH):
            if start:
                await trio.lowlevel.checkpoint()
            for rel in paths[start:start + ECHO_CHECK_BATCH]:
                if not self.own.is_own(rel, lstat_signature(os.path.join(root, rel))):
                    out.add(rel)
        return out

    async def _rescan(self) -> None:
        """After a watcher restart: what changed around the mount while nobody watched
        (reconcile against the catalog), with the kernel told about it as for any outside
        change."""
        self._rescan_queued = False
        plan = await self._sync(reconcile.plan, self.vault, self.store)
        paths = [p for pair in plan.moved for p in pair] + [p for _, p in plan.removed]
        paths += plan.changed
        if paths and self.on_outside is not None:
            outside = await self._outside_only(paths)
            await self.on_outside([p for p in paths if p in outside])
        log.info("rescan after a watcher restart: %d changed, %d moved, %d removed",
                 len(plan.changed), len(plan.moved), len(plan.removed))
        self._queue_plan(plan)

    async def _apply_outside(self, deleted: list[str], present: list[str]) -> None:
        moves, gone, files = await self._sync(self._pair_outside, deleted, present)
        for old, new in moves:
            await self._apply("moved", old, new)
        for path in gone:
            await self._apply("removed", path, "")
        await self._apply_changes(["\0" + p for p in files])

    def _pair_outside(self, deleted: list[str], present: list[str]) -> (
            tuple[list[tuple[str, str]], list[str], list[str]]):
        """Worker thread: (renames found by inode and size, deleted paths, files to look at)."""
        files: list[str] = []
        for rel in present:
            full = self.vault.abspath(rel)
            if full.is_dir() and not full.is_symlink():
                for dirpath, _dirs, names in os.walk(full):
                    files.extend(os.path.relpath(os.path.join(dirpath, n), self.vault.root)
                                 for n in names)
            elif full.is_file():
                files.append(rel)
        by_ino: dict[tuple[int, int], str] = {}
        for rel in files:
            try:
                st = os.lstat(self.vault.abspath(rel))
            except OSError:
                continue
            by_ino[(st.st_ino, st.st_size)] = rel
        moves: list[tuple[str, str]] = []
        gone: list[str] = []
        for old in deleted:
            if os.path.lexists(self.vault.abspath(old)):
                continue
            rec = self.store.file_by_path(old)
            recs = [rec] if rec else list(self.store.iter_files(Filter(must=(Match("dirs", old),))))
            pairs = [(r, by_ino.get((r.ino, r.size))) for r in recs if r.ino]
            if rec is not None and pairs and pairs[0][1]:
                moves.append((old, str(pairs[0][1])))
                continue
            if rec is None and pairs and all(new for _, new in pairs):
                # a folder moved: every entry reappears with the same suffix
                heads = {str(new)[: len(str(new)) - (len(r.path) - len(old))] for r, new in pairs
                         if str(new).endswith(r.path[len(old):])}
                if len(heads) == 1:
                    moves.append((old, heads.pop()))
                    continue
            gone.append(old)
        return moves, gone, files
