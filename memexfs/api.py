"""MemexFS as function calls: ``memexfs.open(vault).search("electricity bills")``.

One composition root for the CLI and for programs. A vault that no daemon serves is opened
directly (its lock is held until ``close()``, so a mount waits for us); a mounted vault is read
through its daemon's query folders (``MNT/q/<name>/.results``, ``MNT/related/<path>/.results``),
so both answer from the same ``query.searcher.Searcher``.

Size: the same five calls (search, related, status, index, repair) twice: through a
mount's folders and offline on the index, with the vault discovery both need.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from memexfs import config
from memexfs.errors import BadQuery, MemexError, NotFound, VaultLocked
from memexfs.fields_memory import DocFields
from memexfs.vault import state_owner, state_path

log = logging.getLogger(__name__)

StateDir = str | os.PathLike[str] | None  # --state-dir: None for the config's, or the default
CTL = ".memexfs"  # the control file at a mount's root
OFFLINE_UMASK = 0o077  # the index, catalog and logs are the owner's alone


class NotIndexed(MemexError):
    """A folder that was never indexed (or mounted): nothing to search, and nothing is created."""


@dataclass(frozen=True)
class Result:
    """One ranked file; ``path`` is absolute (in the vault), ``rel_path`` vault-relative;
    ``fields``: what was extracted from it (``fields.vendor``, ``.amount``, ``.due``...), the
    values the query's filters matched."""

    path: str
    rel_path: str
    score: float  # the ranking score: 1.0 is the best possible, it never rises with the rank
    rank: int
    snippet: str
    title: str
    fields: DocFields | None = None
    cosine: float | None = None  # of the query and the file's best chunk (what min: uses)


@dataclass(frozen=True)
class Results:
    """Ranked results and, when there are none, why (below threshold, empty window, ...)."""

    hits: list[Result]
    reason: str | None = None


