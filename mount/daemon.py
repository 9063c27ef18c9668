"""Wiring: vault + lock + store + indexer + query engine + FUSE operations, under one trio run.

Nothing here implements behaviour; it builds the collaborators, mounts, and tears down in order
(S3QL's ``mount.py``). The parent process returns once the mount is live (or failed), unless
``foreground``.

The mount answers the real tree before anything heavy is loaded: the indexing pipeline
(extraction, fields, chunking), the search engine and the knowledge engine (numpy, topic models)
and the encoder are imported or built on first use or in the background once the mount is up,
never on the way to ``pyfuse3.init``.

Size: the wiring of every part (store, indexer, searcher, knowledge, trees, supervisor,
logging, signals, sd_notify) and the start order that keeps the mount live first.
"""

from __future__ import annotations

import contextlib
import errno
import faulthandler
import logging
import logging.handlers
import os
import resource
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, cast

import pyfuse3
import trio

from memexfs.errors import MemexError
from memexfs.indexer import Indexer
from memexfs.store import Store, open_store
from memexfs.vault import Vault, VaultLock
from mount import kernel_cache, supervisor
from mount.knowledge_trees import knowledge_trees
from mount.ops import MemexOperations
from mount.virtual import ControlTree, QueryTree, RelatedTree, SearchBackend
from query.searcher import Searcher

if TYPE_CHECKING:
    from collections.abc import Iterable

    from embed import Encoder
    from memexfs.pipeline import Pipeline
    from query.knowledge import Knowledge

log = logging.getLogger("memexfs")


@dataclass
class MountOptions:
    source: str
    mountpoint: str
    foreground: bool = False
    allow_other: bool = False
    debug: bool = False
    today: date | None = None
    encoder: str | None = None
    watch: bool = True
    qdrant_url: str | None = None
    log_level: str | None = None  # debug | info | warning | error (default: info; --debug)
    log_file: str | None = None  # default: <vault>/.memexfs/daemon.log (stderr in foreground)


def fuse_options(opts: MountOptions) -> set[str]:
    # fsname is the vault, as sshfs shows user@host:dir: two mounts can be told apart in
    # mount(8) and df(1). libfuse splits options on commas; a backslash escapes one.
    source = os.path.realpath(opts.source).replace("\\", "\\\\").replace(",", "\\,")
    options = {f"fsname={source}", "subtype=memexfs", "default_permissions"}
    if opts.allow_other:
        options.add("allow_other")
    if opts.debug:
        options.add("debug")
    return options


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


LOG_BYTES, LOG_BACKUPS = 5 << 20, 3
LIVE_PROBE_S = 5.0  # a loop slower than this to answer its first request is told ready anyway
STATE_UMASK = 0o077


