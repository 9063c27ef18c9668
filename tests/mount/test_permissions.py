"""Permissions through an ``--allow-other`` mount (which adds ``default_permissions``).

The daemon runs as root, so it is the kernel's permission check, and the daemon handing new
objects to the caller, that make the mount behave like ext4 for other users. Every check runs as an
unprivileged user in a forked child, on the mount and on a plain directory, and must agree.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mount.posix import UTIME_NOW, outcome, stat_sig, utimensat
from tests.mount.trees import Trees, assert_consistent, settle
from tests.mount.users import as_user
from tests.mounting import mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(120)]

USER, GROUP = 12345, 12345  # made-up ids: no passwd entry needed
OTHER_GROUP = 4242
PROTECTED_HARDLINKS = Path("/proc/sys/fs/protected_hardlinks").read_text().strip() == "1"


@pytest.fixture(scope="module")
def trees() -> Iterator[Trees]:
    """Under a world-traversable base (pytest's tmp root is 0700, which would stop the user
    before it reaches the mount)."""
    base = Path(tempfile.mkdtemp(prefix="memexfs-perm-"))
    try:
        base.chmod(0o755)
        ref = base / "ref"
        ref.mkdir(mode=0o755)
        (base / "vault").mkdir(mode=0o755)
        with mounted(base / "vault", base / "mnt", "--no-watch", "--allow-other") as m:
            yield Trees(m, ref)
            assert m.proc.poll() is None, m.log_text()
            settle(m)
        assert_consistent(base / "vault")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def both_as_user(trees: Trees, setup: Callable[[Path], None], fn: Callable[[Path], Any],
                 uid: int = USER, gid: int = GROUP) -> tuple[str, Any]:
    """``setup`` as root, then ``fn`` as the user, in a fresh folder of each tree; equal."""
    a, b = trees.pair("p")
    results = []
    for d in (a, b):
        d.chmod(0o755)
        setup(d)
        results.append(as_user(uid, gid, fn, d))
    assert results[0] == results[1], f"mount {results[0]} != reference {results[1]}"
    return results[0]


def _user_dir(d: Path) -> None:
    os.mkdir(d / "mine", 0o755)
    os.chown(d / "mine", USER, GROUP)


def test_new_objects_belong_to_the_caller(trees: Trees) -> None:
    def fn(d: Path) -> Any:
        m = d / "mine"
        with open(m / "file", "wb") as f:
            f.write(b"\0")
        os.mkdir(m / "sub")
        os.symlink("file", m / "link")
        os.mkfifo(m / "fifo")
        os.mknod(m / "node", stat.S_IFREG | 0o640)
        os.link(m / "file", m / "hard")
        return {n: stat_sig(os.lstat(m / n)) for n in sorted(os.listdir(m))}

    status, sigs = both_as_user(trees, _user_dir, fn)
    assert status == "ok"
    assert len(sigs) == 6
    for name, sig in sigs.items():
        assert sig[-2:] == (USER, GROUP), name
    assert sigs["file"][1] == "0o644"  # the caller's umask (022) applied by the kernel


def test_vault_files_get_the_callers_ids(trees: Trees) -> None:
    a, _ = trees.pair("p")
    a.chmod(0o755)
    _user_dir(a)

    def fn(d: Path) -> None:
        (d / "mine" / "x").write_bytes(b"\0")

    assert as_user(USER, GROUP, fn, a) == ("ok", None)
    st = os.stat(trees.mount.vault / a.name / "mine" / "x")
    assert (st.st_uid, st.st_gid) == (USER, GROUP)


def _root_files(d: Path) -> None:
    (d / "secret").write_bytes(b"\0secret")
    (d / "secret").chmod(0o600)
    (d / "public").write_bytes(b"\0public")
    (d / "public").chmod(0o644)
    (d / "shared").write_bytes(b"\0shared")
    (d / "shared").chmod(0o666)
    os.mkdir(d / "closed", 0o700)
    (d / "closed" / "inside").write_bytes(b"\0")
    os.mkdir(d / "sticky")
    os.chmod(d / "sticky", 0o1777)  # mkdir's mode would pass through the umask
    (d / "sticky" / "roots").write_bytes(b"\0")
    _user_dir(d)


CASES: dict[str, tuple[Callable[[Path], Any], str | None]] = {
    "read 0600 root file": (lambda d: (d / "secret").read_bytes(), "EACCES"),
    "write 0644 root file": (lambda d: (d / "public").write_bytes(b"x"), "EACCES"),
    "read 0644 root file": (lambda d: (d / "public").read_bytes(), None),
    "write 0666 root file": (lambda d: (d / "shared").write_bytes(b"\0y"), None),
    "create in root dir": (lambda d: (d / "new").write_bytes(b"\0"), "EACCES"),
    "mkdir in root dir": (lambda d: os.mkdir(d / "newdir"), "EACCES"),
    "unlink in root dir": (lambda d: os.unlink(d / "public"), "EACCES"),
    "rename in root dir": (lambda d: os.rename(d / "public", d / "p2"), "EACCES"),
    "traverse 0700 dir": (lambda d: os.stat(d / "closed" / "inside"), "EACCES"),
    "list 0700 dir": (lambda d: os.listdir(d / "closed"), "EACCES"),
    "chmod root file": (lambda d: os.chmod(d / "shared", 0o777), "EPERM"),
    "chown root file": (lambda d: os.chown(d / "shared", USER, GROUP), "EPERM"),
    "set times on root file": (lambda d: os.utime(d / "shared", (1, 2)), "EPERM"),
    "touch writable root file": (
        lambda d: utimensat(d / "shared", (0, UTIME_NOW), (0, UTIME_NOW)), None),
    "truncate root file": (lambda d: os.truncate(d / "public", 0), "EACCES"),
    "setxattr on root file": (lambda d: os.setxattr(d / "public", "user.a", b"1"), "EACCES"),
    "unlink others' file in sticky dir": (lambda d: os.unlink(d / "sticky" / "roots"), "EPERM"),
    "hard link to root 0600 file": (lambda d: os.link(d / "secret", d / "mine" / "l"),
                                    "EPERM" if PROTECTED_HARDLINKS else None),
    "give own file away": (
        lambda d: ((d / "mine" / "f").write_bytes(b"\0"), os.chown(d / "mine" / "f", 0, 0)),
        "EPERM"),
    "chmod own file": (
        lambda d: ((d / "mine" / "g").write_bytes(b"\0"), os.chmod(d / "mine" / "g", 0o600),
                   stat_sig(os.stat(d / "mine" / "g"))[1])[-1], None),
    "setgid on own file, not in group": (
        lambda d: ((d / "mine" / "h").write_bytes(b"\0"), os.chown(d / "mine" / "h", -1, GROUP),
                   os.chmod(d / "mine" / "h", 0o2755),
                   oct(os.stat(d / "mine" / "h").st_mode & 0o7777))[-1], None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_permission_checks_match_ext4(trees: Trees, case: str) -> None:
    fn, expected = CASES[case]
    status, value = both_as_user(trees, _root_files, fn)
    if expected is None:
        assert status == "ok", value
    else:
        assert (status, value) == ("err", expected)


def _setgid_dir(d: Path) -> None:
    os.mkdir(d / "team", 0o777)
    os.chown(d / "team", 0, OTHER_GROUP)
    os.chmod(d / "team", 0o2777)


def test_setgid_dir_gives_its_group_and_setgid_to_new_dirs(trees: Trees) -> None:
    def fn(d: Path) -> Any:
        t = d / "team"
        (t / "file").write_bytes(b"\0")
        os.mkdir(t / "sub", 0o755)
        os.mkdir(t / "sub" / "deeper", 0o755)
        fd = os.open(t / "sgid-file", os.O_CREAT | os.O_WRONLY, 0o2755)  # not in OTHER_GROUP
        os.close(fd)
        return {n: (os.stat(p).st_uid, os.stat(p).st_gid, oct(os.stat(p).st_mode & 0o7777))
                for n, p in (("file", t / "file"), ("sub", t / "sub"),
                             ("deeper", t / "sub" / "deeper"), ("sgid-file", t / "sgid-file"))}

    status, got = both_as_user(trees, _setgid_dir, fn)
    assert status == "ok"
    assert got["file"] == (USER, OTHER_GROUP, "0o644")
    assert got["sub"] == (USER, OTHER_GROUP, "0o2755")  # new dirs inherit S_ISGID
    assert got["deeper"] == (USER, OTHER_GROUP, "0o2755")
    assert got["sgid-file"] == (USER, OTHER_GROUP, "0o755")  # kernel strips it: not a member


def test_setgid_file_kept_for_group_member(trees: Trees) -> None:
    """A member of the dir's group keeps S_ISGID on create, though the daemon chowns the file."""
    def fn(d: Path) -> Any:
        fd = os.open(d / "team" / "tool", os.O_CREAT | os.O_WRONLY, 0o2755)
        os.close(fd)
        st = os.stat(d / "team" / "tool")
        return st.st_gid, oct(st.st_mode & 0o7777)

    a, b = trees.pair("p")
    got = []
    for d in (a, b):
        d.chmod(0o755)
        _setgid_dir(d)
        got.append(as_user(USER, GROUP, fn, d, groups=(OTHER_GROUP,)))
    assert got[0] == got[1] == ("ok", (OTHER_GROUP, "0o2755"))


def test_other_users_cannot_read_the_control_file(trees: Trees) -> None:
    ctl = trees.mount.mnt / ".memexfs"
    got = as_user(USER, GROUP, os.getxattr, ctl, "user.memex.stats")
    assert got[0] == "err"
    assert got[1] in ("EACCES", "EPERM")
    assert outcome(os.getxattr, ctl, "user.memex.stats")[0] == "ok"  # the owner can
