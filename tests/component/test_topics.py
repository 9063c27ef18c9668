"""Topics over a real Qdrant Edge store: deterministic, ids survive re-clustering, unsorted
exists, new files are placed at once; one test with the real encoder (Cortex) for quality."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from memexfs.store import EdgeStore
from query.topics import (
    UNSORTED_ID,
    FileVector,
    Params,
    TopicModel,
    chunk_texts,
    file_vectors,
    fit,
    fit_store,
    spherical_kmeans,
    topic_text,
)
from tests.fakes import HASH_DIM as DIM
from tests.fakes import HashEncoder, fill

pytestmark = pytest.mark.timeout(120)

THEMES = {
    "biology": "cell mitosis membrane protein enzyme dna gene chromosome nucleus ribosome",
    "finance": "invoice payment amount due balance vendor account receipt total tax",
    "cooking": "flour butter oven bake sugar dough recipe whisk simmer garlic",
    "travel": "flight hotel lisbon passport itinerary train museum beach booking luggage",
}


def _docs(seed: int = 1, per: int = 8) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)
    docs = []
    for theme, vocab in THEMES.items():
        words = vocab.split()
        for i in range(per):
            text = " ".join(rng.choice(words) for _ in range(40))
            docs.append((f"{theme}/{theme}-{i:02d}.md", [text]))
    docs.append(("misc/gibberish.txt", ["zorbl quandex flimp grotz wuzzle kreep snarf plonk"]))
    return docs


P4 = Params(k=4)  # one topic per theme, so tests can name topics by theme


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    s = EdgeStore(tmp_path / "idx", DIM)
    fill(s, _docs(), HashEncoder())
    yield s
    s.close()


def _signature(m: TopicModel) -> list[tuple[int, str, tuple[str, ...]]]:
    return [(t.id, t.name, tuple(t.files)) for t in m.topics]


def test_topics_follow_themes_and_are_deterministic(store: EdgeStore) -> None:
    m = fit_store(store)
    assert _signature(fit_store(store)) == _signature(m)
    themes = [Counter(p.split("/")[0] for p in t.files) for t in m.topics]
    assert all(len(c) == 1 for c in themes)  # every topic holds one theme
    assert {next(iter(c)) for c in themes} == set(THEMES)  # k ~ sqrt(33): a theme may split
    assert m.unsorted == ["misc/gibberish.txt"]
    names = [t.name for t in m.topics]
    assert len(set(names)) == len(names)
    for t in m.topics:
        assert t.name == t.name.lower()
        assert 2 <= len(t.name.split()) <= 3
        assert set(t.name.split()) <= set(THEMES[t.files[0].split("/")[0]].split())
        assert t.scores == sorted(t.scores, reverse=True)  # ranked by centrality
    text = topic_text(m.topics[0], "- a line  [x.md:1]\n")
    assert text.startswith(f"topic: {m.topics[0].name}\n")
    assert "keywords: " in text
    assert "\nsummary:\n- a line  [x.md:1]\n" in text


def test_ids_survive_reclustering(store: EdgeStore) -> None:
    enc = HashEncoder()
    m0 = fit_store(store, P4)
    by_theme = {t.files[0].split("/")[0]: (t.id, t.name) for t in m0.topics}
    # 10 % of the files change: three rewritten (same theme, new words), one new theme file
    rng = random.Random(9)
    changed = []
    for n, theme in enumerate(["biology", "finance", "cooking"]):
        words = THEMES[theme].split()
        changed.append((f"{theme}/{theme}-0{n}.md", [" ".join(rng.choice(words[:6])
                                                             for _ in range(30))]))
    changed.append(("travel/travel-99.md", [" ".join(THEMES["travel"].split()[:5] * 5)]))
    for i, (path, chunks) in enumerate(changed):
        rec = store.file_by_path(path)  # a changed file keeps its id: re-indexed in place
        fill(store, [(path, chunks)], enc,
             start=100 + i if rec is None else int(rec.file_id[-12:]))
    assert store.count_files() == len(_docs()) + 1
    m1 = fit_store(store, P4, previous=m0)
    after = {t.files[0].split("/")[0]: (t.id, t.name) for t in m1.topics}
    assert after == by_theme
    fresh = fit_store(store, P4)  # without the old model the ids are merely a count
    assert {t.id for t in fresh.topics} == set(range(len(fresh.topics)))


def test_assign_places_a_new_file_at_once(store: EdgeStore) -> None:
    enc = HashEncoder()
    m = fit_store(store, P4)
    vec = enc.encode(["oven flour butter bake dough sugar whisk recipe"])[0]
    place = m.assign(vec)
    cooking = next(t for t in m.topics if t.files[0].startswith("cooking/"))
    assert place.topic == cooking.id
    assert place.score > 0.45
    m.add("cooking/new.md", "new-id", vec)
    assert "cooking/new.md" in cooking.files
    assert m.top_of()["cooking/new.md"] == cooking.id
    odd = m.assign(enc.encode(["xylophone quartz vortex"])[0])
    assert odd.topic == UNSORTED_ID
    m.add("misc/odd.md", "odd-id", enc.encode(["xylophone quartz vortex"])[0])
    assert "misc/odd.md" in m.unsorted
    assert not m.needs_recluster()  # 2 of 33 files
    m.remove("cooking/new.md")
    assert "cooking/new.md" not in cooking.files
    assert not m.needs_recluster()  # 3 of 33
    m.add("x/1.md", "x1", vec)
    assert m.needs_recluster()  # 4 of 33: over 10 %


def test_subtopics_split_a_large_mixed_topic() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=DIM)
    files = []
    for g in range(3):  # three tight groups inside one broad direction
        centre = base + 1.2 * rng.normal(size=DIM)
        for i in range(10):
            v = centre + 0.3 * rng.normal(size=DIM)
            files.append(FileVector(f"f{g}{i}", f"g{g}/{i:02d}.md",
                                    (v / np.linalg.norm(v)).astype(np.float32)))
    texts = {f.file_id: [f"group{f.path[1]} words shared"] for f in files}
    m = fit(files, texts, Params(k=1, outlier_cos=0.0))
    assert len(m.topics) == 1
    kids = m.topics[0].children
    assert len(kids) == 3
    assert sorted(len({p.split("/")[0] for p in c.files}) for c in kids) == [1, 1, 1]
    assert all(c.parent == m.topics[0].id for c in kids)
    leaf = m.topic_of()
    assert {leaf[f.path] for f in files} == {c.id for c in kids}
    place = m.assign(files[0].vector)  # a new file lands in a sub-topic too
    assert place.topic == m.topics[0].id
    assert place.sub == leaf[files[0].path]


def test_kmeans_is_linear_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    a = spherical_kmeans(x, 12, 5, minibatch_over=1000, batch=512)
    b = spherical_kmeans(x, 12, 5, minibatch_over=1000, batch=512)
    assert np.array_equal(a[0], b[0])
    assert np.allclose(a[1], b[1])
    assert a[1].shape == (12, 32)


def test_file_vectors_cache_skips_unchanged_files(store: EdgeStore,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cache: dict[str, tuple[str, np.ndarray]] = {}
    first = file_vectors(store, cache)
    assert [f.path for f in first] == sorted(f.path for f in first)
    calls = []
    real = store.chunk_vectors

    def counting(fid: str) -> dict[str, list[float]]:
        calls.append(fid)
        return real(fid)

    monkeypatch.setattr(store, "chunk_vectors", counting)
    again = file_vectors(store, cache)
    assert calls == []
    assert all(np.array_equal(a.vector, b.vector) for a, b in zip(first, again, strict=True))
    assert set(chunk_texts(store)) == {f.file_id for f in first}


@pytest.mark.slow
def test_real_encoder_groups_subjects(tmp_path: Path) -> None:
    """Cortex on short study notes of three subjects plus invoices: topics follow subjects."""
    from embed import load_encoder

    enc = load_encoder("ternary")
    notes = {
        "bio": ["Mitosis divides one cell into two identical daughter cells.",
                "The cell membrane controls what enters and leaves the cell.",
                "Enzymes are proteins that speed up chemical reactions in cells.",
                "DNA is copied before a cell divides; genes sit on chromosomes.",
                "Mitochondria release energy from glucose by cellular respiration."],
        "hist": ["The French Revolution began in 1789 with the storming of the Bastille.",
                 "Napoleon crowned himself emperor of France in 1804.",
                 "The Renaissance revived classical learning in Italian city-states.",
                 "The Industrial Revolution started in Britain with coal and steam power.",
                 "Louis XVI was executed during the revolution in 1793."],
        "inv": ["Invoice INV-0042 from Acme Corp: web hosting, amount due 149 USD.",
                "Northwind Electric invoice: electricity usage 320 kWh, total due 82 USD.",
                "Invoice from Greenleaf Landscaping for lawn care, payment due in 15 days.",
                "Orbit Telecom monthly internet invoice, balance due 59.99 USD.",
                "Invoice BOS-58146 office supplies: paper and toner, total 210 USD."],
    }
    docs = [(f"{s}/{i}.md", [t]) for s, texts in notes.items() for i, t in enumerate(texts)]
    store = EdgeStore(tmp_path / "idx", enc.dim)
    try:
        fill(store, docs, enc)  # type: ignore[arg-type]
        m = fit_store(store, replace(Params(), k=3))
        groups = [Counter(p.split("/")[0] for p in t.files) for t in m.topics]
        purity = sum(c.most_common(1)[0][1] for c in groups) / len(docs)
        assert purity >= 0.85, groups
        assert len(m.unsorted) <= 2
    finally:
        store.close()
