"""The trio-level Indexer with a real Qdrant Edge store, the real extractor and a counting fake
encoder: queueing, debounce, durable pending state, renames without re-embedding, failures that
leave a clear catalog state, and changes made around the mount (the watcher).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from memexfs import schema
from memexfs.check import check
from memexfs.echo import signature
from memexfs.extract import Extractor
from memexfs.indexer import Indexer
from memexfs.indexer import tuning as indexer_mod
from memexfs.pipeline import Pipeline
from memexfs.store import EdgeStore, Filter, Match
from memexfs.vault import Vault
from tests.fakes import COUNT_DIM as DIM
from tests.fakes import CountingEncoder, long_note
from tests.waiting import until

pytestmark = [pytest.mark.timeout(120), pytest.mark.trio]


class Env:
    def __init__(self, root: Path) -> None:
        self.vault = Vault.open(root)
        self.store = EdgeStore(self.vault.index_dir, DIM)
        self.enc = CountingEncoder()
        self.extractor = Extractor()
        self.changes: list[set[str]] = []

    def pipeline(self) -> Pipeline:
        return Pipeline(self.vault, self.store, self.enc, self.extractor)

    def write(self, rel: str, text: str) -> None:
        full = self.vault.abspath(rel)
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(text)

    def chunks(self, path: str) -> list[dict[str, Any]]:
        rec = self.store.file_by_path(path)
        assert rec is not None, path
        return [h.payload for h in self.store.iter_chunks(Filter(must=(Match("file_id",
                                                                             rec.file_id),)))]

    def close(self) -> None:
        self.extractor.close()
        self.store.close()


@pytest.fixture
def env(tmp_path: Path) -> Any:
    root = tmp_path / "vault"
    root.mkdir()
    e = Env(root)
    e.write("Notes/a.md", long_note("apples", 3))
    e.write("Notes/b.md", "Bananas are yellow and curved.")
    yield e
    e.close()


@asynccontextmanager
async def running(env: Env, watch: bool = False,
                  factory: Callable[[], Pipeline] | None = None,
                  on_outside: Callable[[list[str]], Awaitable[None]] | None = None,
                  ) -> AsyncIterator[Indexer]:
    ix = Indexer(env.vault, env.store, factory or env.pipeline, on_change=env.changes.append,
                 watch=watch, on_outside=on_outside)
    async with trio.open_nursery() as nursery:
        await nursery.start(ix.run)
        with trio.fail_after(60):
            await ix.wait_idle()
        yield ix
        nursery.cancel_scope.cancel()


async def settle(ix: Indexer) -> None:
    with trio.fail_after(30):
        await trio.lowlevel.checkpoint()
        await ix.wait_idle()


async def test_mount_reconciles_and_indexes_everything(env: Env) -> None:
    async with running(env) as ix:
        assert ix.status_of("Notes/a.md") == schema.INDEXED
        assert ix.stats.indexed == 2
        assert ix.stats.queued == 0
        assert ix.stats.state == "idle"
        assert ix.stats.embedded_texts == len(env.enc.seen) > 0
    assert check(env.vault, env.store) == []


@pytest.fixture
def armed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per vault watcher that has set up its inotify watches. watchfiles' RustNotify
    arms them in its constructor and buffers events from then on, so a change made once this
    grew reaches that watcher (a fixed sleep only made it likely)."""
    import watchfiles.main

    real = watchfiles.main.RustNotify
    made: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        notify = real(*args, **kwargs)
        made.append(1)
        return notify

    monkeypatch.setattr(watchfiles.main, "RustNotify", counting)
    return made


async def test_burst_of_writes_embeds_once(env: Env) -> None:
    async with running(env) as ix:
        env.enc.seen.clear()
        for i in range(5):
            env.write("Notes/b.md", f"Bananas version {i} are ripe.")
            ix.changed("Notes/b.md")
            assert ix.status_of("Notes/b.md") == schema.PENDING
            await wait_all_tasks_blocked()  # the indexer took this change before the next one
        await settle(ix)
        assert env.enc.seen == [t for t in env.enc.seen if "version 4" in t]
        assert len(env.enc.seen) == 1
        assert ix.status_of("Notes/b.md") == schema.INDEXED
    assert check(env.vault, env.store) == []


async def test_rename_moves_payload_without_re_embedding(env: Env) -> None:
    async with running(env) as ix:
        before = ix.stats.embedded_texts
        os.makedirs(env.vault.abspath("Archive"))
        os.rename(env.vault.abspath("Notes/a.md"), env.vault.abspath("Archive/a2.md"))
        ix.moved("Notes/a.md", "Archive/a2.md")
        # a folder rename moves every entry under it
        os.rename(env.vault.abspath("Notes"), env.vault.abspath("Old"))
        ix.moved("Notes", "Old")
        await settle(ix)
        assert ix.stats.embedded_texts == before
        assert ix.status_of("Archive/a2.md") == schema.INDEXED
        assert ix.status_of("Notes/a.md") is None
        assert ix.status_of("Old/b.md") == schema.INDEXED
        assert {p["path"] for p in env.chunks("Archive/a2.md")} == {"Archive/a2.md"}
        assert {tuple(p["dirs"]) for p in env.chunks("Old/b.md")} == {("Old",)}
    assert check(env.vault, env.store) == []


