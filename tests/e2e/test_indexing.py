"""The indexing pipeline through a real mount with the real encoder (issue 3).

Most tests use the shared ``personal_mount`` (indexed once per session) and work in their own
``zz-indexing*`` folder, which they remove again. Crash recovery and the offline ``memexfs index``
get small vaults of their own.

Field checks read the catalog from a *copy* of the live index directory (Qdrant Edge replays its
WAL when the copy is opened), so the session's mount is never disturbed; a read-only per-file
xattr for the catalog record would make this unnecessary (asked of the lead).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from memexfs.store import EdgeStore, Filter, Match
from tests.conftest import PERSONAL
from tests.mounting import Mount, force_unmount, memexfs_cmd, mounted
from tests.waiting import wait_until

pytestmark = [pytest.mark.mount, pytest.mark.timeout(600)]

STATUS = "user.memex.status"
CLI_TIMEOUT = 300


# ---- helpers -----------------------------------------------------------------------------------
def status(path: Path) -> str | None:
    try:
        return os.getxattr(path, STATUS).decode()
    except OSError:
        return None


def write(path: Path, text: str) -> None:
    """Write and fsync through the mount: fsync queues the file before it returns, so a status
    read right after sees "pending", never the previous version's "indexed"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def settle(m: Mount, *paths: Path) -> dict[str, Any]:
    for p in paths:
        wait_until(lambda p=p: status(p) in ("indexed", "metadata-only", "failed"), 120, str(p))
    return m.wait_idle(timeout=300)


@contextmanager
def snapshot(m: Mount, tmp: Path) -> Iterator[EdgeStore]:
    """The index as the daemon has it, opened from a copy (read-only use)."""
    m.wait_idle(timeout=300)
    dst = tmp / f"snap-{time.monotonic_ns()}"
    shutil.copytree(m.vault / ".memexfs" / "index", dst)
    store = EdgeStore(dst, 384)
    try:
        yield store
    finally:
        store.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(memexfs_cmd(*args), capture_output=True, text=True,
                          timeout=CLI_TIMEOUT)


def metadata() -> dict[str, dict[str, Any]]:
    rows = (json.loads(line) for line in (PERSONAL / "metadata.jsonl").read_text().splitlines())
    return {r["path"]: r for r in rows}


def paragraphs(topic: str, n: int) -> str:
    """n paragraphs of ~170 words each, so each one fills a chunk of its own."""
    return "\n\n".join(f"Section {i} on {topic}. " + " ".join(
        f"{topic}{i}x{j}" for j in range(170)) for i in range(n))


UNIQUE = "quokka zygomorphic lighthouse"


# ---- 1. the whole corpus -----------------------------------------------------------------------
def test_corpus_fully_indexed_with_fields(personal_mount: Mount, tmp_path: Path) -> None:
    m = personal_mount
    st = m.wait_idle(timeout=600)
    meta = metadata()
    assert st["state"] == "idle"
    assert st["queued"] == 0
    text_files = [p for p, r in meta.items() if not p.startswith("weird/")]
    not_indexed = {p: status(m.mnt / p) for p in text_files if status(m.mnt / p) != "indexed"}
    assert not_indexed == {}
    with snapshot(m, tmp_path) as store:
        recs = {r.path: r for r in store.iter_files()}
        for path in text_files:
            rec = recs[path]
            assert rec.chunks >= 1, path
            assert rec.encoder == st["encoder"]
        invoices = [p for p in text_files if meta[p]["kind"] == "invoice"]
        assert len(invoices) >= 60
        status_ok = {"PAID": {"paid"}, "UNPAID": {"unpaid", "overdue"},
                     "OVERDUE": {"overdue", "unpaid"}}
        for path in invoices:
            want, got = meta[path]["meta"], recs[path].fields
            assert got.get("kind") == "invoice", path
            assert got.get("vendor") == want["vendor"], path
            assert got.get("amount") == pytest.approx(want["amount"], abs=0.01), path
            assert got.get("status") in status_ok[want["status"]], path
        # every chunk carries the file's hash, the encoder and the file's fields
        for path in invoices[:10] + text_files[::25]:
            rec = recs[path]
            chunks = [h.payload for h in store.iter_chunks(
                Filter(must=(Match("file_id", rec.file_id),)))]
            assert len(chunks) == rec.chunks, path
            for c in chunks:
                assert c["content_hash"] == rec.content_hash
                assert c["encoder"] == rec.encoder
                assert c["chunk_hash"]
                assert c["path"] == path
                assert c.get("kind") == rec.fields.get("kind")
                assert c.get("vendor") == rec.fields.get("vendor")


