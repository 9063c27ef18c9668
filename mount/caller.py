"""What the calling process is doing, for the few places where FUSE doesn't tell us.

The kernel looks a name up before ``mkdir`` creates it; in ``/q`` every name resolves (it is a
query), so ``mkdir q/<name>`` would fail with EEXIST before our ``mkdir`` handler ever ran. Knowing
that the caller is inside mkdir(2) lets the lookup answer ENOENT for a name that is not saved yet.
"""

from __future__ import annotations

import platform

# Syscall numbers of mkdir(2) and mkdirat(2) per architecture.
_MKDIR = {"x86_64": {83, 258}, "aarch64": {34}, "riscv64": {34}, "ppc64le": {39, 287}}.get(
    platform.machine(), set())


def in_mkdir(pid: int) -> bool:
    """True while ``pid`` is blocked in mkdir/mkdirat (read from /proc/PID/syscall)."""
    if not _MKDIR or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/syscall") as f:
            first = f.read().split(" ", 1)[0]
    except OSError:
        return False
    return first.isdigit() and int(first) in _MKDIR
