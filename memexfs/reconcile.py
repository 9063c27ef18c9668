"""Reconcile the vault against the catalog: what changed while nobody was watching.

Runs at every mount (and from ``memexfs index``/``check``). Files whose size or mtime differ, or
whose entry is still ``pending`` (a crash mid-index), are re-queued; catalog entries whose file is
gone are removed — unless a new path holds the same inode and size, which is an outside rename and
moves the entry (its vectors stay).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from memexfs import schema
from memexfs.store import Store
from memexfs.vault import Vault


@dataclass
class Plan:
    changed: list[str] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)  # (file_id, path)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (old path, new path)
    unchanged: int = 0


def plan(vault: Vault, store: Store) -> Plan:
    on_disk = {path: st for path, st in vault.iter_files()}
    catalog = {rec.path: rec for rec in store.iter_files()}
    out = Plan()
    new_paths = [p for p in on_disk if p not in catalog]
    by_inode = {(on_disk[p].st_ino, on_disk[p].st_size): p for p in new_paths}
    for path, rec in catalog.items():
        st = on_disk.get(path)
        if st is None:
            target = by_inode.pop((rec.ino, rec.size), None) if rec.ino else None
            if target is not None:
                out.moved.append((path, target))
                new_paths.remove(target)
                if rec.status == schema.PENDING or on_disk[target].st_mtime_ns != rec.mtime_ns:
                    out.changed.append(target)  # changed on the way, or never finished
            else:
                out.removed.append((rec.file_id, path))
        elif (rec.status == schema.PENDING or st.st_size != rec.size
              or st.st_mtime_ns != rec.mtime_ns):
            out.changed.append(path)
        else:
            out.unchanged += 1
    out.changed.extend(new_paths)
    return out
