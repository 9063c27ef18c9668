"""The op queue: moves, removals and changes applied in order to the catalog."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import MutableMapping
from typing import TypeVar

from memexfs import schema
from memexfs.errors import IndexUnavailable
from memexfs.indexer import tuning
from memexfs.indexer.outside import _OutsideChanges
from memexfs.indexer.queued import (
    Barrier,
    Changed,
    Exchanged,
    Moved,
    Op,
    Outside,
    Removed,
    Rescan,
)
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

    async def _apply_run(self, ops: list[Op]) -> None:
        # Consecutive changes go to the store as one call (a bulk copy sends hundreds).
        run: list[Changed] = []
        for op in ops:
            if isinstance(op, Changed):
                run.append(op)
                continue
            await self._apply_changes(run)
            run = []
            try:
                await self._apply(op)
            except Exception as exc:
                self.stats.last_error = f"{op}: {exc}"
                log.exception("index update %s failed", op)
        await self._apply_changes(run)

    async def _apply_changes(self, run: list[Changed]) -> None:
        """Queue changed files (debounced) and mark them ``pending`` in the catalog, durably.

        Changes the watcher saw may be echoes of our own writes: those whose size and mtime match
        an up-to-date catalog entry are dropped.
        """
        self._announced.difference_update(c.path for c in run)
        rules = self._ignore_rules()
        run = [c for c in run if not rules.ignored(c.path)]
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
            queued = [c.path for c in run]  # still index them; reconcile is the backstop
        due = time.monotonic() + tuning.DEBOUNCE_S
        for path in queued:
            self._pending[path] = due
            self._pending.move_to_end(path)
            if path in self._status:
                self._status[path] = schema.PENDING
        self.stats.queued = self._queued()

    async def _apply(self, op: Barrier) -> None:
        self._chunks_stale = True
        match op:
            case Removed(path=path, file_id=file_id):
                self._pending.pop(path, None)
                removed = await self._sync(self._remove, path, file_id)
                for gone in removed:
                    self._status.pop(gone, None)
                    self.stats.errors.pop(gone, None)
                    self._remember(gone, None)
                if removed:
                    self._changed(set(removed))
            case Moved(old=old, new=new):
                self._relocate(await self._sync(self._move, old, new), {old: new})
            case Exchanged(a=a, b=b):
                self._relocate(await self._sync(self._exchange, a, b), {a: b, b: a})
            case Outside(deleted=deleted, present=present):
                await self._apply_outside(list(deleted), list(present))
            case Rescan():
                await self._rescan()

    def _relocate(self, moved: list[tuple[str, str]], renames: dict[str, str]) -> None:
        """The in-memory mirrors follow a rename or an exchange.

        ``moved``: the catalog entries the store renamed (a replaced entry was dropped there);
        status, errors and fields go with them, all pairs at once (an exchange swaps them).
        ``renames``: the names renamed, files or folders. Queued files follow them by prefix,
        catalogued or not: a file written just before its folder moved may have been looked up
        after the move, found nowhere and left without an entry, and it must still be indexed
        under its new name.
        """
        if moved:
            _swap(self._status, moved)
            _swap(self.stats.errors, moved)
            _swap(self.stats.warnings, moved)
            held = {old: self.fields.get(old) for old, _ in moved}
            for old, _ in moved:
                self.fields.drop(old)
            for old, new in moved:
                self.fields.put(new, held[old])
            self._changed({p for pair in moved for p in pair})
        queued = [(path, to) for path in self._pending
                  if (to := _renamed(path, renames)) is not None]
        _swap(self._pending, queued)

    async def _apply_outside(self, deleted: list[str], present: list[str]) -> None:
        moves, gone, files = await self._sync(self._pair_outside, deleted, present)
        for old, new in moves:
            await self._apply(Moved(old, new))
        for path in gone:
            await self._apply(Removed(path))
        await self._apply_changes([Changed(p, from_watcher=True) for p in files])

    # -- store-side helpers (worker thread)
    def _mark_pending(self, run: list[Changed]) -> list[str]:
        """Worker thread: one catalog lookup for the whole run; returns the paths to index."""
        paths = list(dict.fromkeys(c.path for c in run))
        maybe = ({c.path for c in run if c.from_watcher}
                 - {c.path for c in run if not c.from_watcher})
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

    def _entries(self, path: str) -> list[FileRecord]:
        """Worker thread: the entry of the file ``path``, or every entry under the folder."""
        rec = self.store.file_by_path(path)
        return [rec] if rec else list(self.store.iter_files(Filter(must=(Match("dirs", path),))))

    def _rename_entry(self, rec: FileRecord, new_path: str) -> tuple[str, str]:
        """Worker thread: one entry to its new path, catalog and chunks; vectors stay put."""
        self.store.update_file(rec.file_id, path=new_path)
        self.store.move_chunks(rec.file_id, location_payload(new_path))
        return rec.path, new_path

    def _move(self, old: str, new: str) -> list[tuple[str, str]]:
        """Move one file's entry, or every entry under a moved folder; an entry the move
        replaced is dropped."""
        moved = []
        for r in self._entries(old):
            new_path = new + r.path[len(old):]
            clash = self.store.file_by_path(new_path)
            if clash is not None and clash.file_id != r.file_id:
                self.store.delete_file(clash.file_id)
            moved.append(self._rename_entry(r, new_path))
        return moved

    def _exchange(self, a: str, b: str) -> list[tuple[str, str]]:
        """Swap the entries of ``a`` and ``b`` (each a file or a folder): both sets are looked up
        before either is renamed, so neither can be taken for the other's clash."""
        swap = [(r, b + r.path[len(a):]) for r in self._entries(a)]
        swap += [(r, a + r.path[len(b):]) for r in self._entries(b)]
        return [self._rename_entry(r, new_path) for r, new_path in swap]


_V = TypeVar("_V")


def _renamed(path: str, renames: dict[str, str]) -> str | None:
    """``path``'s name after ``renames`` (old -> new, files or folders); None: not renamed."""
    for old, new in renames.items():
        if path == old:
            return new
        if path.startswith(old + "/"):
            return new + path[len(old):]
    return None


def _swap(mirror: MutableMapping[str, _V], pairs: list[tuple[str, str]]) -> None:
    """Every ``old`` key's value to its ``new`` key, all at once; a ``new`` key whose ``old`` had
    no value loses its own (the name now holds the other file)."""
    held = {old: mirror.pop(old) for old, _ in pairs if old in mirror}
    for _, new in pairs:
        mirror.pop(new, None)
    for old, new in pairs:
        if old in held:
            mirror[new] = held[old]
