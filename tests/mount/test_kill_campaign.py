"""kill -9 of the daemon at random moments of an invalidation storm never leaves a hung mount.

Each round mounts the vault (watching it), starts three writers that create+fsync small files in one
folder through the mount, a writer that changes files in the same folder directly in the vault
(so the daemon sends reverse invalidations for that folder while creates in it are pending), and a
loop that lists a query folder; then SIGKILLs the daemon after 1.5–5 s. Before the supervisor, 1 in
2–10 kills left the daemon a zombie with a thread stuck in ``fuse_reverse_inval_entry`` and the
writers in D state until someone wrote to the connection's ``abort`` file.

After each kill: no load process stays in D state, the daemon is reaped, the mount is gone, every
fsynced byte is in the vault; then a remount reconciles and ``memexfs check`` is clean.

``make test`` runs a few rounds; ``MEMEXFS_KILL_ROUNDS=50`` makes it the campaign.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.mount.trees import run_check
from tests.mounting import (
    force_unmount,
    is_mounted,
    mounted,
    process_state,
    stuck_threads,
)
from tests.waiting import wait_until

ROUNDS = int(os.environ.get("MEMEXFS_KILL_ROUNDS", "6"))
GRACE_S = 5.0  # "a few seconds": a D state that outlives this is a hang
QUERY = "invoice payment"

pytestmark = [pytest.mark.mount, pytest.mark.slow, pytest.mark.timeout(180 + 45 * ROUNDS)]

WRITER = r"""
import hashlib, os, random, sys
folder, manifest, tag = sys.argv[1], sys.argv[2], sys.argv[3]
rng = random.Random(tag)
words = "invoice payment vendor budget travel report meeting contract quarter review".split()
with open(manifest, "a") as man:
    for i in range(100000):
        name = f"{tag}-{i:05d}.txt"
        data = (" ".join(rng.choice(words) for _ in range(rng.randint(20, 300))) + "\n").encode()
        try:
            fd = os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                assert os.write(fd, data) == len(data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            sys.exit(f"{name}: {exc}")
        man.write(f"{name}\t{hashlib.sha256(data).hexdigest()}\n")
        man.flush()
"""

OUTSIDE = r"""
import os, sys, time
folder = sys.argv[1]
for i in range(1000000):
    with open(os.path.join(folder, f"out-{i % 200:03d}.txt"), "w") as f:
        f.write(f"vendor report {i}\n" * (1 + i % 7))
    time.sleep(0.002)
"""

LISTER = r"""
import errno, os, sys, time
while True:
    for p in sys.argv[1:]:
        try:
            os.listdir(p)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTCONN, errno.ECONNABORTED):
                sys.exit(0)  # the mount is gone
            time.sleep(0.01)  # EIO while the index loads is not what this test is about
"""


# The daemon with one change: a create of ``stall-*`` first asks the kernel to invalidate an entry
# of the same folder, then takes 30 s to answer. The kernel's invalidation waits for the folder's
# lock, which the pending create holds: the exact state in which a kill -9 used to hang the mount.
STALLING_DAEMON = r"""
import sys
import pyfuse3, trio
from memexfs import cli
from mount import ops

create = ops.MemexOperations.create

async def stalling_create(self, parent_inode, name, mode, flags, ctx):
    if name.startswith(b"stall-"):
        pyfuse3.invalidate_entry_async(parent_inode, b"other.txt", ignore_enoent=True)
        await trio.sleep(30)
    return await create(self, parent_inode, name, mode, flags, ctx)

ops.MemexOperations.create = stalling_create
sys.exit(cli.main(sys.argv[1:]))
"""

CREATE = r"""
import os, sys
try:
    os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644))
except OSError as exc:
    sys.exit(str(exc))