def test_weird_files_have_a_clear_status(personal_mount: Mount) -> None:
    m = personal_mount
    st = m.wait_idle(timeout=600)
    weird = sorted(p for p in metadata() if p.startswith("weird/"))
    assert len(weird) == 8
    states = {p: status(m.mnt / p) for p in weird}
    assert set(states.values()) <= {"indexed", "metadata-only", "failed"}, states
    # a binary and an empty file are found by name only; the truncated PDF failed, with why
    assert states["weird/firmware_dump.bin"] == "metadata-only"
    assert states["weird/empty_note.txt"] == "metadata-only"
    assert states["weird/statement_truncated.pdf"] == "failed"
    for p, s in states.items():
        if s == "failed":
            assert st["errors"].get(p), p
    # odd encodings and odd names still yield text
    assert states["weird/Résumé – Zoë Müller (final) ✓.txt"] == "indexed"
    assert states["weird/recette_creme_brulee.txt"] == "indexed"
    assert m.proc.poll() is None  # nothing crashed
    assert "Traceback" not in m.log_text()


# ---- 2. edit, rename, delete -------------------------------------------------------------------
def test_edit_rename_delete_touch_only_what_changed(personal_mount: Mount) -> None:
    m = personal_mount
    d = m.mnt / "zz-indexing"
    try:
        base = m.wait_idle(timeout=600)
        solo, multi = d / "solo.txt", d / "multi.md"
        write(solo, f"A short note about a {UNIQUE}.")
        write(multi, paragraphs("heron", 5))
        st = settle(m, solo, multi)
        assert status(solo) == "indexed"
        assert status(multi) == "indexed"
        n_multi = st["chunks"] - base["chunks"] - 1
        assert n_multi >= 4
        assert st["embedded_texts"] - base["embedded_texts"] == n_multi + 1

        # edit: only that file's (changed) chunks are embedded again
        before = st
        write(solo, f"A short note about a {UNIQUE}, edited.")
        st = settle(m, solo)
        assert st["embedded_texts"] - before["embedded_texts"] == 1
        before = st
        text = multi.read_text().replace("Section 2 on heron.", "Section 2 on egrets.")
        write(multi, text)
        st = settle(m, multi)
        # the edited sentence sits in one chunk, or two where chunks overlap; never all of them
        assert 1 <= st["embedded_texts"] - before["embedded_texts"] <= 2 < n_multi
        assert st["chunks"] == before["chunks"]

        # rename (file and folder): payload moves, nothing is embedded
        before = st
        (d / "sub").mkdir()
        os.rename(solo, d / "sub" / "renamed.txt")
        os.rename(d / "sub", d / "moved-sub")
        st = m.wait_idle(timeout=120)
        moved = d / "moved-sub" / "renamed.txt"
        assert st["embedded_texts"] == before["embedded_texts"]
        assert status(moved) == "indexed"
        q = m.mnt / "q" / UNIQUE / ".results"
        rows = [line.split("\t") for line in q.read_text().splitlines()
                if not line.startswith("#")]
        paths = [r[2] for r in rows]
        assert "zz-indexing/moved-sub/renamed.txt" in paths[:3]
        assert "zz-indexing/solo.txt" not in paths

        # delete: its points are gone
        before = st
        os.unlink(multi)
        st = m.wait_idle(timeout=120)
        assert st["chunks"] == before["chunks"] - n_multi
        assert st["files"] == before["files"] - 1
        assert st["embedded_texts"] == before["embedded_texts"]
    finally:
        shutil.rmtree(d, ignore_errors=True)
        m.wait_idle(timeout=120)
    assert m.stats()["files"] == base["files"]