async def test_delete_removes_points(env: Env) -> None:
    async with running(env) as ix:
        fid = env.store.file_by_path("Notes/b.md").file_id  # type: ignore[union-attr]
        os.unlink(env.vault.abspath("Notes/b.md"))
        ix.removed("Notes/b.md")
        await settle(ix)
        assert env.store.count_chunks(Filter(must=(Match("file_id", fid),))) == 0
        assert env.store.get_file(fid) is None
        assert ix.status_of("Notes/b.md") is None
        assert ix.stats.files == 1
    assert check(env.vault, env.store) == []


@pytest.mark.expected_log("indexing bad.txt failed")
async def test_prepare_failure_records_a_failed_entry(env: Env) -> None:
    class Exploding(Pipeline):
        def prepare(self, path: str) -> Any:
            if path.endswith("bad.txt"):
                raise PermissionError(13, "Permission denied", path)
            return super().prepare(path)

    env.write("bad.txt", "cannot be read")
    async with running(env, factory=lambda: Exploding(env.vault, env.store, env.enc,
                                                      env.extractor)) as ix:
        assert ix.status_of("bad.txt") == schema.FAILED
        assert "Permission denied" in ix.stats.errors["bad.txt"]
        assert ix.stats.failed == 1
        assert ix.stats.indexed == 2
        assert ix.stats.to_json()["errors_total"] == 1
    rec = env.store.file_by_path("bad.txt")
    assert rec is not None
    assert rec.status == schema.FAILED
    assert rec.error is not None
    assert "Permission denied" in rec.error
    assert check(env.vault, env.store) == []


@pytest.mark.expected_log("failed: encoder crashed")
async def test_encoder_failure_fails_the_batch_then_recovers(env: Env) -> None:
    class Broken(CountingEncoder):
        fail = True

        def encode(self, texts: list[str]) -> Any:
            if self.fail:
                raise RuntimeError("encoder crashed")
            return super().encode(texts)

    env.enc = Broken()
    async with running(env) as ix:
        assert ix.stats.failed == 2
        assert all("encoder crashed" in e for e in ix.stats.errors.values())
        assert check(env.vault, env.store) == []
        env.enc.fail = False  # type: ignore[attr-defined]
        ix.changed("Notes/a.md")  # same bytes: a failed entry is still retried
        await settle(ix)
        assert ix.status_of("Notes/a.md") == schema.INDEXED
        assert "Notes/a.md" not in ix.stats.errors
    assert check(env.vault, env.store) == []
    # the other failed file is retried at the next start (its size -1 never matches)
    async with running(env) as ix:
        assert ix.stats.indexed == 2
        assert not ix.stats.errors


