"""Pipeline (extract -> chunk -> fields -> embed -> upsert) with a real extractor and a real Qdrant
Edge store, and a deterministic counting encoder: the claims here are about *which* texts get
embedded and what lands in the payloads, not about search quality.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memexfs import schema
from memexfs.check import check
from memexfs.extract import Extractor
from memexfs.pipeline import Pipeline
from memexfs.store import ChunkQuery, EdgeStore, Filter, Match
from memexfs.vault import Vault
from tests.fakes import COUNT_DIM as DIM
from tests.fakes import CountingEncoder, long_note

pytestmark = pytest.mark.timeout(90)

INVOICE = """ACME Corp
Invoice INV-2023-0042
Invoice date: 2023-05-04
Due date: 2023-06-03
Bill to: Sam Doe

Web hosting, May 2023 ........ $149.00
Total: $149.00
Amount due: $149.00
"""


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Vault, EdgeStore, Pipeline, CountingEncoder]]:
    root = tmp_path / "vault"
    (root / "Finance").mkdir(parents=True)
    (root / "Notes").mkdir()
    (root / "Finance" / "acme-0042.txt").write_text(INVOICE)
    (root / "Notes" / "garden.md").write_text(long_note("garden"))
    (root / "Notes" / "blob.bin").write_bytes(bytes(range(256)) * 40)
    (root / "Notes" / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage")
    vault = Vault.open(root)
    store = EdgeStore(vault.index_dir, DIM)
    enc = CountingEncoder()
    with Extractor() as extractor:
        yield vault, store, Pipeline(vault, store, enc, extractor), enc
    store.close()


def _all(vault: Vault) -> list[str]:
    return sorted(p for p, _ in vault.iter_files())


def _chunks_of(store: EdgeStore, file_id: str) -> list[dict[str, object]]:
    hits = store.iter_chunks(Filter(must=(Match("file_id", file_id),)))
    return sorted((h.payload for h in hits), key=lambda p: int(p["chunk_index"]))  # type: ignore[call-overload]


def test_every_file_gets_a_clear_catalog_state(env: tuple) -> None:
    vault, store, pipe, _ = env
    out = pipe.index_paths(_all(vault))
    assert out == {"Finance/acme-0042.txt": schema.INDEXED, "Notes/garden.md": schema.INDEXED,
                   "Notes/blob.bin": schema.METADATA_ONLY, "Notes/broken.pdf": schema.FAILED}
    broken = store.file_by_path("Notes/broken.pdf")
    assert broken is not None
    assert broken.error
    assert "PDF" in broken.error
    # still findable by its name: one title chunk, no body text
    assert broken.chunks == 1
    assert _chunks_of(store, broken.file_id)[0]["doc_type"] == "pdf"
    assert check(vault, store) == []


def test_chunk_payloads_carry_hash_encoder_and_fields(env: tuple) -> None:
    vault, store, pipe, enc = env
    pipe.index_paths(_all(vault))
    rec = store.file_by_path("Finance/acme-0042.txt")
    assert rec is not None
    assert rec.chunks >= 1
    assert rec.encoder == enc.name
    assert rec.fields["kind"] == "invoice"
    assert rec.fields["vendor"] == "acme"
    assert rec.fields["amount"] == pytest.approx(149.0)
    for p in _chunks_of(store, rec.file_id):
        assert p["content_hash"] == rec.content_hash
        assert p["encoder"] == enc.name
        assert p["chunk_hash"]
        assert p["kind"] == "invoice"
        assert p["vendor"] == "acme"
        assert p["path"] == "Finance/acme-0042.txt"
        assert p["dirs"] == ["Finance"]
        assert isinstance(p["doc_day"], int)
    # dense and BM25 both find it
    sparse = store.search(ChunkQuery(limit=3, text="hosting invoice", mode="sparse"))
    assert sparse
    assert sparse[0].payload["path"] == "Finance/acme-0042.txt"
    dense = store.search(ChunkQuery(limit=1, dense=enc.encode([INVOICE])[0].tolist(),
                                    mode="dense"))
    assert dense[0].payload["path"] == "Finance/acme-0042.txt"


def test_unchanged_content_is_never_re_embedded(env: tuple) -> None:
    vault, store, pipe, enc = env
    pipe.index_paths(_all(vault))
    first = len(enc.seen)
    assert first > 0
    # same stat: skipped without reading; touched (new mtime, same bytes): hashed, still skipped
    full = vault.abspath("Notes/garden.md")
    full.write_text(full.read_text())
    assert pipe.index_paths(_all(vault))["Notes/garden.md"] == "skipped"
    assert len(enc.seen) == first
    assert check(vault, store) == []


def test_edit_re_embeds_only_the_changed_chunks(env: tuple) -> None:
    vault, store, pipe, enc = env
    pipe.index_paths(_all(vault))
    rec = store.file_by_path("Notes/garden.md")
    assert rec is not None
    assert rec.chunks >= 3
    full = vault.abspath("Notes/garden.md")
    full.write_text(full.read_text() + "\n\nA new closing paragraph about compost heaps.")
    enc.seen.clear()
    pipe.index_paths(["Notes/garden.md"])
    assert 1 <= len(enc.seen) < rec.chunks
    assert any("compost" in t for t in enc.seen)
    rec2 = store.file_by_path("Notes/garden.md")
    assert rec2 is not None
    assert rec2.file_id == rec.file_id
    assert rec2.content_hash != rec.content_hash
    assert check(vault, store) == []


def test_shrinking_file_drops_its_tail_chunks(env: tuple) -> None:
    vault, store, pipe, _ = env
    pipe.index_paths(_all(vault))
    rec = store.file_by_path("Notes/garden.md")
    assert rec is not None
    assert rec.chunks >= 3
    vault.abspath("Notes/garden.md").write_text("Only a line about garden gnomes now.")
    pipe.index_paths(["Notes/garden.md"])
    rec2 = store.file_by_path("Notes/garden.md")
    assert rec2 is not None
    assert rec2.chunks == 1
    assert len(_chunks_of(store, rec.file_id)) == 1
    assert check(vault, store) == []


def test_vanished_file_loses_its_entry_and_points(env: tuple) -> None:
    vault, store, pipe, _ = env
    pipe.index_paths(_all(vault))
    rec = store.file_by_path("Finance/acme-0042.txt")
    assert rec is not None
    vault.abspath("Finance/acme-0042.txt").unlink()
    assert pipe.index_paths(["Finance/acme-0042.txt"]) == {"Finance/acme-0042.txt": "removed"}
    assert store.get_file(rec.file_id) is None
    assert store.count_chunks(Filter(must=(Match("file_id", rec.file_id),))) == 0
    assert check(vault, store) == []


def test_check_reports_what_disagrees(env: tuple) -> None:
    vault, store, pipe, _ = env
    pipe.index_paths(_all(vault))
    garden = store.file_by_path("Notes/garden.md")
    invoice = store.file_by_path("Finance/acme-0042.txt")
    assert garden is not None
    assert invoice is not None
    store.move_chunks(garden.file_id, {"encoder": "some-other-encoder"})
    store._catalog.update(  # catalog entry lost, points left behind
        store._qe.UpdateOperation.delete_points([invoice.file_id]))
    vault.abspath("Notes/new.txt").write_text("never indexed")
    problems = "\n".join(check(vault, store))
    assert "made by encoder some-other-encoder" in problems
    assert f"of unknown file {invoice.file_id}" in problems
    assert "file not in the catalog: Finance/acme-0042.txt" in problems
    assert "file not in the catalog: Notes/new.txt" in problems


@pytest.mark.expected_log("extraction timed out")
def test_extraction_timeout_is_retried_not_remembered(tmp_path: Path) -> None:
    from memexfs import reconcile
    from memexfs.extract import Limits

    root = tmp_path / "vault"
    root.mkdir()
    (root / "slow.md").write_text(long_note("tortoise"))
    vault = Vault.open(root)
    store = EdgeStore(vault.index_dir, DIM)
    try:
        with Extractor(Limits(timeout_s=0.0001)) as ex:
            out = Pipeline(vault, store, CountingEncoder(), ex).index_paths(["slow.md"])
        assert out == {"slow.md": schema.FAILED}
        rec = store.file_by_path("slow.md")
        assert rec is not None
        assert rec.error is not None
        assert "timed out" in rec.error
        assert rec.content_hash == ""  # not "known bad": the next change re-extracts
        assert reconcile.plan(vault, store).changed == ["slow.md"]  # and the next mount
        assert check(vault, store) == []
    finally:
        store.close()
