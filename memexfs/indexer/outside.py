"""Outside changes: the vault watcher (restarted with backoff), echo filtering, rescans."""

from __future__ import annotations

import logging
import os
import time

import trio

from memexfs import reconcile
from memexfs.echo import lstat_signature
from memexfs.indexer import tuning
from memexfs.indexer.core import _IndexerCore
from memexfs.indexer.queued import Outside, Rescan
from memexfs.indexer.stats import _describe
from memexfs.store import Filter, Match
from memexfs.vault import STATE_DIR

log = logging.getLogger("memexfs.indexer")  # one logger for the package: what operators filter on


# Cancellation and interpreter exits end the watcher; anything else (pyo3 panics are
# BaseExceptions too) is a watcher failure, and the watcher is restarted.
_PROPAGATE = (trio.Cancelled, KeyboardInterrupt, SystemExit, GeneratorExit)


class _OutsideChanges(_IndexerCore):
    """Changes made around the mount: the vault watcher, its restarts and rescans."""

    async def _watch(self) -> None:
        """Changes made around the mount, for the whole session: a watcher that fails for any
        reason (an undecodable file name, an inotify limit, a panic in its Rust core) is
        restarted with backoff, and each restart rescans the vault for what it missed. One log
        line per streak of failures (a watcher that works for a minute ends the streak).

        The Rust core fails a whole batch on a name that is not UTF-8, so each change to such a
        file costs a restart and a rescan; the backoff starts over whenever a batch got through.
        """
        backoff = tuning.WATCH_BACKOFF_S
        last_failure = -tuning.WATCH_QUIET_S
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
            if now - last_failure > tuning.WATCH_QUIET_S:  # a new streak
                log.warning("vault watcher failed (%s); restarting it with backoff and "
                            "rescanning the vault", problem)
            else:
                log.debug("vault watcher failed again (%s)", problem)
            # it worked in between (a file that keeps failing it must not silence it for long)
            if self._watch_healthy or now - started > tuning.WATCH_BACKOFF_MAX_S:
                backoff = tuning.WATCH_BACKOFF_S
            else:
                backoff = min(backoff * 2, tuning.WATCH_BACKOFF_MAX_S)
            last_failure = now
            self._watch_healthy = False
            await trio.sleep(backoff)
            if not self._rescan_queued:
                # queued now, applied once the new watcher is set up (it is, before our next
                # checkpoint): nothing falls between the rescan and the watcher
                self._rescan_queued = True
                self._push(Rescan())

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
            self._push(Outside(tuple(gone), tuple(here)))

    async def _outside_only(self, paths: list[str]) -> set[str]:
        """The paths whose state is not what our own operations left there (``OwnChanges``).

        On the trio thread, where the operations record: a path's lstat and its check happen
        in one step, never between a request's syscall and its record. Batched, so a big outside
        copy does not hold up FUSE requests for long.
        """
        root = str(self.vault.root)
        out: set[str] = set()
        for start in range(0, len(paths), tuning.ECHO_CHECK_BATCH):
            if start:
                await trio.lowlevel.checkpoint()
            for rel in paths[start:start + tuning.ECHO_CHECK_BATCH]:
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
