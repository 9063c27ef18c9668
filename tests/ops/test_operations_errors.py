"""The errno each bad request gets from the operations, and the hidden state folder.

The kernel checks permissions itself (``default_permissions``); these are the answers the
daemon decides: names it refuses, the vault's own errors passed through, and ``.memexfs`` at the
vault root, which no request may reach or replace.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Awaitable, Callable
from typing import Any

import pyfuse3
import pytest
from pyfuse3 import FileNameT, FlagT, InodeT, ModeT, XAttrNameT

from mount.ops import STATE_DIR, MemexOperations
from tests.fakes import RecordingSink, request_context
from tests.ops.conftest import ROOT, Ops

pytestmark = [pytest.mark.trio, pytest.mark.timeout(30)]

N = FileNameT
HIDDEN = N(STATE_DIR.encode())
FILE = ModeT(stat.S_IFREG | 0o644)
DIR = ModeT(stat.S_IFDIR | 0o755)


async def _rename(e: Ops, old: str, new: str, flags: int = 0) -> None:
    (op, on), (np_, nn) = await e.parent(old), await e.parent(new)
    await e.ops.rename(op, on, np_, nn, FlagT(flags), e.ctx)


async def _create(e: Ops, parent: str, name: bytes, flags: int = os.O_WRONLY) -> Any:
    return await e.ops.create(await e.inode(parent), N(name), FILE, FlagT(flags), e.ctx)


Case = Callable[[Ops], Awaitable[Any]]
CASES: dict[str, tuple[Case, int]] = {
    "lookup missing": (lambda e: e.inode("d/nope"), errno.ENOENT),
    "lookup long name": (lambda e: e.inode("d/" + "n" * 256), errno.ENAMETOOLONG),
    "create long name": (lambda e: _create(e, "d", b"n" * 256), errno.ENAMETOOLONG),
    "create excl existing": (lambda e: _create(e, "d", b"f.txt", os.O_WRONLY | os.O_EXCL),
                             errno.EEXIST),
    "mkdir existing": (lambda e: e.ops.mkdir(ROOT, N(b"d"), DIR, e.ctx), errno.EEXIST),
    "unlink missing": (lambda e: e.ops.unlink(ROOT, N(b"nope"), e.ctx), errno.ENOENT),
    "unlink a folder": (lambda e: e.ops.unlink(ROOT, N(b"d"), e.ctx), errno.EISDIR),
    "rmdir non-empty": (lambda e: e.ops.rmdir(ROOT, N(b"d"), e.ctx), errno.ENOTEMPTY),
    "rmdir a file": (lambda e: _rmdir_file(e), errno.ENOTDIR),
    "rename unknown flag": (lambda e: _rename(e, "d/f.txt", "d/g.txt", 1 << 7), errno.EINVAL),
    "rename into itself": (lambda e: _rename(e, "d", "d/sub"), errno.EINVAL),
    "rename long name": (lambda e: _rename(e, "d/f.txt", "d/" + "n" * 256), errno.ENAMETOOLONG),
    "setxattr index status": (lambda e: _setxattr(e, b"user.memex.status"), errno.EPERM),
    "removexattr index error": (lambda e: _removexattr(e, b"user.memex.error"), errno.EPERM),
    "getxattr missing": (lambda e: _getxattr(e, b"user.nope"), pyfuse3.ENOATTR),
    "chmod a symlink": (lambda e: _chmod_link(e), errno.EOPNOTSUPP),
    "read a closed handle": (lambda e: e.ops.read(pyfuse3.FileHandleT(999), 0, 1), errno.EBADF),
    "stale inode": (lambda e: e.ops.getattr(InodeT(123456789), e.ctx), errno.ENOENT),
}


async def _rmdir_file(e: Ops) -> None:
    await e.ops.rmdir(await e.inode("d"), N(b"f.txt"), e.ctx)


async def _setxattr(e: Ops, name: bytes) -> None:
    await e.ops.setxattr(await e.inode("d/f.txt"), XAttrNameT(name), b"indexed", e.ctx)


async def _removexattr(e: Ops, name: bytes) -> None:
    await e.ops.removexattr(await e.inode("d/f.txt"), XAttrNameT(name), e.ctx)


async def _getxattr(e: Ops, name: bytes) -> bytes:
    return await e.ops.getxattr(await e.inode("d/f.txt"), XAttrNameT(name), e.ctx)


async def _chmod_link(e: Ops) -> None:
    from tests.ops.test_operations_sink import fields

    os.symlink("f.txt", e.vault / "d" / "lnk")
    attr = pyfuse3.EntryAttributes()
    attr.st_mode = ModeT(0o600)
    await e.ops.setattr(await e.inode("d/lnk"), attr, fields(mode=True), None, e.ctx)


async def raises(coro: Awaitable[Any]) -> int:
    with pytest.raises(pyfuse3.FUSEError) as err:
        await coro
    return err.value.errno


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_requests_get_their_errno(env: Ops, case: str) -> None:
    op, expected = CASES[case]
    before = sorted(p.relative_to(env.vault) for p in env.vault.rglob("*"))
    assert errno.errorcode[await raises(op(env))] == errno.errorcode[expected]
    if case != "chmod a symlink":  # the only case whose setup adds an entry
        assert sorted(p.relative_to(env.vault) for p in env.vault.rglob("*")) == before
    assert env.sink.calls == []


HIDDEN_CASES: dict[str, tuple[Case, int]] = {
    "lookup": (lambda e: e.ops.lookup(ROOT, HIDDEN, e.ctx), errno.ENOENT),
    "create": (lambda e: e.ops.create(ROOT, HIDDEN, FILE, FlagT(os.O_WRONLY), e.ctx),
               errno.EACCES),
    "mknod": (lambda e: e.ops.mknod(ROOT, HIDDEN, FILE, 0, e.ctx), errno.EPERM),
    "mkdir": (lambda e: e.ops.mkdir(ROOT, HIDDEN, DIR, e.ctx), errno.EEXIST),
    "symlink": (lambda e: e.ops.symlink(ROOT, HIDDEN, N(b"d"), e.ctx), errno.EEXIST),
    "unlink": (lambda e: e.ops.unlink(ROOT, HIDDEN, e.ctx), errno.ENOENT),
    "rmdir": (lambda e: e.ops.rmdir(ROOT, HIDDEN, e.ctx), errno.ENOENT),
    "rename from": (lambda e: _rename(e, STATE_DIR, "stolen"), errno.EBUSY),
    "rename over": (lambda e: _rename(e, "d", STATE_DIR), errno.EBUSY),
    "link": (lambda e: _link_hidden(e), errno.EEXIST),
}


async def _link_hidden(e: Ops) -> None:
    await e.ops.link(await e.inode("d/f.txt"), ROOT, HIDDEN, e.ctx)


@pytest.mark.parametrize("case", list(HIDDEN_CASES))
async def test_the_state_folder_cannot_be_reached_or_replaced(env: Ops, case: str) -> None:
    op, expected = HIDDEN_CASES[case]
    before = sorted(p.relative_to(env.vault) for p in env.vault.rglob("*"))
    assert errno.errorcode[await raises(op(env))] == errno.errorcode[expected]
    assert sorted(p.relative_to(env.vault) for p in env.vault.rglob("*")) == before
    assert (env.vault / STATE_DIR / "catalog").read_text() == "the daemon's own state\n"
    assert env.sink.calls == []


async def test_the_state_folder_is_not_listed(env: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    names = env.listed(monkeypatch)
    fh = await env.ops.opendir(ROOT, env.ctx)
    await env.ops.readdir(fh, 0, None)  # type: ignore[arg-type]
    await env.ops.releasedir(fh)
    assert names == [b"d"]


async def test_only_the_vault_roots_state_folder_is_hidden(env: Ops) -> None:
    """A ``.memexfs`` deeper down is an ordinary folder of the user's."""
    d = await env.inode("d")
    await env.ops.mkdir(d, HIDDEN, DIR, env.ctx)
    assert (await env.ops.lookup(d, HIDDEN, env.ctx)).st_ino == (
        env.vault / "d" / STATE_DIR).stat().st_ino


