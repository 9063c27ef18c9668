"""Extraction under hostile conditions (issue 14): more than 1,024 open descriptors, worker-side
failures that must be retried rather than remembered, a 30 GB sparse file, and a vault file
swapped for a symlink to a root-only file while it is being indexed.
"""

from __future__ import annotations

import os
import resource
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from memexfs import reconcile, schema
from memexfs import vault as vault_mod
from memexfs.check import check
from memexfs.extract import Extracted, Extractor, Limits, extract_in_process
from memexfs.pipeline import Pipeline
from memexfs.store import EdgeStore, Filter, Match
from memexfs.vault import Vault, open_regular
from tests.component.test_extract import make_pdf
from tests.component.test_pipeline import DIM, CountingEncoder, long_note

pytestmark = pytest.mark.timeout(120)

SECRET = "TOPSECRET launch codes 0451"


def _worker_pid(ex: Extractor) -> int:
    proc = ex._all[0].proc  # the test needs the live worker to kill it
    assert proc is not None
    return proc.pid


def _kill_mid_request(pid: int) -> None:
    """Stop the worker now (so the next request is certainly in flight) and kill it soon."""
    os.kill(pid, signal.SIGSTOP)
    threading.Timer(0.3, os.kill, (pid, signal.SIGKILL)).start()


def _bytes_read(pid: int | str = "self") -> int:
    """Bytes this process has read through read()/pread() so far (any file, any thread)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "rchar":
            return int(value)
    raise AssertionError("no rchar in /proc/<pid>/io")


@pytest.fixture
def many_fds() -> Iterator[list[int]]:
    """More than FD_SETSIZE (1024) descriptors open in this process, as in a daemon that keeps
    O_PATH descriptors for every looked-up file."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096
    if soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    fds = [os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC) for _ in range(1100)]
    try:
        assert max(fds) > 1024
        yield fds
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_extraction_works_with_descriptors_above_fd_setsize(
        tmp_path: Path, many_fds: list[int]) -> None:
    good = tmp_path / "good.md"
    good.write_text("# Still here\n\nbody text\n")
    with Extractor() as ex:
        first = ex.extract(good)
        assert (first.status, first.title) == ("ok", "Still here")
        proc = ex._all[0].proc
        assert proc is not None
        assert proc.stdout is not None
        assert proc.stdout.fileno() > 1024  # the reply pipe really is beyond select()'s reach
        # a restarted worker (after a timeout, a memory kill...) gets new, high descriptors
        pid = proc.pid
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        again = ex.extract(good)
        assert (again.status, again.text) == ("ok", "# Still here\n\nbody text\n")
        assert _worker_pid(ex) != pid


# ------------------------------------------------------------------ transient vs permanent


@pytest.mark.expected_log("extract worker killed", "extraction timed out")
def test_worker_failures_are_transient_content_failures_are_not(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("fine\n")
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(make_pdf(["Invoice"])[:200])
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"a" * (40 * 2**20))
    with Extractor(Limits(timeout_s=3.0, memory_mb=160)) as ex:
        assert ex.extract(good).status == "ok"
        _kill_mid_request(_worker_pid(ex))
        died = ex.extract(good)
        assert (died.status, died.transient) == ("failed", True)
        assert "SIGKILL" in (died.error or "")
        assert ex.extract(good).status == "ok"
        os.kill(_worker_pid(ex), signal.SIGSTOP)
        hung = ex.extract(good)
        assert (hung.status, hung.transient) == ("failed", True)
        assert "timed out" in (hung.error or "")

        corrupt = ex.extract(broken)
        assert (corrupt.status, corrupt.transient) == ("failed", False)
        oom = ex.extract(huge)  # a hostile file for this memory limit: it would fail again
        assert (oom.status, oom.transient) == ("failed", False)
        assert "memory" in (oom.error or "")
        assert ex.extract(good).status == "ok"


@pytest.mark.expected_log("bad reply from extract worker")
def test_a_garbled_reply_is_transient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = tmp_path / "good.txt"
    good.write_text("fine\n")

    def garbled(cls: type[Extracted], data: dict[str, Any]) -> Extracted:
        raise KeyError("status")

    with Extractor() as ex:
        monkeypatch.setattr(Extracted, "from_json", classmethod(garbled))
        bad = ex.extract(good)
        assert (bad.status, bad.transient) == ("failed", True)
        assert "bad reply" in (bad.error or "")
        monkeypatch.undo()
        assert ex.extract(good).status == "ok"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Vault, EdgeStore, Pipeline, CountingEncoder]]:
    root = tmp_path / "vault"
    root.mkdir()
    vault = Vault.open(root)
    store = EdgeStore(vault.index_dir, DIM)
    enc = CountingEncoder()
    with Extractor(Limits(timeout_s=5.0)) as extractor:
        yield vault, store, Pipeline(vault, store, enc, extractor), enc
    store.close()


@pytest.mark.expected_log("extract worker killed")
def test_a_dead_worker_is_retried_not_recorded_as_failed(env: tuple) -> None:
    vault, store, pipe, _ = env
    vault.abspath("warm.txt").write_text("starts the worker")
    vault.abspath("note.md").write_text(long_note("heron"))
    vault.abspath("bad.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage")
    pipe.index_paths(["warm.txt"])
    _kill_mid_request(_worker_pid(pipe.extractor))
    prep = pipe.prepare("note.md")
    pipe.embed([prep])
    assert pipe.commit(prep) == schema.FAILED
    rec = store.file_by_path("note.md")
    assert rec is not None
    assert "SIGKILL" in (rec.error or "")
    # not remembered as bad: no hash, a size no stat matches -> the next mount retries it ...
    assert (rec.content_hash, rec.size) == ("", -1)
    assert prep.transient  # what the indexer can schedule a retry on
    assert pipe.index_paths(["bad.pdf"]) == {"bad.pdf": schema.FAILED}
    assert reconcile.plan(vault, store).changed == ["note.md"]  # ... and only it, not bad.pdf
    # ... and so does the next attempt in this session
    assert pipe.index_paths(["note.md"]) == {"note.md": schema.INDEXED}
    assert check(vault, store) == []


