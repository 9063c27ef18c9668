"""What the op queue carries: one frozen dataclass per kind of notification, dispatched with
``match`` in ``memexfs.indexer.ops``. Paths are vault-relative, as the mount and the watcher give
them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Changed:
    """``path`` was written or created. ``from_watcher``: seen by the vault watcher, so it may be
    an echo of our own write (dropped when the catalog already knows its size and mtime)."""

    path: str
    from_watcher: bool = False


@dataclass(frozen=True, slots=True)
class Removed:
    """``path`` (a file, or a folder and what was under it) is gone. ``file_id``: the entry that
    reconcile found without a file (then it is dropped even if the name exists again)."""

    path: str
    file_id: str = ""


@dataclass(frozen=True, slots=True)
class Moved:
    """A rename of a file or a folder (and everything under it)."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Exchanged:
    """``renameat2(RENAME_EXCHANGE)``: the two names swapped what they hold, files or folders."""

    a: str
    b: str


@dataclass(frozen=True, slots=True)
class Outside:
    """One watcher batch of changes made around the mount, echoes of our own already dropped."""

    deleted: tuple[str, ...]
    present: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rescan:
    """After a watcher restart: reconcile again for what changed while nobody watched."""


Barrier = Removed | Moved | Exchanged | Outside | Rescan
"""The ops applied one at a time: each ends a run of ``Changed``, which go to the store together."""
Op = Changed | Barrier


def paths_of(op: Op) -> tuple[str, ...]:
    """The vault paths an op names (an ``Outside`` batch was filtered by the watcher already)."""
    match op:
        case Changed(path=p) | Removed(path=p):
            return (p,)
        case Moved(old=a, new=b) | Exchanged(a=a, b=b):
            return (a, b)
        case Outside() | Rescan():
            return ()
