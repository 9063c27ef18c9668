"""HNSW for the chunk shard, built beside the live shard and swapped in.

Qdrant Edge 0.9 has no background optimizer: ``EdgeShard.optimize()`` is synchronous, holds the
GIL for its whole run (111 s for 100k chunks here) and plans everything at once (no step-wise
call, no incremental HNSW on upsert), and only one process may open a shard directory. So the
store builds the index on a *copy*: it flushes, copies ``chunks/`` to ``chunks.build/`` (writes
wait during the copy, searches do not), and runs ``python -m memexfs.store build DIR`` on it
— a separate process, niced, so the store's interpreter keeps answering. Every chunk write made
after the copy is applied to the live shard and logged; when the builder is done the log is
replayed onto the copy, and the copy replaces the live shard.

The swap is crash-safe by rename order and a journal file ``chunks.swap`` (the commit point,
written only once the copy holds every write): at open, :func:`recover` rolls a swap with a
journal forward and throws away a build without one (the live shard then holds every write).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BUILD = ".build"  # the copy being optimised
OLD = ".old"  # the live shard on its way out
JOURNAL = ".swap"  # present from "the copy holds every write" until the swap is done
BUILDER_ARGV: list[str] = [sys.executable, "-m", "memexfs.store", "build"]


@dataclass(frozen=True)
class IndexPolicy:
    """When the store starts a background HNSW build on its own (``EdgeStore(index_policy=)``).

    A build starts once at least ``min_unindexed`` chunks are outside the HNSW index and no
    chunk was written for ``idle_s`` seconds. ``indexing_threshold_kb`` is the engine's
    per-segment threshold for HNSW in the copy (None: the engine's default, ~10 MB of vectors);
    ``nice`` lowers the builder's CPU priority and ``threads`` caps its HNSW threads (default:
    all cores but one, so searches keep a core). A failed build is retried after ``retry_s``.
    """

    # Measured at 100k chunks (bench/query_bench.py --background-index): exact search is a few
    # ms of a ~42 ms engine search, and HNSW did not make it faster (47.8 ms after), while a
    # build costs a core for ~2 minutes and the swap holds store calls ~1.6 s. Exact search at
    # 1M chunks takes ~71 ms, so the build pays off only in the hundreds of thousands.
    min_unindexed: int = 300_000
    idle_s: float = 30.0
    poll_s: float = 1.0
    indexing_threshold_kb: int | None = None
    nice: int = 10
    threads: int | None = None
    retry_s: float = 600.0


@dataclass
class IndexBuild:
    """A build under way: the copy, its builder, and the chunk writes made since the copy."""

    dir: Path
    proc: subprocess.Popen[bytes]
    started: float
    copy_s: float
    log: list[Any] = field(default_factory=list)


def disk_usage(path: Path) -> int:
    """Bytes the files under ``path`` occupy (what a copy needs)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
                total += max(st.st_size, st.st_blocks * 512)  # a copy fills sparse holes
            except FileNotFoundError:
                continue
    return total


def build_dir(live: Path) -> Path:
    return live.with_name(live.name + BUILD)


def old_dir(live: Path) -> Path:
    return live.with_name(live.name + OLD)


def journal_path(live: Path) -> Path:
    return live.with_name(live.name + JOURNAL)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_journal(live: Path) -> None:
    """The commit point: from here on the copy, not the live shard, is the index."""
    j = journal_path(live)
    tmp = j.with_name(j.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump({"live": live.name, "built": build_dir(live).name}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, j)
    _fsync_dir(live.parent)


def finish_swap(live: Path, drop_old: bool = True) -> None:
    """Move the journaled copy into place: live -> old, built -> live, drop journal and old
    (``drop_old=False``: the caller removes it later; an open finds it and removes it).
    Idempotent, so a crash at any step is completed by running it again."""
    built, old = build_dir(live), old_dir(live)
    if built.exists():
        if live.exists():
            if old.exists():  # a previous swap's leftover
                shutil.rmtree(old)
            os.replace(live, old)
        os.replace(built, live)
        _fsync_dir(live.parent)
    journal_path(live).unlink(missing_ok=True)
    _fsync_dir(live.parent)
    if drop_old:
        shutil.rmtree(old, ignore_errors=True)


def recover(live: Path) -> str | None:
    """Bring ``live`` to a consistent state before it is opened; says what it did."""
    if journal_path(live).exists():
        finish_swap(live)
        log.warning("completed an interrupted index swap in %s", live)
        return "rolled forward"
    did = None
    for leftover in (build_dir(live), old_dir(live)):
        if leftover.exists():  # (a builder orphaned by a killed store may still write here)
            shutil.rmtree(leftover, ignore_errors=True)
            did = "rolled back"
    journal_path(live).with_name(journal_path(live).name + ".tmp").unlink(missing_ok=True)
    if did:
        log.info("removed an unfinished index build beside %s", live)
    return did


def copy_shard(src: Path, dst: Path) -> None:
    """Copy a flushed shard (no engine call: the store's interpreter stays free)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)


def spawn_builder(shard: Path, policy: IndexPolicy) -> subprocess.Popen[bytes]:
    threads = policy.threads or max(1, (os.cpu_count() or 2) - 1)
    argv = [*BUILDER_ARGV, str(shard), "--nice", str(policy.nice), "--threads", str(threads)]
    if policy.indexing_threshold_kb is not None:
        argv += ["--indexing-threshold-kb", str(policy.indexing_threshold_kb)]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            close_fds=True)


def build(shard: Path, indexing_threshold_kb: int | None = None,
          threads: int | None = None) -> bool:
    """Optimise the shard in ``shard`` (HNSW, merged segments); True if anything changed."""
    import qdrant_edge as qe

    # the persisted config is what load() reads: set the build's knobs there
    cfg_path = shard / "edge_config.json"
    cfg = json.loads(cfg_path.read_text())
    if indexing_threshold_kb is not None:
        cfg["optimizers"] = {**(cfg.get("optimizers") or {}),
                             "indexing_threshold": indexing_threshold_kb}
    if threads is not None:
        cfg["hnsw_config"] = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000,
                              **(cfg.get("hnsw_config") or {}), "max_indexing_threads": threads}
    cfg_path.write_text(json.dumps(cfg))
    s = qe.EdgeShard.load(str(shard))
    try:
        changed = bool(s.optimize())
        s.flush()
    finally:
        s.close()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m memexfs.store build",
                                 description="build HNSW in a copy of a chunk shard")
    ap.add_argument("shard", type=Path)
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--indexing-threshold-kb", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[builder %(process)d]: "
                               "%(message)s")
    if args.nice:
        os.nice(args.nice)
    changed = build(args.shard, args.indexing_threshold_kb, args.threads)
    log.info("index build in %s done (changed: %s)", args.shard, changed)
    return 0