class PrivateLogHandler(logging.handlers.RotatingFileHandler):
    """``daemon.log`` (owner-only: it names the user's files; rotated at 5 MiB, 3 kept).

    With ``stderr``, each new file also becomes fd 2, so faulthandler's dumps and native crash
    messages land in the current log rather than in a rotated one.
    """

    def __init__(self, path: str, stderr: bool = False) -> None:
        self.stderr = stderr
        super().__init__(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        if self.stderr:
            os.dup2(fd, 2)
        return os.fdopen(fd, "a", encoding="utf-8")


def _log_path(vault: Vault, opts: MountOptions) -> str | None:
    if opts.log_file:
        return os.path.abspath(os.path.expanduser(opts.log_file))
    return None if opts.foreground else str(vault.state / "daemon.log")


def _setup_logging(vault: Vault, opts: MountOptions) -> None:
    level = (logging.getLevelName(opts.log_level.upper()) if opts.log_level
             else logging.DEBUG if opts.debug else logging.INFO)
    handler: logging.Handler
    path = _log_path(vault, opts)
    if path is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = PrivateLogHandler(path, stderr=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pyfuse3").addFilter(_expected_inval_failure)


def _expected_inval_failure(record: logging.LogRecord) -> bool:
    """pyfuse3 logs a refused cache invalidation as an ERROR with a traceback; ENOENT and ENOTDIR
    only say the kernel no longer holds that entry (forgotten, or its parent's number now names
    another object), which is what the invalidation wanted: kept, as DEBUG."""
    exc = record.exc_info[1] if record.exc_info else None
    if (record.getMessage().startswith("Failed to submit invalidate")
            and isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENOTDIR)):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.exc_info, record.exc_text = None, None
        record.msg, record.args = f"{record.getMessage()}: {exc.strerror}", None
        return logging.getLogger().isEnabledFor(logging.DEBUG)
    return True


class LazyKnowledge:
    """The knowledge engine, built on first use: importing ``query.knowledge`` (numpy, topic
    models) is not on the way to the mount. Until then it is not ready, and the index changes it
    is told are kept for it (a topic model saved by an earlier mount must still learn them);
    its generation keeps counting across the hand-over, so listing caches never see it repeat."""

    def __init__(self, make: Callable[[], Knowledge]) -> None:
        self._make = make
        self._made: Knowledge | None = None
        self._early: set[str] = set()
        self._offset = 0  # changes told before it was built
        self._lock = threading.Lock()

    def get(self) -> Knowledge:
        with self._lock:
            if self._made is None:
                made = self._make()
                if self._early:
                    made.changed(self._early)
                self._made, self._early = made, set()
            return self._made

    def generation(self) -> int:
        made = self._made
        return self._offset + (made.generation() if made is not None else 0)

    def ready(self) -> bool:
        return self._made is not None and self._made.ready()

    def changed(self, paths: Iterable[str]) -> None:
        with self._lock:
            if self._made is None:
                self._early.update(paths)
                self._offset += 1
                return
        self._made.changed(paths)

    def close(self) -> None:
        if self._made is not None:
            self._made.close()

    def __getattr__(self, name: str) -> Any:  # the rest of what the knowledge trees ask
        return getattr(self.get(), name)


def _pipeline(vault: Vault, store: Store, encoder_name: str | None) -> Pipeline:
    """The indexing pipeline, built in the indexer's worker thread (the encoder takes seconds)."""
    from embed import load_encoder
    from memexfs.extract import Extractor
    from memexfs.pipeline import Pipeline

    return Pipeline(vault, store, load_encoder(encoder_name), Extractor())


async def serve(opts: MountOptions, vault: Vault, store: Store,
                ready: Callable[[], None]) -> None:
    def load_encoder() -> Encoder:
        from embed import load_encoder as load

        return load(opts.encoder)

    engine = Searcher(store, load_encoder, opts.today)
    owner = (os.getuid(), os.getgid())
    trees: list[Any] = []

    def make_knowledge() -> Knowledge:
        from query.knowledge import Knowledge

        # One encoder for search and knowledge: the Searcher's (loaded on first use by either).
        return Knowledge(store, vault.root, lambda: engine.engine().encoder, vault.state)

    knowledge = LazyKnowledge(make_knowledge)

    def on_change(paths: set[str]) -> None:
        engine.invalidate()
        knowledge.changed(paths)
        for tree in trees:
            tree.invalidate()

    ops_ref: list[MemexOperations] = []

    async def on_outside(paths: list[str]) -> None:
        stale = ops_ref[0].invalidate_paths(paths)
        if stale:
            await trio.to_thread.run_sync(kernel_cache.drop_inodes, stale)

    indexer = Indexer(vault, store, lambda: _pipeline(vault, store, opts.encoder),
                      on_change=on_change, watch=opts.watch, on_outside=on_outside)
    ops = MemexOperations(str(vault.root), sink=indexer)
    ops_ref.append(ops)
    def search(segments: tuple[str, ...]) -> tuple[list[Any], str | None]:
        result = engine.search(segments)
        return list(result.hits), result.reason

    def related(path: str) -> tuple[list[Any], str | None]:
        result = engine.related(path)
        return list(result.hits), result.reason

    backend = SearchBackend(search, related, lambda: indexer.stats.generation,
                            ready=lambda: indexer.pipeline is not None, explain=engine.explain)
    qtree = QueryTree(ops.inodes, backend, str(vault.root), owner,
                      str(vault.state / "saved-queries.json"))
    rtree = RelatedTree(ops.inodes, backend, str(vault.root), owner)
    trees.extend([qtree, rtree])
    ctl = ControlTree(ops.inodes, indexer.stats.to_json, lambda: indexer.idle,
                      indexer.changed, owner)
    ops.virtual.update({"q": qtree, "related": rtree, ".memexfs": ctl})
    # the trees ask it only in their handlers, once the mount is up
    ktrees = knowledge_trees(ops.inodes, cast("Knowledge", knowledge), str(vault.root), owner)
    trees.extend(ktrees.values())  # invalidated with /q and /related on every index change
    ops.virtual.update(ktrees)

    # Resolve before mounting: once mounted, a stat of the mountpoint from this thread would wait
    # for our own (not yet running) request loop — a deadlock.
    mountpoint = os.path.realpath(opts.mountpoint)
    pyfuse3.init(ops, mountpoint, fuse_options(opts))
    watcher: Any = None
    ctl_w = -1
    unmounted = False
    try:
        watcher, ctl_w = _start_supervisor(mountpoint, _log_path(vault, opts))
        vault.write_json("mount.json", {"pid": os.getpid(), "mountpoint": mountpoint})
        log.info("mounted %s on %s", vault.root, opts.mountpoint)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_signals, nursery.cancel_scope)

            async def fuse_main() -> None:
                await pyfuse3.main()
                nursery.cancel_scope.cancel()  # unmounted from outside (fusermount -u)

            nursery.start_soon(fuse_main)
            # The mount first, then the background work, what a query needs before the rest:
            # the engine's imports and the encoder (~0.7 s), then the indexer's start (watcher,
            # catalog scroll, reconcile; its pipeline reuses the encoder). Each holds the GIL
            # for hundreds of ms: started before the loop, they kept the first ``ls`` waiting,
            # and side by side they slowed the first query. Notifications queue meanwhile.
            await _answering(mountpoint)
            ready()
            await _warm(engine)
            await nursery.start(indexer.run)
        unmounted = True
    finally:
        sd_notify("STOPPING=1")
        if ctl_w >= 0:
            with contextlib.suppress(OSError):  # the watcher may be gone: the mount went first
                os.write(ctl_w, supervisor.CLEAN)
        pyfuse3.close(unmount=True)
        if ctl_w >= 0:
            os.close(ctl_w)
            _reap(watcher)
        ops.close()
        knowledge.close()
        if indexer.pipeline is not None:
            indexer.pipeline.extractor.close()
        (vault.state / "mount.json").unlink(missing_ok=True)
        log.info("unmounted %s (%s)", opts.mountpoint, "clean" if unmounted else "error")


