"""Through a real mount: the mount-helper chain (mount.fuse3 -> ``memexfs SRC MNT -o ...``,
argv[0] ``mount.fuse.memexfs``), -o options, a non-empty mountpoint, and ``search``/``related``
given a mountpoint or a path inside it (absolute paths, ``-q``, grammar errors rc 2)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mounting import REPO, force_unmount, is_mounted, memexfs_cmd, one_line
from tests.waiting import eventually, pid_alive

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]
VENV_BIN = Path(memexfs_cmd()[0]).parent


def run(*args: str, env: dict[str, str] | None = None,
        prog: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prog or memexfs_cmd()), *args], capture_output=True, text=True,
                          timeout=180, cwd=REPO, env=env)


def source_of(mnt: Path) -> tuple[str, str] | None:
    """(fstype, source) of the mount on ``mnt`` from /proc/self/mountinfo."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == str(mnt):
                fstype, source = line.split(" - ", 1)[1].split()[:2]
                return fstype, source
    return None


@pytest.fixture
def place(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    vault, mnt = tmp_path / "vault", tmp_path / "mnt"
    (vault / "bills").mkdir(parents=True)
    mnt.mkdir()
    (vault / "bills" / "electricity.txt").write_text(
        "Electricity bill from Volta Power, March 2024. Amount due 84.20 EUR.\n")
    (vault / "garden.md").write_text("Planting tomatoes and basil in the garden this spring.\n")
    yield vault.resolve(), mnt.resolve()
    lock = vault / ".memexfs" / "lock"
    pid = int(lock.read_text().strip() or 0) if lock.exists() else 0
    if is_mounted(str(mnt)):
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True, timeout=15)
    if pid and not eventually(lambda: not pid_alive(pid), 10):
        os.kill(pid, signal.SIGKILL)
    force_unmount(mnt)


def wait_idle(mnt: Path) -> None:
    res = run("status", str(mnt), "--wait", "--timeout", "240")
    assert res.returncode == 0, res.stderr


def test_mount_fuse3_runs_memexfs_src_mnt_o(place: tuple[Path, Path], tmp_path: Path) -> None:
    """What ``mount -t fuse.memexfs VAULT MNT -o allow_other`` (and the fstab line) runs."""
    helper = shutil.which("mount.fuse3") or "/sbin/mount.fuse3"
    if not os.path.exists(helper):
        pytest.skip("mount.fuse3 is not installed")
    vault, mnt = place
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "memexfs").symlink_to(VENV_BIN / "memexfs")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    res = subprocess.run([helper, str(vault), str(mnt), "-o", "rw,allow_other,noauto,_netdev",
                          "-t", "fuse.memexfs"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert source_of(mnt) == ("fuse.memexfs", str(vault))
    assert "allow_other" in Path("/proc/self/mountinfo").read_text()
    assert run("umount", str(mnt)).returncode == 0
    assert not is_mounted(str(mnt))


def test_mount8_with_memexfs_on_the_default_path(place: tuple[Path, Path]) -> None:
    """mount(8) runs helpers with a fixed PATH: this needs ``make install`` (as root)."""
    found = [d for d in ("/usr/local/bin", "/usr/bin", "/bin") if Path(d, "memexfs").exists()]
    if not found:
        pytest.skip("memexfs is not installed on mount(8)'s PATH (/usr/local/bin)")
    vault, mnt = place
    res = subprocess.run(["mount", "-t", "fuse.memexfs", str(vault), str(mnt), "-o",
                          "allow_other"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert source_of(mnt) == ("fuse.memexfs", str(vault))
    assert subprocess.run(["umount", str(mnt)], timeout=60).returncode == 0


def test_argv0_mount_helper(place: tuple[Path, Path], tmp_path: Path) -> None:
    vault, mnt = place
    helper = tmp_path / "mount.fuse.memexfs"
    helper.symlink_to(VENV_BIN / "memexfs")
    res = run(str(vault), str(mnt), "-n", "-o", "rw,no_watch,x-systemd.automount",
              prog=[str(helper)])
    assert res.returncode == 0, res.stderr
    assert source_of(mnt) == ("fuse.memexfs", str(vault))


def test_nonempty_mountpoint_is_refused_unless_asked(place: tuple[Path, Path]) -> None:
    vault, mnt = place
    (mnt / "mine.txt").write_text("hidden by a mount")
    line = one_line(run("mount", str(vault), str(mnt)), 1)
    assert "not empty" in line
    assert "--nonempty" in line
    assert not is_mounted(str(mnt))
    assert run("mount", str(vault), str(mnt), "--nonempty").returncode == 0
    assert is_mounted(str(mnt))


def test_search_and_related_through_a_mountpoint(place: tuple[Path, Path]) -> None:
    vault, mnt = place
    assert run("mount", str(vault), str(mnt)).returncode == 0
    wait_idle(mnt)
    for where in (mnt, mnt / "bills", vault):
        res = run("search", str(where), "electricity bill", "--paths")
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines()[0] == str(vault / "bills" / "electricity.txt")
    rel = run("search", str(mnt), "electricity bill", "--relative", "-k", "1")
    assert rel.stdout.split()[-1] == "bills/electricity.txt"
    nul = run("search", str(mnt), "electricity bill", "-0")
    assert nul.stdout.split("\0")[0] == str(vault / "bills" / "electricity.txt")
    assert run("search", str(mnt), "qwxzv plorbnik frumious", "-q").returncode == 1
    assert run("search", str(mnt), "electricity bill", "-q").stdout == ""
    line = one_line(run("search", str(mnt), "after:2023-13"), 2)
    assert "month must be in 1..12" in line
    got = run("related", str(mnt), str(mnt / "garden.md"), "--json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["results"] == [] or all(
        r["abs_path"].startswith(str(vault)) for r in json.loads(got.stdout)["results"])
    folder = one_line(run("related", str(mnt), str(mnt / "bills")), 1)
    assert "is a folder" in folder


def test_search_on_a_hung_mount_recovers_instead_of_hanging(place: tuple[Path, Path]) -> None:
    """The mountpoint is never stat'ed on the command's own thread: a stopped daemon is found
    by name, probed in a child, and detached with one line."""
    vault, mnt = place
    assert run("mount", "--no-watch", str(vault), str(mnt)).returncode == 0
    pid = int(json.loads((vault / ".memexfs" / "mount.json").read_text())["pid"])
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        res = run("search", str(mnt), "electricity bill")
        took = time.monotonic() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "does not answer" in one_line(res, 1)
    assert took < 15, took
    assert not is_mounted(str(mnt))
