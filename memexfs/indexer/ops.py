"""The op queue: moves, removals and changes applied in order to the catalog."""

from __future__ import annotations

import logging
import os
import time
import uuid

from memexfs import schema
from memexfs.errors import IndexUnavailable
from memexfs.indexer import tuning
from memexfs.indexer.outside import _OutsideChanges
from memexfs.schema import FileRecord, location_payload
from memexfs.store import Filter, Match, MatchAny

log = logging.getLogger("memexfs.indexer")  # one logger for the package: what operators filter on


class _OpQueue(_OutsideChanges):
    """Applying queued ops in order: moves and removals as catalog updates, changes as pending."""

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
        self._announced.difference_update(run)
        rules = self._ignore_rules()
        run = [p for p in run if not rules.ignored(p.lstrip("\0"))]
        if not run:
            return
        try:
            queued = await self._sync(self._mark_pending, run)
        except Exception as exc:
            self.stats.last_error = f"queue {len(run)} files: {exc}"
            if isinstance(exc, IndexUnavailable):  # down or full: the state says so, no bug
                log.warning("cannot mark %d files pending: %s", len(run), exc)
            else:
                log.exception("cannot mark %d files pending", len(run))
            queued = [p.lstrip("\0") for p in run]  # still index them; reconcile is the backstop
        due = time.monotonic() + tuning.DEBOUNCE_S
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
                self._remember(path, None)
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
                self._moved_facts(old, new)
            if moved:
                self._changed({p for pair in moved for p in pair})

    async def _apply_outside(self, deleted: list[str], present: list[str]) -> None:
        moves, gone, files = await self._sync(self._pair_outside, deleted, present)
        for old, new in moves:
            await self._apply("moved", old, new)
        for path in gone:
            await self._apply("removed", path, "")
        await self._apply_changes(["\0" + p for p in files])

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
