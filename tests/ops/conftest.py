"""The ``Operations`` layer: mount/ops/'s handlers called directly, without a kernel.

A temporary folder stands in for the vault, a ``RecordingSink`` for the index and a fake
request context for the caller; the handlers run in a trio test, as under ``pyfuse3.main``.
What only the kernel decides (permission checks under ``default_permissions``, the page cache,
lookup counts) is for the real-mount tests in tests/mount.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyfuse3
import pytest
from pyfuse3 import FileHandleT, FileNameT, FlagT, InodeT, ModeT, RequestContext

from mount.ops import STATE_DIR, MemexOperations
from tests.fakes import RecordingSink, request_context

ROOT = InodeT(pyfuse3.ROOT_INODE)


@dataclass
class Ops:
    """The operations over ``vault`` and a few path-level conveniences around them."""

    ops: MemexOperations
    sink: RecordingSink
    vault: Path
    ctx: RequestContext

    async def inode(self, path: str) -> InodeT:
        """Look ``path`` up component by component, as the kernel does."""
        inode = ROOT
        for part in filter(None, path.split("/")):
            inode = (await self.ops.lookup(inode, FileNameT(part.encode()), self.ctx)).st_ino
        return inode

    async def parent(self, path: str) -> tuple[InodeT, FileNameT]:
        head, _, name = path.rpartition("/")
        return await self.inode(head), FileNameT(name.encode())

    async def create(self, path: str, mode: int = 0o644, flags: int = os.O_WRONLY,
                     ctx: RequestContext | None = None) -> FileHandleT:
        parent, name = await self.parent(path)
        info, _ = await self.ops.create(parent, name, ModeT(mode), FlagT(flags), ctx or self.ctx)
        return info.fh

    async def open(self, path: str, flags: int, ctx: RequestContext | None = None) -> FileHandleT:
        info = await self.ops.open(await self.inode(path), FlagT(flags), ctx or self.ctx)
        return info.fh

    async def write_file(self, path: str, data: bytes) -> None:
        """create + write + release: what ``echo data > path`` asks of the mount."""
        fh = await self.create(path)
        assert await self.ops.write(fh, 0, data) == len(data)
        await self.ops.release(fh)

    def listed(self, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
        """Names readdir hands the kernel (``readdir_reply`` recorded instead of sent)."""
        names: list[bytes] = []

        def reply(token: Any, name: bytes, attr: Any, next_id: int) -> bool:
            names.append(name)
            return True

        monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
        return names


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Ops]:
    vault = tmp_path / "vault"
    (vault / STATE_DIR).mkdir(parents=True)
    (vault / STATE_DIR / "catalog").write_text("the daemon's own state\n")
    (vault / "d").mkdir()
    (vault / "d" / "f.txt").write_text("hello\n")
    sink = RecordingSink()
    ops = MemexOperations(str(vault), sink=sink)
    try:
        yield Ops(ops, sink, vault, request_context(os.getuid(), os.getgid()))
    finally:
        ops.close()