async def test_pending_is_durable_and_a_restart_heals(env: Env,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async with running(env) as ix:
        monkeypatch.setattr(indexer_mod, "DEBOUNCE_S", 3600.0)  # "crash" before indexing
        env.write("Notes/new.md", "A brand new note about cherries.")
        env.write("Notes/b.md", "Bananas, edited before the crash.")
        ix.changed("Notes/new.md")
        ix.changed("Notes/b.md")
        await until(lambda: env.store.count_files(
            Filter(must=(Match("status", schema.PENDING),))) == 2)
    monkeypatch.setattr(indexer_mod, "DEBOUNCE_S", 0.05)
    env.enc.seen.clear()
    async with running(env) as ix:
        assert ix.status_of("Notes/new.md") == schema.INDEXED
        assert ix.status_of("Notes/b.md") == schema.INDEXED
        assert any("cherries" in t for t in env.enc.seen)
    assert check(env.vault, env.store) == []


async def test_watcher_picks_up_outside_writes_renames_and_deletes(env: Env,
                                                                   armed: list[int]) -> None:
    async with running(env, watch=True) as ix:
        await until(lambda: armed, what="the watcher is armed")
        before = ix.stats.embedded_texts
        env.write("Inbox/outside.txt", "Written straight into the vault about durian fruit.")
        await until(lambda: ix.status_of("Inbox/outside.txt") == schema.INDEXED)
        added = ix.stats.embedded_texts - before
        assert added >= 1
        # an outside rename is paired by inode: the vectors stay
        os.rename(env.vault.abspath("Inbox/outside.txt"), env.vault.abspath("Inbox/moved.txt"))
        await until(lambda: ix.status_of("Inbox/moved.txt") == schema.INDEXED)
        await settle(ix)
        assert ix.stats.embedded_texts - before == added
        # a deleted folder takes its entries along
        shutil.rmtree(env.vault.abspath("Inbox"))
        await until(lambda: ix.status_of("Inbox/moved.txt") is None)
        await settle(ix)
    assert check(env.vault, env.store) == []


async def test_watcher_drops_our_own_changes_and_passes_outside_ones(env: Env,
                                                                    armed: list[int]) -> None:
    told: list[list[str]] = []

    async def on_outside(paths: list[str]) -> None:
        told.append(paths)

    async with running(env, watch=True, on_outside=on_outside) as ix:
        await until(lambda: armed, what="the watcher is armed")
        full = env.vault.abspath("Notes/b.md")
        # what the mount's operations do: change the vault, record what the request left
        full.write_text("Bananas, rewritten through the mount.\n")
        ix.own.record("Notes/b.md", signature(os.lstat(full)))
        await until(lambda: ix.stats.echoes_dropped >= 1)
        assert (ix.stats.outside_events, told) == (0, [])
        # a write around the mount right after ours, same size: still an outside change
        full.write_text("Bananas, rewritten around the mount!\n")
        await until(lambda: ix.stats.outside_events >= 1)
        assert told == [["Notes/b.md"]]
        await until(lambda: any("around the mount" in t for t in env.enc.seen))


class FakePanic(BaseException):
    """Like pyo3's PanicException: not an ``Exception``."""


async def test_watcher_restarts_after_any_failure_and_rescans(
        env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        armed: list[int]) -> None:
    import watchfiles

    monkeypatch.setattr(indexer_mod, "WATCH_BACKOFF_S", 0.05)
    real = watchfiles.awatch
    calls: list[int] = []
    ix_ref: list[Indexer] = []

    async def failing(*args: Any, **kwargs: Any) -> AsyncGenerator[set[Any], None]:
        calls.append(1)
        if len(calls) <= 2:  # two failures in a row: one streak, one log line
            await until(lambda: bool(ix_ref) and ix_ref[0].idle)
            if len(calls) == 1:
                env.write("Inbox/lost.txt", "Written while nobody watched: figs and dates.")
            raise FakePanic("the watcher's core panicked")
        async for changes in real(*args, **kwargs):
            yield changes

    monkeypatch.setattr(watchfiles, "awatch", failing)
    caplog.set_level("WARNING", logger="memexfs.indexer")
    async with running(env, watch=True) as ix:
        ix_ref.append(ix)  # the first watcher fails only after the mount's reconcile
        await until(lambda: ix.status_of("Inbox/lost.txt") == schema.INDEXED)  # the rescan
        await until(lambda: ix.stats.watcher == "watching" and len(calls) == 3)
        await until(lambda: armed, what="the new watcher is armed")  # the first two never were
        env.write("Inbox/later.txt", "An ordinary outside change about elderberries.")
        await until(lambda: ix.status_of("Inbox/later.txt") == schema.INDEXED)
        assert ix.stats.watcher_restarts == 2
    failures = [r for r in caplog.records if "vault watcher failed" in r.getMessage()]
    assert len(failures) == 1
    assert "FakePanic" in failures[0].getMessage()


async def test_ops_during_a_bulk_stream_wait_for_it_to_drain(env: Env) -> None:
    for i in range(30):
        env.write(f"Bulk/n{i:02}.md", f"Bulk note {i} about fig trees and orchards.")
    async with running(env) as ix:
        for i in range(30):
            env.write(f"Bulk/n{i:02}.md", f"Bulk note {i}, edited, about olive groves.")
            ix.changed(f"Bulk/n{i:02}.md")
        # Usually the stream is still running here; on a fast machine it may be done already,
        # and the ops below must come out the same either way.
        await until(lambda: ix.stats.state == "indexing" or ix.idle)
        os.rename(env.vault.abspath("Bulk/n29.md"), env.vault.abspath("Bulk/last.md"))
        ix.moved("Bulk/n29.md", "Bulk/last.md")
        os.unlink(env.vault.abspath("Bulk/n00.md"))
        ix.removed("Bulk/n00.md")
        await settle(ix)
        assert ix.status_of("Bulk/last.md") == schema.INDEXED
        assert ix.status_of("Bulk/n29.md") is None
        assert ix.status_of("Bulk/n00.md") is None
        assert {p["path"] for p in env.chunks("Bulk/last.md")} == {"Bulk/last.md"}
        assert ix.stats.indexed == 2 + 29
    assert check(env.vault, env.store) == []


async def test_encoder_change_re_embeds_everything(env: Env) -> None:
    async with running(env):
        pass

    class Other(CountingEncoder):
        name = "count-test-2"

    env.enc = Other()
    async with running(env) as ix:
        assert ix.stats.indexed == 2
        assert ix.stats.embedded_texts == len(env.enc.seen) > 0
        assert {p["encoder"] for p in env.chunks("Notes/a.md")} == {"count-test-2"}
    assert check(env.vault, env.store) == []