# ---- 4. the watcher ----------------------------------------------------------------------------
def test_changes_around_the_mount_are_picked_up(personal_mount: Mount) -> None:
    m = personal_mount
    outside = m.vault / "zz-indexing-outside"
    inside = m.mnt / "zz-indexing-outside"
    try:
        base = m.wait_idle(timeout=600)
        outside.mkdir()
        (outside / "note.txt").write_text(f"Written around the mount: {UNIQUE} tides.")
        wait_until(lambda: status(inside / "note.txt") == "indexed", 120, "outside write")
        st = m.wait_idle(timeout=120)
        assert st["embedded_texts"] == base["embedded_texts"] + 1
        os.rename(outside / "note.txt", outside / "renamed.txt")
        wait_until(lambda: status(inside / "renamed.txt") == "indexed", 120, "outside rename")
        st = m.wait_idle(timeout=120)
        assert st["embedded_texts"] == base["embedded_texts"] + 1  # paired by inode: no re-embed
        assert st["files"] == base["files"] + 1
        (outside / "renamed.txt").unlink()
        wait_until(lambda: m.stats()["files"] == base["files"], timeout=120, what="outside delete")
    finally:
        shutil.rmtree(outside, ignore_errors=True)
        wait_until(lambda: m.stats()["files"] == base["files"] and m.stats()["queued"] == 0,
                 timeout=120, what="cleanup")


# ---- 3. kill -9 while indexing -----------------------------------------------------------------
def _sample_files(n: int) -> list[Path]:
    corpus = PERSONAL / "corpus"
    picks = sorted(p for p in corpus.rglob("*") if p.is_file()
                   and p.suffix in (".md", ".txt", ".eml", ".pdf", ".docx")
                   and "weird" not in p.parts)
    return picks[:: max(1, len(picks) // n)][:n]


def test_kill_9_during_indexing_then_remount_heals(tmp_path: Path) -> None:
    vault, mnt = tmp_path / "vault", tmp_path / "mnt"
    files = _sample_files(40)
    assert len(files) == 40
    corpus = PERSONAL / "corpus"
    with mounted(vault, mnt) as m:
        m.wait_idle(timeout=300)
        for src in files:
            dst = mnt / src.relative_to(corpus)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        wait_until(lambda: m.stats()["state"] == "indexing", timeout=60, what="indexing")
        st = m.stats()
        assert st["indexed"] < 40  # killed mid-way
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(timeout=30)
        force_unmount(mnt)
    rels = [str(src.relative_to(corpus)) for src in files]
    assert all((vault / r).is_file() for r in rels)
    with mounted(vault, mnt) as m:
        st = m.wait_idle(timeout=600)
        assert st["state"] == "idle"
        assert {r: status(mnt / r) for r in rels if status(mnt / r) != "indexed"} == {}
        assert st["files"] == 40
        assert st["errors"] == {}
    res = cli("check", str(vault))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 problem(s)" in res.stdout


# ---- 5. offline bulk index and status ----------------------------------------------------------
def test_offline_index_then_status_json(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    corpus = PERSONAL / "corpus"
    files = _sample_files(12) + [corpus / "weird" / "statement_truncated.pdf",
                                 corpus / "weird" / "empty_note.txt"]
    for src in files:
        dst = vault / src.relative_to(corpus)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    res = cli("index", str(vault))
    assert res.returncode == 0, res.stderr
    assert "14/14 files" in res.stderr  # the progress bar's last state
    assert "14 files processed: 12 indexed, 1 metadata-only, 1 failed" in res.stdout
    res = cli("status", str(vault), "--json")
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    assert st["files"] == 14
    assert st["indexed"] == 12
    assert st["metadata_only"] == 1
    assert st["failed"] == 1
    assert st["queued"] == 0
    assert "PDF" in st["errors"]["weird/statement_truncated.pdf"]
    assert st["chunks"] >= 14
    # a second run has nothing to do
    res = cli("index", str(vault))
    assert res.stdout.startswith("0 files processed: 12 indexed"), res.stdout
    res = cli("check", str(vault))
    assert res.returncode == 0, res.stdout + res.stderr
