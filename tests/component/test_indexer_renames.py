"""Renames, exchanges and renames over existing names through the real Indexer and Qdrant Edge,
told in the order the mount tells them; ``memexfs check`` must agree with the vault after each.

The mount's notifications reach the op queue at once, but the queue is applied later, from a
worker thread that looks at the vault as it is then: a file written just before its folder moved
is looked up under its old name and found nowhere. Each case runs applied step by step and applied
all at once after the vault changed (the second is what a quick sequence of requests meets).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memexfs import schema
from memexfs.check import check
from memexfs.indexer import Indexer
from tests.component.test_indexer import Env, running, settle
from tests.mount.posix import RENAME_EXCHANGE, RENAME_NOREPLACE, renameat2

pytestmark = [pytest.mark.timeout(120), pytest.mark.trio]

Step = Callable[[Env, Indexer], None]


@pytest.fixture
def env(tmp_path: Path) -> Any:
    root = tmp_path / "vault"
    root.mkdir()
    e = Env(root)
    yield e
    e.close()


def write(rel: str, text: str) -> Step:
    def step(env: Env, ix: Indexer) -> None:
        env.write(rel, text)
        ix.changed(rel)
    return step


def mkdir(rel: str) -> Step:
    return lambda env, ix: os.mkdir(env.vault.abspath(rel))


def rename(old: str, new: str, flags: int = 0, replaces_file: bool = False) -> Step:
    """As ``mount.ops.rename`` tells the index: an exchange is one op; a file replaced by a
    rename is removed first."""
    def step(env: Env, ix: Indexer) -> None:
        renameat2(env.vault.abspath(old), env.vault.abspath(new), flags)
        if flags & RENAME_EXCHANGE:
            ix.exchanged(old, new)
            return
        if replaces_file:
            ix.removed(new)
        ix.moved(old, new)
    return step


async def play(env: Env, steps: list[Step], one_by_one: bool) -> Indexer:
    async with running(env) as ix:
        for step in steps:
            step(env, ix)
            if one_by_one:
                await settle(ix)
        await settle(ix)
        return ix


def indexed(env: Env) -> dict[str, str]:
    """path -> the paths its chunks carry, for every catalog entry (all indexed)."""
    out = {}
    for rec in env.store.iter_files():
        assert rec.status == schema.INDEXED, rec
        out[rec.path] = {h.payload["path"] for h in env.store.iter_chunks()
                         if h.payload["file_id"] == rec.file_id}
    return {p: ",".join(sorted(c)) for p, c in out.items()}


@pytest.mark.parametrize("one_by_one", [True, False], ids=["stepwise", "at-once"])
async def test_a_file_moved_with_its_folder_before_it_was_queued_is_indexed(
        env: Env, one_by_one: bool) -> None:
    steps = [write("x/inner.txt", "Inner notes about pears."), mkdir("sub"),
             write("a.txt", "A note about apples."),
             rename("a.txt", "sub/moved.txt"), rename("sub", "sub2"), rename("x", "z")]
    ix = await play(env, steps, one_by_one)
    assert check(env.vault, env.store) == []
    assert indexed(env) == {"z/inner.txt": "z/inner.txt", "sub2/moved.txt": "sub2/moved.txt"}
    assert ix.status_of("z/inner.txt") == ix.status_of("sub2/moved.txt") == schema.INDEXED
    assert ix.status_of("x/inner.txt") is None


@pytest.mark.parametrize("one_by_one", [True, False], ids=["stepwise", "at-once"])
async def test_exchanges_and_renames_over_existing_names(env: Env, one_by_one: bool) -> None:
    """tests/mount/test_passthrough.py's sequence, which once lost ``empty/inner``."""
    steps = [write("a", "Alpha apples."), write("b", "Beta bananas."), mkdir("x"),
             write("x/inner", "Inner pears."), mkdir("y"),
             rename("a", "b", RENAME_EXCHANGE),
             rename("x", "y", RENAME_EXCHANGE),  # a folder with a folder
             rename("a", "c", RENAME_NOREPLACE),
             rename("c", "b", replaces_file=True),
             rename("x", "z"),  # the empty one now
             mkdir("empty"), rename("y", "empty")]  # over an empty folder
    ix = await play(env, steps, one_by_one)
    assert check(env.vault, env.store) == []
    assert indexed(env) == {"b": "b", "empty/inner": "empty/inner"}
    rec = env.store.file_by_path("b")
    assert rec is not None
    assert rec.size == len("Beta bananas.")  # exchanged, then moved back
    assert ix.stats.files == 2


async def test_exchange_swaps_entries_without_re_embedding(env: Env) -> None:
    env.write("d/f.txt", "Figs in a folder.")
    env.write("g.txt", "Grapes at the top.")
    env.write("p/q.txt", "Quinces deeper down.")
    async with running(env) as ix:
        ids = {p: env.store.file_by_path(p).file_id  # type: ignore[union-attr]
               for p in ("d/f.txt", "g.txt", "p/q.txt")}
        ix.stats.errors["g.txt"] = "kept with its file"
        before = ix.stats.embedded_texts
        renameat2(env.vault.abspath("d/f.txt"), env.vault.abspath("g.txt"), RENAME_EXCHANGE)
        ix.exchanged("d/f.txt", "g.txt")
        renameat2(env.vault.abspath("d"), env.vault.abspath("p"), RENAME_EXCHANGE)
        ix.exchanged("d", "p")
        await settle(ix)
        assert ix.stats.embedded_texts == before
        # the grapes went to d/f.txt, then with d's content to p
        assert {p: env.store.file_by_path(p).file_id  # type: ignore[union-attr]
                for p in ("p/f.txt", "d/q.txt", "g.txt")} == {
            "p/f.txt": ids["g.txt"], "d/q.txt": ids["p/q.txt"], "g.txt": ids["d/f.txt"]}
        assert ix.stats.errors == {"p/f.txt": "kept with its file"}
        assert ix.status_of("p/f.txt") == ix.status_of("d/q.txt") == schema.INDEXED
        assert ix.status_of("d/f.txt") is ix.status_of("p/q.txt") is None
    assert indexed(env) == {"g.txt": "g.txt", "p/f.txt": "p/f.txt", "d/q.txt": "d/q.txt"}
    assert check(env.vault, env.store) == []
