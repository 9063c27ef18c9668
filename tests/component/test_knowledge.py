"""The Knowledge service over a real Qdrant Edge store: the persisted topic model keeps ids
across a remount, index changes place a new file at once, enough changes re-fit in the
background, and the graph holds every file with link and similarity edges."""

from __future__ import annotations

import random
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from memexfs.store import EdgeStore
from query.knowledge import MODEL_FILE, Knowledge
from query.topics import Params
from tests.fakes import HASH_DIM as DIM
from tests.fakes import HashEncoder, fill

pytestmark = pytest.mark.timeout(120)

THEMES = {
    "biology": "cell mitosis membrane protein enzyme dna gene chromosome nucleus ribosome",
    "finance": "invoice payment amount due balance vendor account receipt total tax",
    "cooking": "flour butter oven bake sugar dough recipe whisk simmer garlic",
}
P3 = Params(k=3)


def _docs(seed: int = 1, per: int = 8, tag: str = "") -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    out = []
    for theme, vocab in THEMES.items():
        words = vocab.split()
        for i in range(per):
            text = " ".join(rng.choice(words) for _ in range(40)).capitalize() + "."
            out.append((f"{theme}/{theme}{tag}-{i:02d}.md", [text]))
    return out


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[tuple[EdgeStore, Path, Path]]:
    root, state = tmp_path / "vault", tmp_path / "state"
    state.mkdir()
    docs = _docs()
    for path, chunks in docs:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(chunks[0] + "\n")
    (root / "biology/biology-01.md").write_text(docs[1][1][0] + "\nSee [[biology-00]].\n")
    store = EdgeStore(tmp_path / "idx", DIM)
    fill(store, docs, HashEncoder())
    yield store, root, state
    store.close()


def _knowledge(v: tuple[EdgeStore, Path, Path], **kw: bool) -> Knowledge:
    store, root, state = v
    return Knowledge(store, root, HashEncoder, state, P3, **kw)


def test_topic_ids_survive_a_remount(vault: tuple[EdgeStore, Path, Path]) -> None:
    first = _knowledge(vault)
    before = {t.name: (t.id, t.files) for t in first.topics()}
    saved = vault[2] / MODEL_FILE
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    again = _knowledge(vault)  # a new mount: same state folder
    after = {t.name: (t.id, t.files) for t in again.topics()}
    assert after == before
    assert len(before) == 3


def test_a_new_file_joins_its_topic_at_once(vault: tuple[EdgeStore, Path, Path]) -> None:
    store, root, _ = vault
    k = _knowledge(vault, background=False)
    home = {t.id for t in k.topics() if "biology/biology-00.md" in t.files}
    gen = k.generation()
    new = [("biology/new-cell.md", ["Cell membrane protein enzyme dna gene nucleus."])]
    fill(store, new, HashEncoder(), start=100)
    (root / "biology/new-cell.md").write_text(new[0][1][0] + " [[biology-00]]\n")
    k.changed({"biology/new-cell.md"})
    assert k.generation() > gen
    placed = {t.id for t in k.topics() if "biology/new-cell.md" in t.files}
    assert placed == home
    assert "biology/new-cell.md" in {e.source for e in k.backlinks("biology/biology-00.md")}


def test_enough_changes_refit_and_keep_ids(vault: tuple[EdgeStore, Path, Path]) -> None:
    store, _, _ = vault
    k = _knowledge(vault, background=True)
    ids = {t.name: t.id for t in k.topics()}
    extra = _docs(seed=5, per=2, tag="-x")
    fill(store, extra, HashEncoder(), start=200)
    k.changed({p for p, _ in extra})
    k.model()  # applies the changes: 6 of 24 files is over the re-fit share
    k.wait_refit(60)
    topics = k.topics()
    assert sum(t.size for t in topics) + len(k.unsorted()) == 30
    assert {t.id for t in topics} == set(ids.values())
    assert k.model().changed == 0


def test_graph_and_summary(vault: tuple[EdgeStore, Path, Path]) -> None:
    k = _knowledge(vault)
    g = k.graph()
    assert len(g.nodes) == 24
    assert {e.kind for e in g.edges} >= {"link"}
    link = next(e for e in g.edges if e.kind == "link")
    assert {link.source, link.target} == {"biology/biology-00.md", "biology/biology-01.md"}
    assert all(n.topic in g.topics for n in g.nodes if n.topic >= 0)
    text = k.summary("cooking/cooking-00.md")
    assert text.startswith("- ")
    assert "[cooking/cooking-00.md:1]" in text
    assert k.summary("cooking/cooking-00.md") is text  # cached by content hash
    folder = k.folder(())
    assert folder is not None
    assert len(folder.dirs) == 3
