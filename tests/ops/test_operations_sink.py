"""What each operation tells the index (the ``IndexSink``), and what it records as its own.

The index learns of a file once it is complete (release, fsync), never mid-write; a removal or
rename is one call the index can apply without re-reading the file.
"""

from __future__ import annotations

import errno
import os
import stat
from types import SimpleNamespace
from typing import cast

import pyfuse3
import pytest
from pyfuse3 import EntryAttributes, FileNameT, FlagT, ModeT, SetattrFields, XAttrNameT

from memexfs.echo import lstat_signature
from tests.ops.conftest import Ops

pytestmark = [pytest.mark.trio, pytest.mark.timeout(30)]


def fields(**update: bool) -> SetattrFields:
    """pyfuse3's SetattrFields is read-only; setattr reads just these flags."""
    names = ("size", "mode", "uid", "gid", "atime", "mtime", "ctime")
    return cast(SetattrFields, SimpleNamespace(**{f"update_{n}": update.get(n, False)
                                                  for n in names}))


async def test_lookup_open_and_read_tell_the_index_nothing(env: Ops) -> None:
    fh = await env.open("d/f.txt", os.O_RDONLY)
    assert await env.ops.read(fh, 0, 100) == b"hello\n"
    await env.ops.release(fh)
    assert env.sink.calls == []


async def test_create_write_release_is_one_change_at_release(env: Ops) -> None:
    fh = await env.create("d/new.txt")
    assert await env.ops.write(fh, 0, b"new bytes\n") == 10
    assert env.sink.calls == []  # mid-write: nothing complete to index yet
    await env.ops.release(fh)
    assert env.sink.calls == [("changed", "d/new.txt")]
    assert (env.vault / "d" / "new.txt").read_bytes() == b"new bytes\n"
    # the state the release left is ours: the vault watcher will drop its echo
    assert env.sink.own.is_own("d/new.txt", lstat_signature(env.vault / "d" / "new.txt"))


async def test_an_outside_write_after_ours_is_not_ours(env: Ops) -> None:
    await env.write_file("d/new.txt", b"ours\n")
    (env.vault / "d" / "new.txt").write_bytes(b"them\n")
    assert not env.sink.own.is_own("d/new.txt", lstat_signature(env.vault / "d" / "new.txt"))


async def test_open_for_writing_without_a_write_changes_nothing(env: Ops) -> None:
    fh = await env.open("d/f.txt", os.O_WRONLY)
    await env.ops.release(fh)
    assert env.sink.calls == []


async def test_o_trunc_is_a_change_without_any_write(env: Ops) -> None:
    fh = await env.open("d/f.txt", os.O_WRONLY | os.O_TRUNC)
    await env.ops.release(fh)
    assert env.sink.calls == [("changed", "d/f.txt")]
    assert (env.vault / "d" / "f.txt").stat().st_size == 0


async def test_fsync_of_a_written_handle_queues_it_before_release(env: Ops) -> None:
    fh = await env.open("d/f.txt", os.O_WRONLY)
    await env.ops.write(fh, 0, b"J")
    await env.ops.fsync(fh, False)
    assert env.sink.calls == [("changed", "d/f.txt")]
    await env.ops.release(fh)
    assert env.sink.calls == [("changed", "d/f.txt")] * 2
    assert (env.vault / "d" / "f.txt").read_bytes() == b"Jello\n"


async def test_truncate_by_path_is_a_change(env: Ops) -> None:
    attr = EntryAttributes()
    attr.st_size = 2
    entry = await env.ops.setattr(await env.inode("d/f.txt"), attr, fields(size=True), None,
                                  env.ctx)
    assert entry.st_size == 2
    assert env.sink.calls == [("changed", "d/f.txt")]


async def test_chmod_tells_the_index_nothing_but_is_ours(env: Ops) -> None:
    attr = EntryAttributes()
    attr.st_mode = ModeT(stat.S_IFREG | 0o600)
    await env.ops.setattr(await env.inode("d/f.txt"), attr, fields(mode=True), None, env.ctx)
    assert stat.S_IMODE((env.vault / "d" / "f.txt").stat().st_mode) == 0o600
    assert env.sink.calls == []
    assert env.sink.own.is_own("d/f.txt", lstat_signature(env.vault / "d" / "f.txt"))


