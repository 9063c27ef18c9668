"""Passthrough semantics through a real mount, checked against a plain directory on the same disk.

Each test runs the same operation in a fresh folder of the mount and of the reference tree and
asserts both the expected outcome (the POSIX/Linux answer) and that the two trees agree.
"""

from __future__ import annotations

import mmap
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.mount.posix import (
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    UTIME_NOW,
    UTIME_OMIT,
    lstat_sig,
    outcome,
    renameat2,
    stat_sig,
    tree_snapshot,
    utimensat,
)
from tests.mount.trees import Trees

pytestmark = [pytest.mark.mount, pytest.mark.timeout(120)]


def both(trees: Trees, fn: Callable[[Path], Any]) -> tuple[str, Any]:
    """Run ``fn`` in a fresh folder of each tree; the outcomes must be equal."""
    a, b = trees.pair()
    got_mnt, got_ref = outcome(fn, a), outcome(fn, b)
    assert got_mnt == got_ref, f"mount {got_mnt} != reference {got_ref}"
    assert tree_snapshot(a) == tree_snapshot(b)
    return got_mnt


def _setup(d: Path) -> None:
    (d / "f").write_bytes(b"\0data")
    (d / "g").write_bytes(b"\0other")
    (d / "dir").mkdir()
    (d / "full").mkdir()
    (d / "full" / "x").write_bytes(b"\0")
    (d / "loop1").symlink_to("loop2")
    (d / "loop2").symlink_to("loop1")
    (d / "lnk").symlink_to("f")


def _touch_open(path: Path, mode: str = "rb") -> None:
    with open(path, mode):
        pass


