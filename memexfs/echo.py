"""What MemexFS itself did to the vault, so the watcher can tell its own changes from outside ones.

Every change made through the mount also reaches the vault watcher (inotify sees the passthrough
syscalls). Re-reporting it as an outside change cost a reverse invalidation per write, a new inode
number for every file written through the mount, and a busy daemon. The operations therefore record,
per vault path, the state their request left behind (an lstat ``Signature``, or ``ABSENT``), and
which vault objects they hold open for writing. The watcher drops an event whose path still shows
exactly that state — a change around the mount after ours changes ``st_ctime_ns`` (any write,
chmod, rename or link does), so it is still reported — or whose object we are writing right now.
(A folder's signature is its identity, type, mode and owner: its times move with its entries.)
A change through one name of a hard-linked file refreshes the other names recorded for it, and a
path that vanished with a folder we moved or removed is ours too.

Entries expire: shortly after they matched an event (a burst may reach the watcher in two
batches), or after ``ttl`` seconds anyway, and there are at most ``max_entries``. A lost entry only
costs one echo (the old behaviour). What is taken for ours although it was not: an outside change
made *before* ours within one watcher batch (~200 ms; ours then shows anyway), and outside writes
to a file while the mount writes it too (the release re-indexes it regardless).

Used from the trio thread only (the operations and the watcher's filter both run there), so a
check never sees a request half-way between its syscall and its record.
"""

from __future__ import annotations

import os
import stat
import time
from collections import Counter, OrderedDict
from collections.abc import Callable

Signature = tuple[int, ...]
"""(st_dev, st_ino, st_mode, st_uid, st_gid, st_size, st_mtime_ns, st_ctime_ns), or ``ABSENT``.
A folder's size and times change with every entry made in it (each reported on its own), so a
folder's signature leaves them out."""
ABSENT: Signature = ()
Key = tuple[int, int]  # (st_dev, st_ino) of a vault object

TTL_S = 20.0  # the watcher may lag behind a busy loop; past this an echo is just an echo
GRACE_S = 2.0  # after a match: the rest of the same burst may come in the next batch
MAX_ENTRIES = 50_000  # ~350 bytes each


def signature(st: os.stat_result | None) -> Signature:
    """The state of a vault object as the watcher will see it (``None``: nothing there)."""
    if st is None:
        return ABSENT
    if stat.S_ISDIR(st.st_mode):
        return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid)
    return (st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
            st.st_ctime_ns)


def lstat_signature(path: str | bytes | os.PathLike[str]) -> Signature | None:
    """Current state of ``path``: ``ABSENT`` if nothing is there, ``None`` if it can't be told."""
    try:
        return signature(os.lstat(path))
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT
    except (OSError, ValueError):
        return None


class OwnChanges:
    """Per path, what our last operation left there; plus the objects we have open for writing."""

    def __init__(self, ttl: float = TTL_S, grace: float = GRACE_S,
                 max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.grace = grace
        self.max_entries = max_entries
        self._clock = clock
        self._left: OrderedDict[str, tuple[Signature, float]] = OrderedDict()  # sig, deadline
        self._names: dict[Key, set[str]] = {}  # recorded paths per object (hard links)
        self._writing: Counter[Key] = Counter()

    def __len__(self) -> int:
        return len(self._left)

    def record(self, path: str, sig: Signature) -> None:
        """An operation through the mount left ``path`` in state ``sig``."""
        now = self._clock()
        self.refresh(sig)
        old = self._left.pop(path, None)
        if old is not None:
            self._unindex(path, old[0])
        self._left[path] = (sig, now + self.ttl)
        if sig:
            self._names.setdefault((sig[0], sig[1]), set()).add(path)
        self._expire(now)

    def refresh(self, sig: Signature) -> None:
        """The object changed through one of its names (a link, an unlink, a chmod): the other
        names we recorded for it show its new state (ctime, link count) too."""
        if sig:
            for other in self._names.get((sig[0], sig[1]), ()):
                self._left[other] = (sig, self._left[other][1])

    def start_writing(self, key: Key) -> None:
        """A handle of ours writes to this object: its changes are ours until ``stop_writing``."""
        self._writing[key] += 1

    def stop_writing(self, key: Key) -> None:
        n = self._writing[key] - 1
        if n > 0:
            self._writing[key] = n
        else:
            del self._writing[key]

    def writing(self, key: Key) -> bool:
        return key in self._writing

    def is_own(self, path: str, sig: Signature | None) -> bool:
        """Whether the watcher's event for ``path``, now in state ``sig``, is our own echo."""
        if sig is None:
            return False
        now = self._clock()
        entry = self._left.get(path)
        if entry is not None:
            left, deadline = entry
            if left == sig and deadline > now:
                self._left[path] = (left, min(deadline, now + self.grace))
                return True
            self._drop(path)  # changed around the mount since (or expired)
        if sig == ABSENT:
            return self._gone_with_folder(path, now)
        return (sig[0], sig[1]) in self._writing

    def _gone_with_folder(self, path: str, now: float) -> bool:
        """A path under a folder we moved or removed is gone because of us: its last events
        (queued under the old name) are echoes too."""
        head = path
        while "/" in head:
            head = head.rpartition("/")[0]
            entry = self._left.get(head)
            if entry is not None and entry[0] == ABSENT and entry[1] > now:
                return True
        return False

    def _drop(self, path: str) -> None:
        sig, _deadline = self._left.pop(path)
        self._unindex(path, sig)

    def _unindex(self, path: str, sig: Signature) -> None:
        if not sig:
            return
        names = self._names.get((sig[0], sig[1]))
        if names is not None:
            names.discard(path)
            if not names:
                del self._names[(sig[0], sig[1])]

    def _expire(self, now: float) -> None:
        while self._left:
            path, (_sig, deadline) = next(iter(self._left.items()))
            if deadline > now and len(self._left) <= self.max_entries:
                return
            self._drop(path)