async def _answering(mountpoint: str) -> None:
    """Until the request loop answers a ``stat`` of the mount's root (asked from a worker
    thread: this one serves it), at most ``LIVE_PROBE_S``."""
    with trio.move_on_after(LIVE_PROBE_S):
        try:
            await trio.to_thread.run_sync(os.stat, mountpoint, abandon_on_cancel=True)
        except OSError as exc:
            log.warning("the new mount does not answer a stat of its root: %s", exc)


async def _warm(engine: Searcher) -> None:
    """Once the mount is up: the search engine and the encoder, loaded in a worker thread so the
    first query does not wait for them (the indexer's pipeline shares the encoder: one per
    process). A failure is the first search's, and the pipeline's, to report."""
    try:
        await trio.to_thread.run_sync(engine.engine, abandon_on_cancel=True)
    except Exception as exc:
        log.info("search engine not preloaded: %s", exc)


def _start_supervisor(mountpoint: str, log_file: str | None) -> tuple[Any, int]:
    """The watcher that aborts the connection if this process dies with the mount up."""
    entry = supervisor.find_mount(mountpoint)
    if entry is None:  # pyfuse3.init returned, so the mount is there: never expected
        raise MemexError(f"{mountpoint}: mounted, but not in /proc/self/mountinfo")
    return supervisor.start(os.getpid(), mountpoint, entry.dev, log_file)