async def test_mknod_of_a_regular_file_is_a_change_of_a_fifo_nothing(env: Ops) -> None:
    d = await env.inode("d")
    await env.ops.mknod(d, FileNameT(b"fifo"), ModeT(stat.S_IFIFO | 0o644), 0, env.ctx)
    assert env.sink.calls == []
    await env.ops.mknod(d, FileNameT(b"empty"), ModeT(stat.S_IFREG | 0o644), 0, env.ctx)
    assert env.sink.calls == [("changed", "d/empty")]


async def test_unlink_of_a_file_is_a_removal_of_a_symlink_nothing(env: Ops) -> None:
    os.symlink("f.txt", env.vault / "d" / "lnk")
    d = await env.inode("d")
    await env.ops.unlink(d, FileNameT(b"lnk"), env.ctx)
    assert env.sink.calls == []
    await env.ops.unlink(d, FileNameT(b"f.txt"), env.ctx)
    assert env.sink.calls == [("removed", "d/f.txt")]
    assert not (env.vault / "d" / "f.txt").exists()
    assert env.sink.own.is_own("d/f.txt", lstat_signature(env.vault / "d" / "f.txt"))


async def test_mkdir_and_rmdir_tell_the_index_nothing(env: Ops) -> None:
    d = await env.inode("d")
    await env.ops.mkdir(d, FileNameT(b"sub"), ModeT(stat.S_IFDIR | 0o755), env.ctx)
    assert (env.vault / "d" / "sub").is_dir()
    await env.ops.rmdir(d, FileNameT(b"sub"), env.ctx)
    assert not (env.vault / "d" / "sub").exists()
    assert env.sink.calls == []


async def rename(env: Ops, old: str, new: str, flags: int = 0) -> None:
    (op, on), (np_, nn) = await env.parent(old), await env.parent(new)
    await env.ops.rename(op, on, np_, nn, FlagT(flags), env.ctx)


async def test_rename_of_a_file_is_one_move(env: Ops) -> None:
    await rename(env, "d/f.txt", "d/g.txt")
    assert env.sink.calls == [("moved", "d/f.txt", "d/g.txt")]


async def test_rename_over_a_file_removes_the_replaced_one(env: Ops) -> None:
    (env.vault / "d" / "g.txt").write_text("replaced\n")
    await rename(env, "d/f.txt", "d/g.txt")
    assert env.sink.replay({"d/f.txt": "F", "d/g.txt": "G"}) == {"d/g.txt": "F"}
    assert (env.vault / "d" / "g.txt").read_text() == "hello\n"


async def test_rename_of_a_folder_moves_what_is_under_it(env: Ops) -> None:
    await rename(env, "d", "e")
    assert env.sink.replay({"d/f.txt": "F", "dx.txt": "X"}) == {"e/f.txt": "F", "dx.txt": "X"}


async def test_rename_exchange_swaps_the_two_in_the_index(env: Ops) -> None:
    (env.vault / "g.txt").write_text("top\n")
    await rename(env, "d/f.txt", "g.txt", pyfuse3.RENAME_EXCHANGE)
    assert env.sink.replay({"d/f.txt": "F", "g.txt": "G"}) == {"d/f.txt": "G", "g.txt": "F"}
    assert (env.vault / "g.txt").read_text() == "hello\n"


async def test_rename_noreplace_over_a_file_fails_and_tells_nothing(env: Ops) -> None:
    (env.vault / "d" / "g.txt").write_text("kept\n")
    with pytest.raises(pyfuse3.FUSEError) as err:
        await rename(env, "d/f.txt", "d/g.txt", pyfuse3.RENAME_NOREPLACE)
    assert err.value.errno == errno.EEXIST
    assert env.sink.calls == []
    assert (env.vault / "d" / "g.txt").read_text() == "kept\n"


async def test_index_status_xattr_comes_from_the_sink(env: Ops) -> None:
    env.sink.status["d/f.txt"] = "failed"
    env.sink.errors["d/f.txt"] = "cannot parse:\n  truncated"
    inode = await env.inode("d/f.txt")
    status, error = XAttrNameT(b"user.memex.status"), XAttrNameT(b"user.memex.error")
    assert await env.ops.getxattr(inode, status, env.ctx) == b"failed"
    assert await env.ops.getxattr(inode, error, env.ctx) == b"cannot parse: truncated"
    assert {status, error} <= set(await env.ops.listxattr(inode, env.ctx))