ERROR_CASES: dict[str, tuple[Callable[[Path], Any], str]] = {
    "open missing": (lambda d: _touch_open(d / "nope"), "ENOENT"),
    "mkdir existing": (lambda d: os.mkdir(d / "dir"), "EEXIST"),
    "mkdir over file": (lambda d: os.mkdir(d / "f"), "EEXIST"),
    "create excl": (lambda d: os.open(d / "f", os.O_CREAT | os.O_EXCL | os.O_WRONLY), "EEXIST"),
    "file as dir": (lambda d: _touch_open(d / "f" / "x"), "ENOTDIR"),
    "mkdir under file": (lambda d: os.mkdir(d / "f" / "x"), "ENOTDIR"),
    "write a dir": (lambda d: os.open(d / "dir", os.O_WRONLY), "EISDIR"),
    "unlink a dir": (lambda d: os.unlink(d / "dir"), "EISDIR"),
    "rmdir a file": (lambda d: os.rmdir(d / "f"), "ENOTDIR"),
    "rmdir non-empty": (lambda d: os.rmdir(d / "full"), "ENOTEMPTY"),
    "rmdir missing": (lambda d: os.rmdir(d / "nope"), "ENOENT"),
    "long name create": (lambda d: _touch_open(d / ("n" * 256), "wb"), "ENAMETOOLONG"),
    "long name lookup": (lambda d: os.stat(d / ("n" * 300)), "ENAMETOOLONG"),
    "long name mkdir": (lambda d: os.mkdir(d / ("n" * 256)), "ENAMETOOLONG"),
    "long name rename": (lambda d: os.rename(d / "f", d / ("n" * 256)), "ENAMETOOLONG"),
    "symlink loop": (lambda d: _touch_open(d / "loop1"), "ELOOP"),
    "nofollow symlink": (lambda d: os.open(d / "lnk", os.O_RDONLY | os.O_NOFOLLOW), "ELOOP"),
    "dir into itself": (lambda d: os.rename(d / "full", d / "full" / "sub"), "EINVAL"),
    "file over dir": (lambda d: os.rename(d / "f", d / "dir"), "EISDIR"),
    "dir over file": (lambda d: os.rename(d / "dir", d / "f"), "ENOTDIR"),
    "dir over non-empty": (lambda d: os.rename(d / "dir", d / "full"), "ENOTEMPTY"),
    "rename missing": (lambda d: os.rename(d / "nope", d / "x"), "ENOENT"),
    "link a dir": (lambda d: os.link(d / "dir", d / "dl"), "EPERM"),
    "link existing": (lambda d: os.link(d / "f", d / "g"), "EEXIST"),
    "symlink existing": (lambda d: os.symlink("x", d / "f"), "EEXIST"),
    "readlink regular": (lambda d: os.readlink(d / "f"), "EINVAL"),
    "truncate negative": (lambda d: os.truncate(d / "f", -1), "EINVAL"),
    "truncate a dir": (lambda d: os.truncate(d / "dir", 0), "EISDIR"),
    "noreplace existing": (lambda d: renameat2(d / "f", d / "g", RENAME_NOREPLACE), "EEXIST"),
    "exchange missing": (lambda d: renameat2(d / "f", d / "nope", RENAME_EXCHANGE), "ENOENT"),
    "rename bad flags": (lambda d: renameat2(d / "f", d / "g", RENAME_NOREPLACE
                                             | RENAME_EXCHANGE), "EINVAL"),
    "getxattr missing": (lambda d: os.getxattr(d / "f", "user.nope"), "ENODATA"),
    "removexattr missing": (lambda d: os.removexattr(d / "f", "user.nope"), "ENODATA"),
    "setxattr create existing": (
        lambda d: (os.setxattr(d / "f", "user.a", b"1"),
                   os.setxattr(d / "f", "user.a", b"2", os.XATTR_CREATE)), "EEXIST"),
    "setxattr replace missing": (
        lambda d: os.setxattr(d / "f", "user.b", b"1", os.XATTR_REPLACE), "ENODATA"),
    "user xattr on symlink": (
        lambda d: os.setxattr(d / "lnk", "user.a", b"1", follow_symlinks=False), "EPERM"),
    "rmdir dot": (lambda d: os.rmdir(f"{d}/dir/."), "EINVAL"),  # pathlib would drop the "."
    "opendir a file": (lambda d: os.listdir(d / "f"), "ENOTDIR"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_the_kernels(trees: Trees, case: str) -> None:
    op, expected = ERROR_CASES[case]

    def run(d: Path) -> Any:
        _setup(d)
        r = op(d)
        if hasattr(r, "close"):
            r.close()
        elif isinstance(r, int):
            os.close(r)
        return None

    assert both(trees, run) == ("err", expected)


def test_state_folder_hidden_and_virtual_roots_listed(trees: Trees) -> None:
    mnt, vault = trees.mount.mnt, trees.mount.vault
    names = os.listdir(mnt)
    assert {"q", "related"} <= set(names)
    assert ".memexfs" not in names
    assert (vault / ".memexfs").is_dir()
    assert stat.S_ISREG(os.stat(mnt / ".memexfs").st_mode)  # the control file, by name only
    assert outcome(os.mkdir, mnt / ".memexfs") == ("err", "EEXIST")
    assert outcome(os.listdir, mnt / ".memexfs" / "index") == ("err", "ENOTDIR")
    for entry in os.scandir(mnt):
        assert entry.name != ".memexfs"


def test_read_write_append_fsync(trees: Trees) -> None:
    def run(d: Path) -> Any:
        p = d / "f.bin"
        fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o640)
        try:
            assert os.write(fd, b"\0" + b"x" * 9999) == 10000
            os.fsync(fd)
            os.fdatasync(fd)
            assert os.pwrite(fd, b"MID", 5000) == 3
            assert os.pread(fd, 6, 4998) == b"xxMIDx"
        finally:
            os.close(fd)
        with open(p, "ab") as f:  # O_APPEND: the kernel appends (writeback cache)
            f.write(b"tail")
        fd = os.open(p, os.O_WRONLY | os.O_APPEND)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"END")
        os.close(fd)
        with open(p, "r+b") as f:  # sparse extension
            f.seek(1 << 20)
            f.write(b"\0far")
        with open(d / "w", "wb") as f:  # write-only handle, then truncate through it
            f.write(b"\0abcdef")
            f.truncate(3)
        data = p.read_bytes()
        return len(data), data[-10:], data[9995:10010], (d / "w").read_bytes()

    res = both(trees, run)
    assert res[0] == "ok"
    assert res[1][0] == (1 << 20) + 4
    assert res[1][2] == b"xxxxxtailEND\0\0\0"


def test_truncate_chmod_chown_by_path(trees: Trees) -> None:
    def run(d: Path) -> Any:
        p = d / "f"
        p.write_bytes(b"\0" * 100)
        os.truncate(p, 10)
        os.truncate(p, 50)
        os.chmod(p, 0o751)
        os.chown(p, 12345, 54321)
        os.chmod(d, 0o700)
        os.symlink("f", d / "l")
        os.chown(d / "l", 777, 888, follow_symlinks=False)
        return (stat_sig(os.stat(p)), p.read_bytes(), stat_sig(os.lstat(d / "l")),
                stat_sig(os.stat(d)))

    status, (st, data, lst, dst) = both(trees, run)
    assert status == "ok"
    assert st[1:] == ("0o751", 50, 1, 12345, 54321)
    assert data == b"\0" * 50
    assert lst[-2:] == (777, 888)
    assert dst[1] == "0o700"