def _reap(watcher: Any) -> None:
    """The watcher ends once the mount is gone; don't leave it a zombie until we exit."""
    try:
        watcher.wait(timeout=2)
    except Exception:  # a stuck watcher must not hold up the unmount
        log.warning("supervisor %s did not exit", watcher.pid)


async def _signals(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as sigs:
        async for sig in sigs:
            log.info("signal %s: unmounting", sig)
            scope.cancel()
            return


def sd_notify(message: str) -> None:
    """Tell systemd (``Type=notify`` units) how the daemon is doing; nothing without
    ``$NOTIFY_SOCKET``. The protocol is one datagram on a unix socket (``@`` = abstract)."""
    import socket

    where = os.environ.get("NOTIFY_SOCKET", "")
    if not where:
        return
    address = "\0" + where[1:] if where.startswith("@") else where
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", where, exc)


def run_mount(opts: MountOptions) -> int:
    """Mount and serve; returns an exit code. Raises MemexError for one-line user errors."""
    vault = Vault.open(opts.source)
    mnt = os.path.realpath(opts.mountpoint)
    if not os.path.isdir(mnt):
        raise MemexError(f"mountpoint {opts.mountpoint} is not a directory")
    if mnt == str(vault.root) or mnt.startswith(str(vault.root) + os.sep):
        raise MemexError("the mountpoint may not be inside the vault")
    if not os.path.exists("/dev/fuse"):
        raise MemexError("/dev/fuse is missing: load the fuse module (modprobe fuse)")
    os.umask(STATE_UMASK)  # whatever the daemon writes in .memexfs is the owner's alone
    lock = VaultLock(vault)
    lock.acquire()
    if not opts.foreground:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid:
            os.close(write_fd)
            lock.release()  # the child holds its own copy of the locked descriptor
            with os.fdopen(read_fd, "rb") as r:
                msg = r.read().decode(errors="replace")
            if msg.startswith("ok"):
                return 0
            raise MemexError(msg.strip() or "the daemon exited before the mount was ready")
        os.close(read_fd)
        lock.claim()  # the lock names the daemon, not the CLI that returns
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1):
            os.dup2(devnull, fd)
    else:
        write_fd = -1

    def ready() -> None:
        nonlocal write_fd
        if write_fd >= 0:
            os.write(write_fd, b"ok\n")
            os.close(write_fd)
            write_fd = -1
        sd_notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving {vault.root}")

    _setup_logging(vault, opts)  # in the background, fd 2 is the log too
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    _raise_fd_limit()
    code = 0
    with ExitStack() as stack:
        stack.callback(lock.release)
        try:
            store = open_store(vault, opts.qdrant_url)
            stack.callback(store.close)
            trio.run(serve, opts, vault, store, ready)
        except MemexError as exc:
            log.error("%s", exc)
            if write_fd >= 0:
                os.write(write_fd, f"{exc}\n".encode())
            code = 1
        except RuntimeError as exc:  # pyfuse3.init: mount refused by the kernel / fusermount
            log.error("mount failed: %s", exc)
            if write_fd >= 0:
                os.write(write_fd, f"mount failed: {exc}\n".encode())
            code = 1
        except Exception as exc:
            log.exception("daemon failed")
            if write_fd >= 0:
                os.write(write_fd, f"daemon failed: {exc}\n".encode())
            code = 1
    if not opts.foreground:
        os._exit(code)
    return code
