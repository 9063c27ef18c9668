"""Who may see a file: the caller's uid/gids against the real file's mode and its folders.

Query folders list only files the caller could open for reading through the normal tree: read
permission on the file and search (x) permission on every folder above it — as the kernel's own
checks would decide with ``default_permissions``.
"""

from __future__ import annotations

import os
import stat


def _allowed(st: os.stat_result, uid: int, gids: frozenset[int], bit: int) -> bool:
    """bit: 4 read, 2 write, 1 exec/search — POSIX: the first matching class decides."""
    if uid == 0:
        return bool(bit != 1 or stat.S_ISDIR(st.st_mode) or st.st_mode & 0o111)
    if st.st_uid == uid:
        return bool(st.st_mode & (bit << 6))
    if st.st_gid in gids:
        return bool(st.st_mode & (bit << 3))
    return bool(st.st_mode & bit)


def can_reach(root: str, rel: str, uid: int, gids: frozenset[int]) -> bool:
    """True if uid/gids may search every folder from ``root`` down to ``rel``'s parent."""
    if uid == 0:
        return True
    parts = [p for p in rel.split("/") if p]
    cur = root
    try:
        for part in ["", *parts[:-1]]:
            cur = os.path.join(cur, part) if part else cur
            if not _allowed(os.stat(cur), uid, gids, 1):
                return False
    except OSError:
        return False
    return True


def can_read(root: str, rel: str, uid: int, gids: frozenset[int]) -> bool:
    """True if uid/gids may read ``root/rel`` through the mount (the folder, for a folder)."""
    if uid == 0:
        return True
    if not can_reach(root, rel, uid, gids):
        return False
    full = os.path.join(root, rel)
    if os.path.islink(full):  # the kernel also searches every folder on the way to the target
        inside = os.path.relpath(os.path.realpath(full), os.path.realpath(root))
        if inside != ".." and not inside.startswith(".." + os.sep) and \
                not can_reach(root, inside, uid, gids):
            return False
    try:
        return _allowed(os.stat(full), uid, gids, 4)
    except OSError:
        return False