def test_ftruncate_and_fchmod_on_open_handle(trees: Trees) -> None:
    def run(d: Path) -> Any:
        fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            os.write(fd, b"\0" * 64)
            os.ftruncate(fd, 8)
            os.fchmod(fd, 0o644)
            os.fchown(fd, 4242, 4343)
            return stat_sig(os.fstat(fd)), os.pread(fd, 100, 0)
        finally:
            os.close(fd)

    status, (st, data) = both(trees, run)
    assert status == "ok"
    assert st[1:] == ("0o644", 8, 1, 4242, 4343)
    assert data == b"\0" * 8


def test_utimens_now_and_omit(trees: Trees) -> None:
    a, b = trees.pair()
    for d in (a, b):
        (d / "f").write_bytes(b"\0")
        os.symlink("f", d / "l")
        utimensat(d / "f", (1_000_000, 111), (2_000_000, 222))
        st = os.stat(d / "f")
        assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000_000_111, 2_000_000_000_000_222)
        utimensat(d / "f", (0, UTIME_OMIT), (3_000_000, 0))  # atime untouched
        st = os.stat(d / "f")
        assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000_000_111, 3_000_000_000_000_000)
        before = time.time_ns() - 10_000_000  # ext4 timestamps come from a coarse clock
        utimensat(d / "f", (0, UTIME_NOW), (0, UTIME_OMIT))
        st = os.stat(d / "f")
        assert before <= st.st_atime_ns <= time.time_ns()
        assert st.st_mtime_ns == 3_000_000_000_000_000
        utimensat(d / "f", (0, UTIME_OMIT), (0, UTIME_NOW))
        st = os.stat(d / "f")
        assert before <= st.st_mtime_ns <= time.time_ns()
        assert before <= st.st_ctime_ns
        utimensat(d / "l", (5, 0), (6, 0), follow=False)  # the link itself, not its target
        lst = os.lstat(d / "l")
        assert (lst.st_atime_ns, lst.st_mtime_ns) == (5_000_000_000, 6_000_000_000)
        assert os.stat(d / "f").st_atime_ns != 5_000_000_000
        os.utime(d, ns=(7, 8))
        assert os.stat(d).st_mtime_ns == 8


def test_rename_flags_and_over_existing(trees: Trees) -> None:
    def run(d: Path) -> Any:
        (d / "a").write_bytes(b"\0A")
        (d / "b").write_bytes(b"\0B")
        (d / "x").mkdir()
        (d / "x" / "inner").write_bytes(b"\0I")
        (d / "y").mkdir()
        renameat2(d / "a", d / "b", RENAME_EXCHANGE)
        swapped = ((d / "a").read_bytes(), (d / "b").read_bytes())
        renameat2(d / "x", d / "y", RENAME_EXCHANGE)  # a dir with a dir
        renameat2(d / "a", d / "c", RENAME_NOREPLACE)
        os.rename(d / "c", d / "b")  # over an existing file
        os.rename(d / "x", d / "z")  # x is the empty one now; then over an empty dir
        os.mkdir(d / "empty")
        os.rename(d / "y", d / "empty")
        renameat2(d / "b", d / "empty" / "b", RENAME_EXCHANGE | 0)  # exchange with nothing
        return swapped

    # the last exchange targets a missing name: both trees must fail the same way
    assert both(trees, run) == ("err", "ENOENT")

    def run2(d: Path) -> Any:
        (d / "a").write_bytes(b"\0A")
        (d / "sub").mkdir()
        fd = os.open(d / "a", os.O_RDONLY)
        os.rename(d / "a", d / "sub" / "moved")
        os.rename(d / "sub", d / "sub2")
        try:
            data = os.pread(fd, 10, 0)  # an open file survives moves of it and its folder
        finally:
            os.close(fd)
        return data, sorted(os.listdir(d)), os.listdir(d / "sub2")

    assert both(trees, run2) == ("ok", (b"\0A", ["sub2"], ["moved"]))


def test_exdev_across_mounts(trees: Trees) -> None:
    a, b = trees.pair()
    (a / "f").write_bytes(b"\0")
    (b / "g").write_bytes(b"\0")
    assert outcome(os.rename, a / "f", b / "f") == ("err", "EXDEV")
    assert outcome(os.rename, b / "g", a / "g") == ("err", "EXDEV")
    assert outcome(os.link, a / "f", b / "h") == ("err", "EXDEV")
    (a / "sub").mkdir()  # /q names are query folders: moving a folder there is refused
    assert outcome(os.rename, a / "sub", trees.mount.mnt / "q" / "sub") == ("err", "EROFS")
    assert (a / "sub").is_dir()