"""


@dataclass
class Tally:
    rounds: int = 0
    hangs: list[str] = field(default_factory=list)
    files: int = 0
    lost_bytes: int = 0
    lost_files: list[str] = field(default_factory=list)
    recover_s: list[float] = field(default_factory=list)
    supervisor_recoveries: int = 0
    deadlocks_freed: int = 0  # kills that left a daemon thread stuck in the kernel


def _spawn(code: str, *args: str | Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", code, *map(str, args)],
                                stdout=out, stderr=out, cwd="/")


def _settle(procs: list[subprocess.Popen[bytes]], daemon: subprocess.Popen[bytes],
            mnt: Path) -> list[str]:
    """Wait up to GRACE_S for the load to exit, the daemon to be reaped and the mount to go;
    describe whatever did not (a process in D state, a zombie daemon, a mount left)."""
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        if (all(p.poll() is not None for p in procs) and daemon.poll() is not None
                and not is_mounted(str(mnt))):
            return []
        time.sleep(0.02)
    problems = []
    for p in [daemon, *procs]:
        if p.poll() is None:
            problems.append(f"pid {p.pid} state {process_state(p.pid)} "
                            f"stuck {stuck_threads(p.pid)}")
    if is_mounted(str(mnt)):
        problems.append("mount still attached")
    return problems


def _verify(vault: Path, manifests: list[Path], tally: Tally) -> None:
    for man in manifests:
        for line in man.read_text().splitlines():
            name, digest = line.split("\t")
            tally.files += 1
            path = vault / "w" / name
            data = path.read_bytes() if path.exists() else b""
            if hashlib.sha256(data).hexdigest() != digest:
                tally.lost_files.append(name)
                tally.lost_bytes += max(len(data), 1)


def _kill_round(vault: Path, mnt: Path, work: Path, rnd: int, rng: random.Random,
                tally: Tally) -> None:
    log = work / f"load-{rnd}.log"
    manifests = [work / f"r{rnd}w{k}.manifest" for k in range(3)]
    with mounted(vault, mnt, timeout=120) as m:
        m.wait_idle(timeout=240)  # the remount after the last kill reconciled it all
        (mnt / "w").mkdir(exist_ok=True)
        load = [_spawn(WRITER, mnt / "w", man, f"r{rnd}w{k}", log=log)
                for k, man in enumerate(manifests)]
        load.append(_spawn(LISTER, mnt / "q" / QUERY, mnt / "w", log=log))
        outside = _spawn(OUTSIDE, vault / "w", log=log)
        try:
            wait_until(lambda: all(man.exists() and man.stat().st_size for man in manifests),
                      30, f"writers made no progress:\n{log.read_text()}")
            time.sleep(rng.uniform(1.5, 5.0))
            assert m.proc.poll() is None, f"daemon died before the kill:\n{m.log_text()}"
            m.proc.kill()
            t0 = time.monotonic()
            problems = _settle(load, m.proc, mnt)
            tally.recover_s.append(time.monotonic() - t0)
            if problems:
                tally.hangs.append(f"round {rnd}: {problems}")
        finally:
            outside.kill()
            outside.wait()
            if is_mounted(str(mnt)):
                force_unmount(mnt)  # free a hang so the campaign (and the next test) go on
            for p in load:
                if p.poll() is None:
                    p.kill()
                p.wait(timeout=30)
            m.proc.wait(timeout=30)
    tally.supervisor_recoveries += "died without unmounting" in m.log_text()
    tally.deadlocks_freed += "stuck in" in m.log_text()
    _verify(vault, manifests, tally)
    for f in (vault / "w").glob(f"r{rnd}w*"):
        f.unlink()  # keep the vault small: the remount reconciles the removal, not 500 new files
    tally.rounds += 1


def test_kill9_during_invalidation_storms(tmp_path: Path) -> None:
    vault, mnt, work = tmp_path / "vault", tmp_path / "mnt", tmp_path / "work"
    work.mkdir()
    vault.mkdir()
    (vault / "w").mkdir()
    rng = random.Random(int(os.environ.get("MEMEXFS_KILL_SEED", "14")))
    tally = Tally()
    for rnd in range(ROUNDS):
        _kill_round(vault, mnt, work, rnd, rng, tally)
        with mounted(vault, mnt, "--no-watch", timeout=120) as m:  # remount, reconcile
            st = m.wait_idle(timeout=240)
            assert st["state"] == "idle", st
        res = run_check(vault)
        assert res.returncode == 0, f"round {rnd}: {res.stdout[-2000:]}{res.stderr[-2000:]}"
        assert res.stdout.strip().endswith("0 problem(s)"), res.stdout[-2000:]
    summary = {"rounds": tally.rounds, "hangs": len(tally.hangs), "fsynced_files": tally.files,
               "lost_files": len(tally.lost_files), "lost_bytes": tally.lost_bytes,
               "supervisor_recoveries": tally.supervisor_recoveries,
               "deadlocks_freed": tally.deadlocks_freed,
               "max_recover_s": round(max(tally.recover_s), 3)}
    print(f"kill campaign: {json.dumps(summary)}")
    assert not tally.hangs, tally.hangs
    assert not tally.lost_files, tally.lost_files[:20]
    assert tally.files > 0


def test_kill9_while_an_invalidation_waits_on_a_pending_create(tmp_path: Path) -> None:
    """Deterministic: the daemon dies with a thread stuck in ``fuse_reverse_inval_entry``."""
    vault, mnt, log = tmp_path / "vault", tmp_path / "mnt", tmp_path / "load.log"
    (vault / "w").mkdir(parents=True)
    with mounted(vault, mnt, "--no-watch",
                 program=[sys.executable, "-c", STALLING_DAEMON]) as m:
        creators = [_spawn(CREATE, mnt / "w" / "stall-1", log=log)]
        wait_until(lambda: bool(stuck_threads(m.proc.pid)), 10,
                  "the invalidation never waited on the folder lock")
        creators.append(_spawn(CREATE, mnt / "w" / "plain.txt", log=log))  # waits for the lock
        wait_until(lambda: process_state(creators[1].pid) == "D", 10, "no second creator waits")
        m.proc.kill()
        try:
            assert _settle(creators, m.proc, mnt) == []
        finally:
            force_unmount(mnt)
            for p in creators:
                p.kill()
                p.wait(timeout=30)
    assert "stuck in fuse_reverse_inval_entry" in m.log_text()
    with mounted(vault, mnt, "--no-watch") as m:  # and the vault mounts again
        assert (mnt / "w").is_dir()
