"""Who owns what the operations make, and the set-id bits an unprivileged O_TRUNC clears.

The daemon runs as root: a new object must become the caller's (group from a setgid parent),
with exactly the mode the kernel passed (the caller's umask is already applied; the daemon's
own must not apply twice), and truncating by open(O_TRUNC) must drop set-id bits as truncate(2)
does for an unprivileged caller, although we truncate as root.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator

import pytest

from tests.fakes import request_context
from tests.ops.conftest import Ops

pytestmark = [pytest.mark.trio, pytest.mark.timeout(30),
              pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's chown needs root")]

USER, GROUP, OTHER_GROUP = 4321, 4321, 4242
NOT_RUNNING = 2**22 + 17  # no such pid: its supplementary groups are unknown (not a member)


@pytest.fixture
def daemon_umask() -> Iterator[None]:
    old = os.umask(0o077)  # what the daemon runs with (mount.daemon.STATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("daemon_umask")
async def test_a_new_file_is_the_callers_with_the_mode_asked(env: Ops) -> None:
    caller = request_context(USER, GROUP, NOT_RUNNING)
    fh = await env.create("d/mine.txt", 0o664, ctx=caller)
    await env.ops.release(fh)
    st = (env.vault / "d" / "mine.txt").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (USER, GROUP, 0o664)


@pytest.mark.usefixtures("daemon_umask")
async def test_a_setgid_folder_gives_its_group_and_setgid_to_new_folders(env: Ops) -> None:
    os.chown(env.vault / "d", 0, OTHER_GROUP)
    os.chmod(env.vault / "d", 0o2775)
    caller = request_context(USER, GROUP, NOT_RUNNING)
    fh = await env.create("d/f2.txt", 0o644, ctx=caller)
    await env.ops.release(fh)
    d = await env.inode("d")
    await env.ops.mkdir(d, b"sub", stat.S_IFDIR | 0o755, caller)  # type: ignore[arg-type]
    f = (env.vault / "d" / "f2.txt").stat()
    sub = (env.vault / "d" / "sub").stat()
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (USER, OTHER_GROUP, 0o644)
    assert (sub.st_uid, sub.st_gid, stat.S_IMODE(sub.st_mode)) == (USER, OTHER_GROUP, 0o2755)


# (file mode, file group, caller uid, caller gid, mode after open(O_TRUNC))
TRUNC_CASES = {
    "setuid and setgid+group-exec, by a user": (0o6755, 0, USER, GROUP, 0o755),
    "setuid, by a user": (0o4644, 0, USER, GROUP, 0o644),
    "setgid without group-exec, by a member": (0o2644, GROUP, USER, GROUP, 0o2644),
    "setgid without group-exec, by a non-member": (0o2644, OTHER_GROUP, USER, GROUP, 0o644),
    "setgid with group-exec, by a member": (0o2754, GROUP, USER, GROUP, 0o754),
    "set-id kept for root": (0o6755, 0, 0, 0, 0o6755),
}


@pytest.mark.parametrize("case", list(TRUNC_CASES))
async def test_open_o_trunc_clears_set_id_bits_like_truncate(env: Ops, case: str) -> None:
    mode, gid, uid, cgid, want = TRUNC_CASES[case]
    f = env.vault / "d" / "f.txt"
    os.chown(f, 0, gid)
    os.chmod(f, mode)
    fh = await env.open("d/f.txt", os.O_WRONLY | os.O_TRUNC,
                        ctx=request_context(uid, cgid, NOT_RUNNING))
    await env.ops.release(fh)
    assert oct(stat.S_IMODE(f.stat().st_mode)) == oct(want)
    assert f.stat().st_size == 0


async def test_o_trunc_through_create_of_an_existing_file_clears_them_too(env: Ops) -> None:
    """A file made in the vault behind the kernel's back is opened, not taken over."""
    f = env.vault / "d" / "f.txt"
    os.chmod(f, 0o4755)
    fh = await env.create("d/f.txt", 0o600, os.O_WRONLY | os.O_TRUNC,
                          ctx=request_context(USER, GROUP, NOT_RUNNING))
    await env.ops.release(fh)
    st = f.stat()
    assert (st.st_uid, oct(stat.S_IMODE(st.st_mode)), st.st_size) == (0, oct(0o755), 0)


@pytest.fixture
def member_pid() -> Iterator[int]:
    """A live process whose supplementary groups include OTHER_GROUP."""
    proc = subprocess.Popen(["sleep", "60"], extra_groups=[OTHER_GROUP])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


async def test_supplementary_groups_of_the_caller_count(env: Ops, member_pid: int) -> None:
    """Membership through a supplementary group (read from the caller's pid) keeps S_ISGID."""
    f = env.vault / "d" / "f.txt"
    os.chown(f, 0, OTHER_GROUP)
    os.chmod(f, 0o2644)
    fh = await env.open("d/f.txt", os.O_WRONLY | os.O_TRUNC,
                        ctx=request_context(USER, GROUP, member_pid))
    await env.ops.release(fh)
    assert oct(stat.S_IMODE(f.stat().st_mode)) == oct(0o2644)