def test_links(trees: Trees) -> None:
    def run(d: Path) -> Any:
        (d / "f").write_bytes(b"\0one")
        os.link(d / "f", d / "h")
        os.symlink("f", d / "s")
        os.symlink("../" + d.name + "/nowhere", d / "dangling")
        os.link(d / "s", d / "hs", follow_symlinks=False)  # a hard link to the symlink itself
        with open(d / "h", "ab") as f:
            f.write(b"two")
        st_f, st_h = os.stat(d / "f"), os.stat(d / "h")
        same = st_f.st_ino == st_h.st_ino and st_f.st_nlink == 2
        os.unlink(d / "f")
        return (same, os.stat(d / "h").st_nlink, (d / "h").read_bytes(), os.readlink(d / "s"),
                os.readlink(d / "hs"), os.path.exists(d / "s"), os.path.lexists(d / "dangling"),
                os.lstat(d / "hs").st_nlink)

    assert both(trees, run) == ("ok", (True, 1, b"\0onetwo", "f", "f", False, True, 2))


def test_unlinked_open_file_keeps_working(trees: Trees) -> None:
    def run(d: Path) -> Any:
        fd = os.open(d / "f", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            os.unlink(d / "f")
            os.write(fd, b"\0ghost")
            os.fsync(fd)
            return os.fstat(fd).st_nlink, os.pread(fd, 10, 0), os.listdir(d)
        finally:
            os.close(fd)

    assert both(trees, run) == ("ok", (0, b"\0ghost", []))


def test_mknod_fifo_and_regular(trees: Trees) -> None:
    def run(d: Path) -> Any:
        os.mkfifo(d / "fifo", 0o640)
        os.mknod(d / "reg", stat.S_IFREG | 0o600)
        fd = os.open(d / "fifo", os.O_RDWR | os.O_NONBLOCK)  # a pipe lives in the kernel
        try:
            os.write(fd, b"through the pipe")
            got = os.read(fd, 100)
        finally:
            os.close(fd)
        return lstat_sig(d / "fifo"), lstat_sig(d / "reg"), got

    status, (fifo, reg, got) = both(trees, run)
    assert status == "ok"
    assert got == b"through the pipe"
    assert fifo[1][0] == stat.S_IFIFO
    assert fifo[1][1] == "0o640"
    assert reg[1][0] == stat.S_IFREG
    assert reg[1][2] == 0


def test_statfs_reports_the_vault(trees: Trees) -> None:
    got, want = os.statvfs(trees.mount.mnt), os.statvfs(trees.mount.vault)
    assert (got.f_bsize, got.f_blocks, got.f_files, got.f_namemax) == (
        want.f_bsize, want.f_blocks, want.f_files, want.f_namemax)
    assert abs(got.f_bfree - want.f_bfree) < want.f_blocks // 100 + 1000


def _user_xattrs(p: Path) -> list[str]:
    """user.* names, without the mount's own user.memex.status (checked separately)."""
    return sorted(n for n in os.listxattr(p) if n.startswith("user.") and n != "user.memex.status")


def test_xattrs_on_files_and_dirs(trees: Trees) -> None:
    def run(d: Path) -> Any:
        (d / "f").write_bytes(b"\0")
        out = []
        for p in (d / "f", d):
            os.setxattr(p, "user.color", b"blue")
            os.setxattr(p, "user.empty", b"")
            os.setxattr(p, "user.color", b"red", os.XATTR_REPLACE)
            os.setxattr(p, "user.new", b"\0bin\xff", os.XATTR_CREATE)
            listed = _user_xattrs(p)
            got = (os.getxattr(p, "user.color"), os.getxattr(p, "user.empty"),
                   os.getxattr(p, "user.new"))
            os.removexattr(p, "user.new")
            out.append((listed, got, _user_xattrs(p)))
        fd = os.open(d / "f", os.O_RDONLY)
        try:
            os.setxattr(fd, "user.viafd", b"1")
            out.append(os.getxattr(fd, "user.viafd"))
        finally:
            os.close(fd)
        return out

    status, res = both(trees, run)
    assert status == "ok"
    assert res[0] == (["user.color", "user.empty", "user.new"], (b"red", b"", b"\0bin\xff"),
                      ["user.color", "user.empty"])
    assert res[2] == b"1"


def test_index_status_xattr_is_listed_and_read_only(trees: Trees) -> None:
    a, _ = trees.pair()
    (a / "doc.bin").write_bytes(b"\0binary")
    trees.mount.wait_idle(timeout=120)
    assert "user.memex.status" in os.listxattr(a / "doc.bin")
    assert os.getxattr(a / "doc.bin", "user.memex.status") in (b"indexed", b"metadata-only")
    assert outcome(os.setxattr, a / "doc.bin", "user.memex.status", b"x") == ("err", "EPERM")
    assert outcome(os.removexattr, a / "doc.bin", "user.memex.status") == ("err", "EPERM")
    assert "user.memex.status" not in os.listxattr(a)  # folders carry no index status


def test_symlink_xattrs_not_confused_with_proc_links(trees: Trees) -> None:
    """A symlink's xattr listing is the symlink's own (not /proc's or the target's)."""
    def run(d: Path) -> Any:
        (d / "f").write_bytes(b"\0")
        os.setxattr(d / "f", "user.t", b"target")
        os.symlink("f", d / "l")
        return (sorted(n for n in os.listxattr(d / "l", follow_symlinks=False)
                       if n.startswith("user.")),
                outcome(os.getxattr, d / "l", "user.t", follow_symlinks=False),
                os.getxattr(d / "l", "user.t"))

    assert both(trees, run) == ("ok", ([], ("err", "ENODATA"), b"target"))


def test_readdir_plus_matches(trees: Trees) -> None:
    def run(d: Path) -> Any:
        for i in range(300):
            (d / f"file-{i:03d}").write_bytes(b"\0")
        for i in range(20):
            (d / f"dir-{i}").mkdir()
        os.symlink("file-000", d / "link")
        os.mkfifo(d / "pipe")
        entries = []
        with os.scandir(d) as it:
            for e in it:
                st = os.lstat(e.path)
                entries.append((e.name, e.is_dir(follow_symlinks=False),
                                e.is_symlink(), e.is_file(follow_symlinks=False),
                                e.inode() == st.st_ino))
        os.unlink(d / "file-005")
        os.rmdir(d / "dir-3")
        return sorted(entries), sorted(os.listdir(d))

    status, (entries, after) = both(trees, run)
    assert status == "ok"
    assert len(entries) == 322
    assert all(e[-1] for e in entries)
    assert len(after) == 320
    assert "file-005" not in after


def test_readdir_sees_changes_while_open(trees: Trees) -> None:
    """A directory stream opened before an unlink must not return the removed entry twice or
    crash; what it returns is a subset of the names (POSIX leaves it unspecified)."""
    a, _ = trees.pair()
    for i in range(50):
        (a / f"n{i}").write_bytes(b"\0")
    with os.scandir(a) as it:
        first = next(it).name
        for i in range(50):
            if f"n{i}" != first:
                os.unlink(a / f"n{i}")
        rest = [e.name for e in it]
    assert len(set(rest)) == len(rest)
    assert first not in rest
    assert os.listdir(a) == [first]


def test_mmap_shared_write_is_read_back(trees: Trees) -> None:
    def run(d: Path) -> Any:
        p = d / "m"
        p.write_bytes(b"\0" * 8192)
        with open(p, "r+b") as f:
            mm = mmap.mmap(f.fileno(), 8192)
            mm[100:105] = b"hello"
            mm.flush()
            mm.close()
        with open(p, "rb") as f:
            return f.read()[98:107]

    assert both(trees, run) == ("ok", b"\0\0hello\0\0")


def test_created_objects_belong_to_root_caller(trees: Trees) -> None:
    a, b = trees.pair()
    for d in (a, b):
        os.mkdir(d / "d", 0o2775)  # Linux strips S_ISGID from mkdir's mode...
        assert not os.stat(d / "d").st_mode & stat.S_ISGID
        os.chmod(d / "d", 0o2775)  # ...chmod sets it
        (d / "d" / "f").write_bytes(b"\0")
    st_d, st_f = os.stat(a / "d"), os.stat(a / "d" / "f")
    assert (st_d.st_uid, st_d.st_gid, st_f.st_uid, st_f.st_gid) == (0, 0, 0, 0)
    assert st_d.st_mode & stat.S_ISGID
    assert tree_snapshot(a) == tree_snapshot(b)
    vst = os.stat(trees.mount.vault / a.name / "d" / "f")
    assert (vst.st_uid, vst.st_gid) == (0, 0)


def test_daemon_log_has_no_errors(trees: Trees) -> None:
    """Nothing above was a bug: the boundary logged no traceback."""
    assert outcome(os.stat, trees.mount.mnt / "nope") == ("err", "ENOENT")
    text = trees.mount.log_text()
    assert "Traceback" not in text, text[-4000:]
    assert "failed unexpectedly" not in text, text[-4000:]