# ------------------------------------------------------------------ huge files


@pytest.mark.timeout(60)
def test_a_30gb_sparse_file_is_not_read(env: tuple) -> None:
    vault, store, pipe, _ = env
    huge = vault.abspath("disk.img")
    with open(huge, "wb") as fh:  # truncate -s 30G
        fh.truncate(30 * 2**30)
    vault.abspath("warm.txt").write_text("starts the worker")
    pipe.index_paths(["warm.txt"])
    worker = _worker_pid(pipe.extractor)
    before, worker_before = _bytes_read(), _bytes_read(worker)
    assert pipe.index_paths(["disk.img"]) == {"disk.img": schema.METADATA_ONLY}
    assert _bytes_read() - before < 8 * 2**20  # was: all 30 GB, 47-80 s
    assert _bytes_read(worker) - worker_before < 8 * 2**20
    rec = store.file_by_path("disk.img")
    assert rec is not None
    assert "too big" in (rec.error or "")
    assert rec.content_hash
    assert rec.size == 30 * 2**30
    # touched, same content: the sampled identity says unchanged, still without reading it all
    os.utime(huge, ns=(rec.mtime_ns, rec.mtime_ns + 10**9))
    before = _bytes_read()
    assert pipe.index_paths(["disk.img"]) == {"disk.img": schema.METADATA_ONLY}
    assert _bytes_read() - before < 8 * 2**20
    # changed bytes in a sampled block give another identity
    first = rec.content_hash
    with open(huge, "r+b") as fh:
        fh.write(b"new header")
    pipe.index_paths(["disk.img"])
    rec2 = store.file_by_path("disk.img")
    assert rec2 is not None
    assert rec2.content_hash != first


# ------------------------------------------------------------------ symlink swaps


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A root-only file outside the vault."""
    p = tmp_path / "private" / "secret.txt"
    p.parent.mkdir(mode=0o700)
    p.write_text(SECRET + "\n")
    p.chmod(0o600)
    return p


def _swap_for_link(path: Path, target: Path) -> None:
    tmp = path.with_name(path.name + ".swap")
    tmp.symlink_to(target)
    os.replace(tmp, path)


def _indexed_text(store: EdgeStore, path: str) -> str:
    rec = store.file_by_path(path)
    if rec is None:
        return ""
    hits = store.iter_chunks(Filter(must=(Match("file_id", rec.file_id),)))
    return "\n".join(str(h.payload.get("body", "")) for h in hits)


def test_file_swapped_for_a_link_after_open_is_read_from_the_open_descriptor(
        env: tuple, secret: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vault, store, pipe, enc = env
    note = vault.abspath("user/notes.txt")
    note.parent.mkdir()
    note.write_text("harmless shopping list: apples\n")
    real_extract: Callable[..., Extracted] = pipe.extractor.extract

    def swap_then_extract(path: Any, **kw: Any) -> Extracted:
        _swap_for_link(note, secret)  # after the hash, before the worker reads
        return real_extract(path, **kw)

    monkeypatch.setattr(pipe.extractor, "extract", swap_then_extract)
    assert pipe.index_paths(["user/notes.txt"]) == {"user/notes.txt": schema.INDEXED}
    assert note.is_symlink()
    text = _indexed_text(store, "user/notes.txt")
    assert "apples" in text
    assert SECRET not in text
    assert not any(SECRET in t for t in enc.seen)


def test_swap_between_lstat_and_open_is_refused(
        tmp_path: Path, secret: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "vault"
    root.mkdir()
    note = root / "notes.txt"
    note.write_text("harmless\n")
    real_stat = os.stat

    def stat_then_swap(path: Any, *args: Any, **kw: Any) -> os.stat_result:
        st = real_stat(path, *args, **kw)
        if path == "notes.txt" and not note.is_symlink():
            _swap_for_link(note, secret)
        return st

    monkeypatch.setattr(vault_mod.os, "stat", stat_then_swap)
    assert open_regular(root, "notes.txt") is None
    assert note.is_symlink()


def test_links_on_the_way_are_not_followed(env: tuple, secret: Path) -> None:
    vault, store, pipe, enc = env
    user = vault.abspath("user")
    user.mkdir()
    (user / "sub").symlink_to(secret.parent)  # was a real folder when the change was queued
    (user / "link.txt").symlink_to(secret)
    os.mkfifo(user / "pipe.txt")
    out = pipe.index_paths(["user/sub/secret.txt", "user/link.txt", "user/pipe.txt"])
    assert set(out.values()) == {"skipped"}  # all "gone": no entry, nothing read
    assert not any(SECRET in t for t in enc.seen)
    assert store.file_by_path("user/sub/secret.txt") is None
    for bad in ("../private/secret.txt", "user/./link.txt", "/etc/passwd", "", "user/sub/.."):
        assert open_regular(vault.root, bad) is None


def test_extractor_never_follows_a_final_symlink(tmp_path: Path, secret: Path) -> None:
    link = tmp_path / "link.txt"
    link.symlink_to(secret)
    r = extract_in_process(link)
    assert (r.status, r.text) == ("failed", "")
    assert "symbolic link" in (r.error or "")
    with Extractor() as ex:
        w = ex.extract(link)
        assert (w.status, w.text, w.transient) == ("failed", "", False)
