"""The Python API (``memexfs.open``) on an unmounted vault: typed results, the lock, errors.

A hashing encoder stands in for the real one (same words, close vectors): these test the
plumbing; ``test_real_encoder_index_and_search`` runs the real encoder on a tiny vault."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import memexfs
from memexfs.errors import BadQuery, VaultLocked
from memexfs.vault import Vault, VaultLock
from tests.fakes import HashEncoder, fill


class Hash384(HashEncoder):
    """The store's default width (384), so the vault opens like any other."""

    dim = 384

    def encode(self, texts: list[str]) -> np.ndarray:
        small = super().encode(texts)
        return np.hstack([small, np.zeros((len(texts), 384 - small.shape[1]), np.float32)])


DOCS = [("bills/electricity.txt", ["electricity bill from Volta Power for March"]),
        ("notes/garden.md", ["planting tomatoes and basil in the garden"]),
        ("notes/garden-2.md", ["the garden needs basil and tomatoes watered"])]


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    for rel, (text,) in DOCS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture
def memex(vault: Path) -> Iterator[memexfs.Memex]:
    m = memexfs.api.Memex(vault, create=True, encoder_factory=Hash384)
    _, store = m.offline()
    fill(store, DOCS, Hash384())
    yield m
    m.close()


def test_search_gives_typed_absolute_results(memex: memexfs.Memex, vault: Path) -> None:
    hits = memex.search("electricity bill Volta", k=5)
    assert hits, "no hit for the words of a document"
    top = hits[0]
    assert isinstance(top, memexfs.Result)
    assert (top.rel_path, top.rank) == ("bills/electricity.txt", 1)
    assert top.path == str(vault.resolve() / "bills/electricity.txt")
    assert top.score > 0
    assert top.title
    with pytest.raises(dataclasses.FrozenInstanceError):
        top.rank = 2  # type: ignore[misc]


def test_related_accepts_absolute_and_relative_paths(memex: memexfs.Memex, vault: Path) -> None:
    by_rel = [h.rel_path for h in memex.related("notes/garden.md", k=2)]
    by_abs = [h.rel_path for h in memex.related(str(vault / "notes/garden.md"), k=2)]
    assert by_rel == by_abs
    assert by_rel[0] == "notes/garden-2.md"


def test_grammar_errors_are_bad_query_before_any_encoder(vault: Path) -> None:
    def no_encoder() -> Hash384:
        raise AssertionError("the encoder loaded for a query the grammar refuses")

    with (memexfs.api.Memex(vault, create=True, encoder_factory=no_encoder) as m,
          pytest.raises(BadQuery, match="month must be in 1..12")):
        m.search("after:2023-13")


def test_status_counts_the_catalog(memex: memexfs.Memex) -> None:
    st = memex.status()
    assert (st["state"], st["files"], st["indexed"]) == ("offline", 3, 3)


def test_a_folder_never_indexed_is_refused_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(memexfs.NotIndexed, match="not indexed: run memexfs index"):
        memexfs.open(tmp_path / "plain")
    assert not (tmp_path / "plain" / ".memexfs").exists()


def test_a_path_inside_the_vault_finds_the_vault(memex: memexfs.Memex, vault: Path) -> None:
    memex.close()
    with memexfs.open(vault / "notes" / "garden.md") as m:
        assert m.root == str(vault.resolve())
        assert not m.mounted


def test_a_locked_vault_says_so(vault: Path) -> None:
    lock = VaultLock(Vault.open(vault))
    lock.acquire()
    try:
        with memexfs.open(vault) as m, pytest.raises(VaultLocked):
            m.search("garden")
    finally:
        lock.release()


@pytest.mark.timeout(600)
def test_real_encoder_index_and_search(vault: Path) -> None:
    with memexfs.open(vault, create=True) as m:
        st = m.index()
        assert st.indexed == 3
        hits = m.search("power bill", k=3)
    assert hits[0].rel_path == "bills/electricity.txt"


def test_the_knowledge_engine_is_a_door_too(tmp_path: Path) -> None:
    """Topics, summaries and the graph from Python: the same engine as the folders and CLI."""
    notes = {
        "notes/garden.md": ("Tomatoes need full sun and deep watering every few days. "
                            "Basil grows well beside tomatoes and keeps pests away. "
                            "Harvest the basil leaves before the plant flowers."),
        "notes/bikes.md": ("A flat tyre is fixed by patching the inner tube. "
                           "Check the rim tape before fitting a new tube. "
                           "Inflate the tyre to the pressure printed on its side."),
    }
    root = tmp_path / "kvault"
    for rel, text in notes.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    with memexfs.api.Memex(root, create=True, encoder_factory=Hash384) as m:
        _, store = m.offline()
        fill(store, [(rel, [text]) for rel, text in notes.items()], Hash384())
        k = m.knowledge()
        placed = {p for t in k.topics() for p in t.files} | set(k.unsorted())
        assert placed == set(notes)
        summary = k.summary("notes/garden.md")
        assert "[notes/garden.md:1]" in summary
        assert "Tomatoes need full sun" in summary
        assert {n.path for n in k.graph().nodes} == set(notes)
