"""The three-stage indexing stream: prepare (extract, chunk) -> embed -> commit."""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from memexfs import schema
from memexfs.errors import IndexUnavailable
from memexfs.indexer import tuning
from memexfs.indexer.ops import _OpQueue
from memexfs.schema import FileRecord

if TYPE_CHECKING:
    from memexfs.pipeline import Pipeline, Prepared

log = logging.getLogger("memexfs.indexer")  # one logger for the package: what operators filter on


@dataclass
class _Item:
    """One file on its way through the stream: prepared, or failed with an error."""

    path: str
    prep: Prepared | None = None
    error: str | None = None
    index_down: bool = False  # the error was the index's, not the file's: queue it again


class _Stream(_OpQueue):
    """The heavy path: due files through prepare -> embed -> commit."""

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
                if texts >= tuning.EMBED_TEXTS or len(group) >= tuning.BATCH_FILES:
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
                self._pending[done.rec.path] = now + tuning.TRANSIENT_RETRY_S
            elif not done.transient:
                self._retried.discard(done.rec.path)
        by_path = {prep.rec.path: prep for prep in ok}
        changed: set[str] = set()
        for path, (outcome, status) in results.items():
            if status is None:  # gone
                if self._status.pop(path, None) is not None or outcome == "removed":
                    changed.add(path)
                self.stats.errors.pop(path, None)
                self._remember(path, None)
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
            # a failure recorded here dropped the file's chunks, and with them its fields
            self._remember(path, prep.rec if prep is not None and path not in failed else None)
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
        self._index_wait = min(max(self._index_wait * 2, tuning.INDEX_RETRY_S),
                               tuning.INDEX_RETRY_MAX_S)
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