async def test_virtual_root_names_cannot_be_made_or_removed(tmp_path: Any) -> None:
    (tmp_path / "q").mkdir()  # a vault folder shadowed by the virtual tree of the same name
    unused: Any = object()  # never asked: these refusals come before any tree is consulted
    ops = MemexOperations(str(tmp_path), sink=RecordingSink(), virtual={"q": unused})
    ctx = request_context()
    try:
        assert await raises(ops.mkdir(ROOT, N(b"q"), DIR, ctx)) == errno.EEXIST
        assert await raises(ops.rmdir(ROOT, N(b"q"), ctx)) == errno.EBUSY
        assert (tmp_path / "q").is_dir()
    finally:
        ops.close()


@pytest.mark.expected_log("release failed unexpectedly")
async def test_a_bug_in_a_handler_is_eio_and_closes_nothing_twice(env: Ops) -> None:
    """The error boundary: an exception that is no OSError is a bug, logged, answered EIO."""

    def broken(path: str) -> None:
        raise RuntimeError("the index sink broke")

    fh = await env.create("d/new.txt")
    await env.ops.write(fh, 0, b"x")
    env.sink.changed = broken  # type: ignore[method-assign]
    assert await raises(env.ops.release(fh)) == errno.EIO
    assert await raises(env.ops.write(fh, 0, b"y")) == errno.EBADF  # the handle is gone
    assert (env.vault / "d" / "new.txt").read_bytes() == b"x"
