"""The Edge store's chunk HNSW, kept built in the background (half of ``EdgeStore``).

The builder side and the crash-safe swap of directories are ``memexfs.store.optimize``; this is
the store's side: copy the live shard (writes wait, searches do not), log every chunk write made
meanwhile, replay the log onto the built copy and swap it in, holding calls only for the last
few writes and the reopen. ``index_policy`` starts builds on its own when the vault is idle.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from memexfs.errors import IndexFull
from memexfs.store.optimize import (
    IndexBuild,
    IndexPolicy,
    build_dir,
    copy_shard,
    disk_usage,
    finish_swap,
    old_dir,
    spawn_builder,
    write_journal,
)

log = logging.getLogger(__name__)

MIB = 1 << 20
CATCH_UP_OPS = 64  # writes left for the replay that holds every call back


class BackgroundIndex:
    """HNSW builds beside the live chunk shard; mixed into ``EdgeStore``, whose locks it shares:
    chunk writes take ``_wlock`` before ``_lock``, so a build can hold writes back while it copies
    the shard and searches go on."""

    root: Path
    _reserve: int
    _chunks: Any
    _lock: threading.RLock
    _wlock: threading.Lock

    def _init_background(self, policy: IndexPolicy | None) -> None:
        self._swap_lock = threading.Lock()  # one swap at a time; close waits for it
        self._build: IndexBuild | None = None
        self._policy = policy
        self._last_write = time.monotonic()
        self._written_since_build = 0  # chunk points written since the last build started
        self._retry_at = 0.0
        self.builds: list[dict[str, float]] = []  # timings of the swaps done
        self._stop = threading.Event()
        self._maintainer: threading.Thread | None = None

    def _start_background(self) -> None:
        """Start the maintainer thread of ``index_policy`` (once the shards are open)."""
        if self._policy is not None:
            self._maintainer = threading.Thread(target=self._maintain_loop,
                                                name="index-maintainer", daemon=True)
            self._maintainer.start()

    def _stop_background(self) -> None:
        """Stop the maintainer and drop a build under way (``close``)."""
        self._stop.set()
        if self._maintainer is not None and self._maintainer is not threading.current_thread():
            self._maintainer.join()
        with self._swap_lock:
            self._abandon_build()

    def _chunk_write(self, op: Any, points: int = 0) -> None:
        """Apply one chunk write (the caller holds ``_wlock`` and ``_lock``); while a build
        runs, log it too, for the replay onto the copy."""
        self._chunks.update(op)
        self._last_write = time.monotonic()
        self._written_since_build += points
        if self._build is not None:
            self._build.log.append(op)

    def index_status(self) -> dict[str, Any]:
        """Chunk points, how many are outside HNSW (searched exactly), and the builds."""
        with self._lock:
            info = self._chunks.info()
        # the engine counts each chunk's BM25 vector as indexed: dense ones are the rest
        unindexed = max(0, 2 * info.points_count - info.indexed_vectors_count)
        return {"points": info.points_count, "unindexed": unindexed,
                "building": self._build is not None, "builds": len(self.builds),
                "builder_running": self._build is not None and self._build.proc.poll() is None,
                "last_build": self.builds[-1] if self.builds else None}

    def start_index_build(self, policy: IndexPolicy | None = None, wait: bool = True) -> bool:
        """Copy the chunk shard and start the builder on the copy (False: one runs already).
        Writes wait for the copy; searches do not. ``wait=False`` copies in a thread of its own
        (what a store process asks for: its request loop stays free)."""
        if not wait:
            threading.Thread(target=self._start_logged, args=(policy,), name="index-copy",
                             daemon=True).start()
            return True
        policy = policy or self._policy or IndexPolicy()
        live = self.root / "chunks"
        with self._wlock:
            if self._build is not None or self._stop.is_set():
                return False
            t = time.monotonic()
            with self._lock:
                self._chunks.flush()
            need = disk_usage(live) + self._reserve
            st = os.statvfs(self.root)
            if st.f_bavail * st.f_frsize < need:
                raise IndexFull(f"no room to build the index beside it ({need // MIB} MiB)")
            dst = build_dir(live)
            try:
                copy_shard(live, dst)
                proc = spawn_builder(dst, policy)
            except BaseException:
                shutil.rmtree(dst, ignore_errors=True)
                raise
            self._build = IndexBuild(dst, proc, time.monotonic(), time.monotonic() - t)
            self._written_since_build = 0
        log.info("building HNSW in %s (copied in %.1f s)", dst, self._build.copy_s)
        return True

    def _start_logged(self, policy: IndexPolicy | None) -> None:
        try:
            self.start_index_build(policy)
        except Exception:
            log.exception("starting an index build failed")

    def poll_index_build(self, wait: bool = True) -> bool:
        """Swap a finished build in (True); drop a failed one; nothing while it runs.
        ``wait=False`` swaps in a thread of its own (True: it started), as a store process
        asks: only the swap's last step (replaying the final writes, reopening) holds calls."""
        b = self._build
        if b is None or b.proc.poll() is None or self._swap_lock.locked():
            return False
        if not wait:
            threading.Thread(target=self._poll_logged, name="index-swap", daemon=True).start()
            return True
        with self._swap_lock:
            if self._build is not b:
                return False  # another caller swapped it meanwhile
            if b.proc.returncode != 0:
                log.error("index build failed (exit %s): keeping the index as it is",
                          b.proc.returncode)
                self._abandon_build()
                self._retry_at = time.monotonic() + (self._policy or IndexPolicy()).retry_s
                return False
            self._swap(b)
            return True

    def _poll_logged(self) -> None:
        try:
            self.poll_index_build()
        except Exception:
            log.exception("swapping the built index in failed")

    def _swap(self, b: IndexBuild) -> None:
        live = self.root / "chunks"
        built = qe.EdgeShard.load(str(b.dir))
        committed = False
        try:
            done = 0
            while True:  # catch up outside the locks: writes and searches continue
                with self._lock:
                    ops = b.log[done:]
                if len(ops) <= CATCH_UP_OPS:
                    break
                for op in ops:
                    built.update(op)
                done += len(ops)
            with self._wlock, self._lock:
                t = time.monotonic()
                for op in b.log[done:]:
                    built.update(op)
                built.flush()
                built.close()
                write_journal(live)  # the copy holds every write: it is the index now
                committed = True
                t_close = time.monotonic()
                self._chunks.flush()
                self._chunks.close()
                finish_swap(live, drop_old=False)
                t_load = time.monotonic()
                self._chunks = qe.EdgeShard.load(str(live))
                self._build = None
                done_at = time.monotonic()
            shutil.rmtree(old_dir(live), ignore_errors=True)  # outside the locks: it is slow
        except BaseException:
            if not committed:
                try:
                    built.close()
                except BaseException:  # a panicking close must not mask it
                    log.debug("closing the built shard failed", exc_info=True)
                self._abandon_build()
            else:
                self._reopen_after_failed_swap(live)
            raise
        self.builds.append({"copy_s": round(b.copy_s, 3),
                            "build_s": round(t - b.started, 3),
                            "replayed": len(b.log), "stall_s": round(done_at - t, 3),
                            "stall_replay_s": round(t_close - t, 3),
                            "stall_close_s": round(t_load - t_close, 3),
                            "stall_load_s": round(done_at - t_load, 3)})
        log.info("HNSW index swapped in: %s", self.builds[-1])

    def _reopen_after_failed_swap(self, live: Path) -> None:
        """Past the commit point the copy is the index: finish the renames and open it."""
        with self._wlock, self._lock:
            self._build = None
            try:
                finish_swap(live)
                self._chunks = qe.EdgeShard.load(str(live))
                log.error("index swap failed after its commit point; finished it on retry")
            except BaseException:  # the next open completes it: recover()
                log.critical("index swap failed after its commit point; reopen to finish it",
                             exc_info=True)

    def _abandon_build(self) -> None:
        with self._wlock:
            b, self._build = self._build, None
        if b is None:
            return
        if b.proc.poll() is None:
            b.proc.terminate()
            try:
                b.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                b.proc.kill()
                b.proc.wait()
        shutil.rmtree(b.dir, ignore_errors=True)

    def maintain(self) -> None:
        """One step of ``index_policy``: swap a finished build in, or start one when due."""
        p = self._policy
        if self._build is not None:
            self.poll_index_build()
            return
        now = time.monotonic()
        if p is None or now < self._retry_at or now - self._last_write < p.idle_s:
            return
        if self.builds and self._written_since_build < p.min_unindexed:
            return  # nothing new since our last build (the estimate may be off)
        if self.index_status()["unindexed"] >= p.min_unindexed:
            self.start_index_build()

    def _maintain_loop(self) -> None:
        assert self._policy is not None
        while not self._stop.wait(self._policy.poll_s):
            try:
                self.maintain()
            except Exception:  # a failed build leaves the live index serving: retry later
                log.exception("background index build failed")
                self._retry_at = time.monotonic() + self._policy.retry_s
