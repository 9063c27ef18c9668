"""Random sequences of file operations, applied to the mount and to a plain directory alike.

Hypothesis drives a state machine over a tiny namespace (three names, nested two deep) so names
collide often: renames over files and folders, links to things that vanish, ENOTDIR/EISDIR/
ENOTEMPTY paths. After every step the two trees must hold the same entries, modes, owners, sizes,
link counts, bytes and link targets; every step's result or errno must match. One mount serves the
whole run; each example works in a fresh folder of both trees; ``memexfs check`` runs at the end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.mount.posix import (
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    lstat_sig,
    outcome,
    renameat2,
    stat_sig,
    tree_snapshot,
)
from tests.mount.trees import Trees, run_check
from tests.mounting import mounted

pytestmark = [pytest.mark.mount]
# Reproducible by default; MEMEXFS_FUZZ_EXAMPLES=500 explores fresh random sequences instead.
FUZZ_EXAMPLES = int(os.environ.get("MEMEXFS_FUZZ_EXAMPLES", "0"))

NAMES = ("a", "b", "c")
PATHS = [d + n for d in ("", "a/", "b/", "a/b/") for n in NAMES]
paths = st.sampled_from(PATHS)
dirs = st.sampled_from(["", "a", "b", "a/b", "c"])
# A leading NUL keeps every file binary: the indexer only records metadata for it (cheap).
data = st.binary(max_size=48).map(lambda b: b"\0" + b)
modes = st.sampled_from([0o644, 0o600, 0o755, 0o700, 0o444, 0o000, 0o1777, 0o2755, 0o4755])
link_targets = st.sampled_from(["a", "b/c", "../a", "nowhere", "a/b", "/abs/olute", "c"])
times_ns = st.integers(min_value=0, max_value=4_000_000_000).map(lambda s: s * 1_000_000_007)


class PosixModel(RuleBasedStateMachine):
    trees: Trees  # set by the test before the machine runs
    checks = 0  # tree comparisons made, over all examples

    def __init__(self) -> None:
        super().__init__()
        self.mnt, self.ref = self.trees.pair("h")
        self.held: list[tuple[int, int]] = []  # open (mount fd, reference fd) pairs

    def teardown(self) -> None:
        for pair in self.held:
            for fd in pair:
                os.close(fd)

    def both(self, fn: Any, *args: Any) -> Any:
        """``fn(root, *args)`` on each tree: outcomes must be equal."""
        got = outcome(fn, self.mnt, *args)
        want = outcome(fn, self.ref, *args)
        assert got == want, f"{fn.__name__}{args}: mount {got} != reference {want}"
        return got

    # ---- file contents
    @rule(p=paths, body=data, mode=modes)
    def create(self, p: str, body: bytes, mode: int) -> None:
        def op(root: Path, p: str, body: bytes, mode: int) -> int:
            fd = os.open(root / p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
            try:
                return os.write(fd, body)
            finally:
                os.close(fd)
        self.both(op, p, body, mode)

    @rule(p=paths, body=data, off=st.integers(0, 100))
    def write_at(self, p: str, body: bytes, off: int) -> None:
        def op(root: Path, p: str, body: bytes, off: int) -> int:
            fd = os.open(root / p, os.O_WRONLY)
            try:
                return os.pwrite(fd, body, off)
            finally:
                os.close(fd)
        self.both(op, p, body, off)

    @rule(p=paths, body=data)
    def append(self, p: str, body: bytes) -> None:
        def op(root: Path, p: str, body: bytes) -> int:
            fd = os.open(root / p, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, body)
                return os.fstat(fd).st_size
            finally:
                os.close(fd)
        self.both(op, p, body)

    @rule(p=paths, size=st.integers(0, 200))
    def truncate(self, p: str, size: int) -> None:
        self.both(lambda root, p, size: os.truncate(root / p, size), p, size)

    @rule(p=paths)
    def read(self, p: str) -> None:
        self.both(lambda root, p: (root / p).read_bytes(), p)

    # ---- namespace
    @rule(src=paths, dst=paths, flags=st.sampled_from([0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE]))
    def rename(self, src: str, dst: str, flags: int) -> None:
        self.both(lambda root, s, d, f: renameat2(root / s, root / d, f), src, dst, flags)

    @rule(p=paths, mode=st.sampled_from([0o755, 0o700, 0o2775, 0o1777]))
    def mkdir(self, p: str, mode: int) -> None:
        self.both(lambda root, p, m: os.mkdir(root / p, m), p, mode)

    @rule(p=paths)
    def rmdir(self, p: str) -> None:
        self.both(lambda root, p: os.rmdir(root / p), p)

    @rule(p=paths)
    def unlink(self, p: str) -> None:
        self.both(lambda root, p: os.unlink(root / p), p)

    @rule(src=paths, dst=paths, follow=st.booleans())
    def link(self, src: str, dst: str, follow: bool) -> None:
        self.both(lambda root, s, d, f: os.link(root / s, root / d, follow_symlinks=f),
                  src, dst, follow)

    @rule(dest=link_targets, p=paths)
    def symlink(self, dest: str, p: str) -> None:
        self.both(lambda root, t, p: os.symlink(t, root / p), dest, p)

    @rule(p=paths)
    def readlink(self, p: str) -> None:
        self.both(lambda root, p: os.readlink(root / p), p)

    # ---- attributes
    @rule(p=paths, mode=modes)
    def chmod(self, p: str, mode: int) -> None:
        self.both(lambda root, p, m: os.chmod(root / p, m), p, mode)

    @rule(p=paths, uid=st.sampled_from([0, 1000, 65534]), gid=st.sampled_from([-1, 0, 100]),
          follow=st.booleans())
    def chown(self, p: str, uid: int, gid: int, follow: bool) -> None:
        self.both(lambda root, p, u, g, f: os.chown(root / p, u, g, follow_symlinks=f),
                  p, uid, gid, follow)

    @rule(p=paths, atime=times_ns, mtime=times_ns, follow=st.booleans())
    def utime(self, p: str, atime: int, mtime: int, follow: bool) -> None:
        def op(root: Path, p: str, a: int, m: int, follow: bool) -> tuple[int, int]:
            os.utime(root / p, ns=(a, m), follow_symlinks=follow)
            s = os.stat(root / p, follow_symlinks=follow)
            return s.st_atime_ns, s.st_mtime_ns
        self.both(op, p, atime, mtime, follow)

    # ---- descriptors held across steps: they must follow their file through renames/unlinks
    @precondition(lambda self: len(self.held) < 3)
    @rule(p=paths, flags=st.sampled_from([os.O_RDWR, os.O_RDONLY, os.O_RDWR | os.O_APPEND]))
    def hold(self, p: str, flags: int) -> None:
        got = outcome(os.open, self.mnt / p, flags)
        want = outcome(os.open, self.ref / p, flags)
        if got[0] == want[0] == "ok":
            self.held.append((got[1], want[1]))
            return
        for r in (got, want):
            if r[0] == "ok":
                os.close(r[1])
        assert got == want, f"open {p}: mount {got} != reference {want}"

    def on_held(self, i: int, fn: Any, *args: Any) -> None:
        fm, fr = self.held[i % len(self.held)]
        got, want = outcome(fn, fm, *args), outcome(fn, fr, *args)
        assert got == want, f"{fn.__name__}{args}: mount {got} != reference {want}"

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 2), body=data, off=st.integers(0, 80))
    def held_write(self, i: int, body: bytes, off: int) -> None:
        self.on_held(i, os.pwrite, body, off)

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 2))
    def held_read(self, i: int) -> None:
        self.on_held(i, os.pread, 300, 0)
        self.on_held(i, lambda fd: stat_sig(os.fstat(fd)))

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 2), size=st.integers(0, 120))
    def held_truncate(self, i: int, size: int) -> None:
        self.on_held(i, os.ftruncate, size)

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 2))
    def release(self, i: int) -> None:
        for fd in self.held.pop(i % len(self.held)):
            os.close(fd)

    # ---- observation
    @rule(d=dirs)
    def listdir(self, d: str) -> None:
        self.both(lambda root, d: sorted(os.listdir(root / d)), d)

    @rule(p=paths)
    def stat(self, p: str) -> None:
        self.both(lambda root, p: stat_sig(os.stat(root / p)), p)
        self.both(lambda root, p: lstat_sig(root / p), p)

    @invariant()
    def same_tree(self) -> None:
        assert tree_snapshot(self.mnt) == tree_snapshot(self.ref)
        PosixModel.checks += 1


@pytest.mark.timeout(300 + FUZZ_EXAMPLES * 3)
def test_random_operation_sequences_match_a_plain_directory(tmp_path: Path) -> None:
    """...and afterwards ``memexfs check`` finds vault, catalog and chunks in agreement (issue 9):
    every file the sequences left behind is catalogued, nothing points at a vanished one."""
    ref = tmp_path / "ref"
    ref.mkdir()
    vault = tmp_path / "vault"
    with mounted(vault, tmp_path / "mnt", "--no-watch") as m:
        trees = Trees(m, ref)
        PosixModel.trees = trees
        run_state_machine_as_test(
            PosixModel,
            settings=settings(max_examples=FUZZ_EXAMPLES or 25, stateful_step_count=30,
                              deadline=None, derandomize=not FUZZ_EXAMPLES, database=None,
                              suppress_health_check=[HealthCheck.too_slow]),
        )
        assert PosixModel.checks >= 10 * (FUZZ_EXAMPLES or 25), PosixModel.checks  # steps ran
        text = trees.mount.log_text()
        assert "failed unexpectedly" not in text, text[-4000:]
        st = m.wait_idle(timeout=120)  # the checker must see the index caught up, not racing
        assert st["state"] == "idle", st
        assert m.proc.poll() is None, m.log_text()[-4000:]
    res = run_check(vault)  # offline: it takes the vault lock, so after the unmount
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith("0 problem(s)"), res.stdout