# ------------------------------------------------------------------------------ finding mounts
def unescape_mount_field(field: str) -> str:
    """A field as /proc/self/mountinfo writes it: space, tab, newline, backslash as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def memex_mounts() -> dict[str, str]:
    """mountpoint -> source (the daemon's fsname: the vault's real path) of each MemexFS mount."""
    out: dict[str, str] = {}
    with builtins.open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if " - " not in line or len(fields) < 5:
                continue
            post = line.split(" - ", 1)[1].split()
            if len(post) >= 2 and post[0] == "fuse.memexfs":
                out[unescape_mount_field(fields[4])] = unescape_mount_field(post[1])
    return out


def lexical(path: str) -> str:
    """``path`` made absolute with its folder resolved but not its last name: resolving a
    mountpoint stats it, which waits forever on a dead daemon."""
    a = os.path.abspath(path)
    head, tail = os.path.split(a)
    return os.path.join(os.path.realpath(head), tail) if tail else a


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def mount_of(path: str) -> str | None:
    """The MemexFS mountpoint that ``path`` is (or is inside), if any; matched by name first,
    so a hung mount is found without touching it."""
    mounts = sorted(memex_mounts(), key=len, reverse=True)
    # Lazily: realpath stats the last name, which hangs on a dead mount that lexical found.
    for real in (resolve(path) for resolve in (lexical, os.path.realpath)):
        for mnt in mounts:
            if _inside(real, mnt):
                return mnt
    return None


def mount_of_vault(root: str, state_dir: StateDir = None) -> str | None:
    """The live mount serving the vault at ``root`` (its real path), if any."""
    for mnt, source in memex_mounts().items():
        if source == root:
            return mnt
    # A daemon older than fsname=<vault>: its mount.json names the mountpoint.
    try:
        info = json.loads((state_path(Path(root), state_dir) / "mount.json").read_text())
    except (OSError, ValueError):
        return None
    named = info.get("mountpoint") if isinstance(info, dict) else None
    return str(named) if named and named in memex_mounts() else None


@dataclass(frozen=True)
class Location:
    """Where a user's path leads: the vault's root, and its live mount if it has one."""

    root: str
    mount: str | None


def locate(path: str, exact: bool = False, state_dir: StateDir = None) -> Location:
    """A vault, a mountpoint, or a path inside either -> the vault (and its mount).

    Raises ``NotFound`` for a missing path and ``NotIndexed`` for a folder with no state
    (``vault.state_path``) here or above; nothing is created either way. ``exact``: ``path``
    is the vault (or its mountpoint), indexed or not (``memexfs index`` starts one). With a
    state folder given (``state_dir`` or ``--state-dir``), the vault is the one it records."""
    mnt = mount_of(path)
    if mnt is not None:
        source = memex_mounts().get(mnt, "")
        if not os.path.isabs(source):  # a daemon older than fsname=<vault>
            raise MemexError(f"{mnt}: cannot tell which vault this mount serves "
                             "(remount it with this version); give the vault's path instead")
        return Location(source, mnt)
    real = os.path.realpath(path)
    if not os.path.exists(real):
        raise NotFound(f"{path}: no such file or directory")
    if exact:
        if not os.path.isdir(real):
            raise NotFound(f"{path}: not a directory")
        return Location(real, mount_of_vault(real, state_dir))
    if state_dir is None:
        state_dir = config.current().state_dir
    if state_dir is not None:
        state = state_path(Path(real), state_dir)
        owner = state_owner(state)
        if owner is None:
            raise NotIndexed(f"{path}: not indexed (no index in {state}): run memexfs index "
                             f"--state-dir {state} VAULT")
        if not _inside(real, owner):
            raise NotFound(f"{path}: not inside {owner}, the vault whose state is in {state}")
        return Location(owner, mount_of_vault(owner, state))
    here = real if os.path.isdir(real) else os.path.dirname(real)
    while True:
        if state_path(Path(here)).is_dir():
            return Location(here, mount_of_vault(here))
        up = os.path.dirname(here)
        if up == here:
            break
        here = up
    raise NotIndexed(f"{path}: not indexed: run memexfs index {path}")


# ------------------------------------------------------------------------------ the vault
def _parse_results(text: str, root: str) -> Results:
    from mount.virtual import read_cosine, read_fields_line, unescape_field

    hits: list[Result] = []
    reason = None
    for line in text.splitlines():
        if line.startswith("# rank"):
            continue
        fields = read_fields_line(line)
        if fields is not None:  # the comment line after a row: that row's fields
            if hits and hits[-1].rank == fields[0]:
                hits[-1] = dataclasses.replace(hits[-1], fields=fields[1],
                                               cosine=read_cosine(line))
            continue
        if line.startswith("# "):
            reason = line[2:]
            continue
        rank, score, path, snippet = (line.split("\t", 3) + [""])[:4]
        rel = unescape_field(path)
        hits.append(Result(os.path.join(root, rel), rel, float(score), int(rank), snippet,
                           rel.rsplit("/", 1)[-1]))
    return Results(hits, reason)


def _results(result: Any, root: str) -> Results:
    return Results([Result(os.path.join(root, h.path), h.path, float(h.score), h.rank,
                           h.snippet, h.title, h.fields, getattr(h, "cosine", None))
                    for h in result.hits], result.reason)


class Memex:
    """An open vault. Use as a context manager (or call ``close()``): unmounted, it holds the
    vault's lock and an index process until closed."""

    def __init__(self, vault: str | os.PathLike[str], *, encoder: str | None = None,
                 qdrant_url: str | None = None,
                 encoder_factory: Callable[[], Any] | None = None,
                 create: bool = False, state_dir: StateDir = None) -> None:
        where = locate(os.fspath(vault), exact=create, state_dir=state_dir)
        self.root, self.mountpoint, self.state_dir = where.root, where.mount, state_dir
        self.encoder, self.qdrant_url = encoder, qdrant_url
        self._encoder_factory = encoder_factory
        self._stack: contextlib.ExitStack | None = None
        self._vault: Any = None
        self._store: Any = None
        self._searcher: Any = None
        self._knowledge: Any = None

    # -- lifecycle
    @property
    def mounted(self) -> bool:
        return self.mountpoint is not None

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None
            self._vault = self._store = self._searcher = None

    def __enter__(self) -> Memex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def offline(self, repair: bool = False) -> tuple[Any, Any]:
        """(vault, store) of an unmounted vault, locked for us until ``close()``."""
        if self._stack is None:
            from memexfs.store import open_store
            from memexfs.vault import Vault, VaultLock

            stack = contextlib.ExitStack()
            old = os.umask(OFFLINE_UMASK)
            try:
                vault = Vault.open(self.root, self.state_dir)
                lock = VaultLock(vault)
                lock.acquire()  # VaultLocked: a daemon (or another indexer) holds it
                stack.callback(lock.release)
                store = open_store(vault, self.qdrant_url, repair=repair,
                                   log_to=vault.state / "store.log")
                stack.callback(store.close)
            except BaseException:
                stack.close()
                raise
            finally:
                os.umask(old)
            self._stack, self._vault, self._store = stack, vault, store
        return self._vault, self._store

    def _searcher_for(self, today: date | None) -> Any:
        from query.searcher import Searcher

        _, store = self.offline()
        if self._searcher is None:
            self._searcher = Searcher(store, self._encoder_factory or self._load_encoder)
        self._searcher.today = today
        return self._searcher

    def _load_encoder(self) -> Any:
        from embed import load_encoder

        return load_encoder(self.encoder)

    def _pipeline(self, vault: Any, store: Any) -> Any:
        """The indexing pipeline, built in the indexer's worker thread (the encoder takes
        seconds to load)."""
        from memexfs.extract import Extractor
        from memexfs.pipeline import Pipeline

        return Pipeline(vault, store, self._load_encoder(), Extractor())

    # -- queries
    def query(self, query: str, k: int | None = None, today: date | None = None) -> Results:
        """Like ``search`` with the reason an empty answer has. Raises ``BadQuery`` (with the
        parser's message) for a name the grammar refuses, mounted or not."""
        from query.parse import parse

        # Before any encoder loads; through a mount the daemon would say only EINVAL.
        parse(query, today or date.today())
        if self.mountpoint is not None:
            if today is not None:
                raise MemexError("today is fixed by the mount (memexfs mount --today) while "
                                 "mounted")
            name = f"{query} k:{k}" if k else query
            return self._via_mount("q", *name.split("/"))
        return _results(self._searcher_for(today).search(query, k), self.root)

    def search(self, query: str, k: int | None = 20, today: date | None = None) -> list[Result]:
        return self.query(query, k, today).hits

    def related_results(self, path: str, k: int = 20) -> Results:
        rel = self.relpath(path)
        if os.path.isdir(os.path.join(self.root, rel)):
            raise MemexError(f"{path}: is a folder; related takes a file")
        if self.mountpoint is not None:
            got = self._via_mount("related", rel)
            return Results(got.hits[:k], got.reason)
        return _results(self._searcher_for(None).related(rel, k), self.root)

    def related(self, path: str, k: int = 20) -> list[Result]:
        return self.related_results(path, k).hits

    def relpath(self, path: str) -> str:
        """A file named by a path in the mount, in the vault, relative to the current folder
        (when it exists there), or relative to the vault -> its vault-relative path."""
        candidate = path if os.path.isabs(path) else None
        if candidate is None and os.path.lexists(path) and not os.path.lexists(
                os.path.join(self.root, path)):
            candidate = os.path.abspath(path)
        if candidate is None:
            return os.path.normpath(path).lstrip("/")
        a = lexical(candidate)
        for top in (self.mountpoint, self.root, os.path.realpath(self.root)):
            if top and _inside(a, top):
                return os.path.relpath(a, top)
        real = os.path.realpath(candidate)
        if _inside(real, os.path.realpath(self.root)):
            return os.path.relpath(real, os.path.realpath(self.root))
        raise NotFound(f"{path}: not inside the vault {self.root}")

    def _via_mount(self, tree: str, *parts: str) -> Results:
        assert self.mountpoint is not None
        try:
            # paths in .results are the names' own bytes, which need not be UTF-8
            text = os.fsdecode(Path(self.mountpoint, tree, *parts, ".results").read_bytes())
        except OSError as exc:
            raise MemexError(f"search failed: {exc.strerror}") from None
        return _parse_results(text, self.root)

    # -- state
    def status(self) -> dict[str, Any]:
        """The daemon's stats when mounted; else counts from the catalog (state "offline")."""
        if self.mountpoint is not None:
            raw = os.getxattr(os.path.join(self.mountpoint, CTL), "user.memex.stats")
            return dict(json.loads(raw))
        from memexfs import schema

        _, store = self.offline()
        counts = dict.fromkeys(schema.STATES, 0)
        errors, warnings = {}, {}
        for rec in store.iter_files():
            counts[rec.status] = counts.get(rec.status, 0) + 1
            if rec.error:
                errors[rec.path] = rec.error
            if rec.fields.get("warnings"):  # what extraction noted (memexfs.pipeline)
                warnings[rec.path] = list(rec.fields["warnings"])[:3]
        return {"state": "offline", "files": sum(counts.values()),
                "indexed": counts[schema.INDEXED], "failed": counts[schema.FAILED],
                "metadata_only": counts[schema.METADATA_ONLY], "queued": counts[schema.PENDING],
                "chunks": store.count_chunks(), "errors": errors,
                "warnings": dict(sorted(warnings.items())[:50]),
                "warnings_total": len(warnings)}

    def index(self, progress: Callable[[Any], None] | None = None,
              timeout: float = 86400.0) -> Any:
        """Bulk-index an unmounted vault (the daemon's own indexer, without mount or watcher);
        mounted, wait until the daemon's index is idle. Returns the indexer's (or daemon's)
        stats."""
        if self.mountpoint is not None:
            deadline = time.monotonic() + timeout
            while True:
                st = self.status()
                if (st.get("state") == "idle" and not st.get("queued")) or \
                        st.get("state") == "error" or time.monotonic() > deadline:
                    return st
                if progress is not None:
                    progress(st)
                time.sleep(0.2)
        import trio

        from memexfs.indexer import Indexer

        vault, store = self.offline()
        indexer = Indexer(vault, store, lambda: self._pipeline(vault, store), watch=False)

        async def run() -> None:
            async with trio.open_nursery() as nursery:
                await nursery.start(indexer.run)
                while not indexer.idle and indexer.stats.state != "error":
                    if progress is not None:
                        progress(indexer.stats)
                    await trio.sleep(0.2)
                nursery.cancel_scope.cancel()

        try:
            trio.run(run)
        finally:
            if indexer.pipeline is not None:
                indexer.pipeline.extractor.close()
        if self._searcher is not None:
            self._searcher.invalidate()
        stats = indexer.stats
        if stats.state == "error":
            raise MemexError(stats.last_error or "indexing failed")
        return stats

    def knowledge(self) -> Any:
        """The engine behind ``topics/``, ``backlinks/``, ``bridges/``, ``connect/`` and
        ``summary/`` (a :class:`query.knowledge.Knowledge`: ``topics()``, ``backlinks(path)``,
        ``bridges(path)``, ``connect(a, b)``, ``summary(path)``, ``graph()``), over this vault's
        index; topic ids are the mount's. Unmounted only: a live mount serves the same answers
        in its folders."""
        if self.mountpoint is not None:
            raise VaultLocked(f"{self.root} is mounted on {self.mountpoint}: read its topics/, "
                              "backlinks/, bridges/, connect/ and summary/ folders")
        if self._knowledge is None:
            from query.knowledge import Knowledge

            vault, store = self.offline()
            self._knowledge = Knowledge(store, vault.root,
                                        self._encoder_factory or self._load_encoder,
                                        vault.state, background=False)
            assert self._stack is not None
            self._stack.callback(self._close_knowledge)
        return self._knowledge

    def _close_knowledge(self) -> None:
        if self._knowledge is not None:
            self._knowledge.close()
            self._knowledge = None

    def repair(self) -> str | None:
        """Open the index, moving it aside (and starting an empty one) if it cannot be opened.
        Returns where the broken index went, None if it was fine. Unmounted only."""
        if self.mountpoint is not None:
            raise VaultLocked(f"{self.root} is mounted on {self.mountpoint}")
        self.close()
        _, store = self.offline(repair=True)
        ping = getattr(store, "ping", None)
        if ping is not None:
            ping()  # the index process reports what it did with its first answer
        moved = getattr(store, "moved_aside", None)
        return None if moved is None else str(moved)


def open(vault: str | os.PathLike[str], *, encoder: str | None = None,
         qdrant_url: str | None = None, create: bool = False,
         state_dir: StateDir = None) -> Memex:
    """Open a vault (a vault folder, its mountpoint, or a path inside either); ``create``
    makes ``vault`` itself one if it is not yet (for ``index()``); ``state_dir`` is where its
    state lives if not where the config (``state_root``) or the default puts it."""
    return Memex(vault, encoder=encoder, qdrant_url=qdrant_url, create=create,
                 state_dir=state_dir)


__all__ = ["BadQuery", "Location", "Memex", "NotIndexed", "Result", "Results", "VaultLocked",
           "locate", "memex_mounts", "mount_of", "open"]
