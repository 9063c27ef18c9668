"""Chunking: token budgets, structure, overlap, offsets and pathological input."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memexfs.chunking import Chunk, chunk_document, estimate_tokens


def words(n: int, tag: str = "w") -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def prose(sentences: int, tag: str = "s") -> str:
    return " ".join(f"Sentence {tag}{i} talks about the garden and the rain." for i in range(
        sentences))


def check_offsets(text: str, chunks: list[Chunk]) -> None:
    for i, c in enumerate(chunks):
        assert c.index == i
        assert text[c.start : c.end] == c.body
        assert c.text.endswith(c.body)


@pytest.mark.timeout(10)
def test_empty_text_gives_one_findable_chunk() -> None:
    chunks = chunk_document("  \n ", title="Tax receipt", path="2023/Taxes/receipt.pdf")
    assert len(chunks) == 1
    assert chunks[0].body == ""
    assert chunks[0].text == "Tax receipt · 2023/Taxes/receipt.pdf"


@pytest.mark.timeout(10)
def test_short_text_is_one_chunk_with_header() -> None:
    text = "Buy milk and eggs."
    chunks = chunk_document(text, title="todo", path="notes/todo.txt")
    assert [c.body for c in chunks] == [text]
    assert chunks[0].text == "todo · notes/todo.txt\nBuy milk and eggs."
    check_offsets(text, chunks)


@pytest.mark.timeout(10)
def test_budget_is_respected_including_header() -> None:
    text = "\n\n".join(prose(6, f"p{i}") for i in range(30))
    chunks = chunk_document(text, title="Long", path="a/b.md", max_tokens=120, overlap_tokens=20)
    assert len(chunks) > 5
    assert all(estimate_tokens(c.text) <= 120 for c in chunks)
    check_offsets(text, chunks)
    # Every sentence is in some chunk.
    covered = "".join(c.body for c in chunks)
    for i in range(30):
        assert f"Sentence p{i}5 talks" in covered


@pytest.mark.timeout(10)
def test_sections_start_new_chunks_and_name_the_heading() -> None:
    text = "# Recipes\n\n## Risotto\n\n" + prose(14, "r") + "\n\n## Lasagna\n\n" + prose(14, "l")
    chunks = chunk_document(text, title="Cookbook", path="food/book.md", max_tokens=200)
    lasagna = [c for c in chunks if "Sentence l0 " in c.body]
    assert len(lasagna) == 1
    assert lasagna[0].body.startswith("## Lasagna")  # no overlap across a section boundary
    assert lasagna[0].text.startswith("Cookbook · food/book.md · Lasagna\n")
    assert not any("Sentence r" in c.body and "Sentence l" in c.body for c in chunks)
    check_offsets(text, chunks)


@pytest.mark.timeout(10)
def test_small_sections_share_a_chunk() -> None:
    text = "# A\n\nalpha\n\n## B\n\nbeta\n\n## C\n\ngamma"
    chunks = chunk_document(text, title="t", path="p.md")
    assert len(chunks) == 1
    assert chunks[0].body == text


@pytest.mark.timeout(10)
def test_paragraphs_are_not_cut_when_they_fit_next_chunk() -> None:
    paras = [prose(3, f"p{i}") for i in range(12)]
    text = "\n\n".join(paras)
    chunks = chunk_document(text, title="t", path="p.txt", max_tokens=100, overlap_tokens=0)
    for c in chunks:
        assert c.body in text
        # each body is a run of whole paragraphs
        assert c.body.startswith("Sentence")
        assert c.body.endswith("rain.")
        assert all(p in paras for p in c.body.split("\n\n"))


@pytest.mark.timeout(10)
def test_overlap_repeats_the_tail_of_the_previous_chunk() -> None:
    text = prose(80)
    chunks = chunk_document(text, title="t", path="p.txt", max_tokens=100, overlap_tokens=24)
    assert len(chunks) >= 3
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end  # overlapping spans
        assert 0 < estimate_tokens(text[b.start : a.end]) <= 24
        assert text[b.start : b.start + 8] == "Sentence"  # snapped to a sentence start
    check_offsets(text, chunks)


@pytest.mark.timeout(20)
def test_two_megabyte_single_line_is_bounded_and_fast() -> None:
    text = '{"ts":"2023-12-01T00:00:00Z","lvl":"INFO"},' * 48_000
    t0 = time.perf_counter()
    chunks = chunk_document(text, title="log", path="sync.log", max_tokens=200, max_chunks=500)
    assert time.perf_counter() - t0 < 10
    assert len(chunks) == 500
    assert all(estimate_tokens(c.text) <= 200 for c in chunks)
    check_offsets(text, chunks)


@pytest.mark.timeout(10)
def test_real_tokenizer_count_is_used() -> None:
    calls: list[str] = []

    def count(s: str) -> int:
        calls.append(s)
        return len(s)  # one token per character: much stricter than the heuristic

    text = words(200)
    chunks = chunk_document(text, title="t", path="p", count_tokens=count, max_tokens=80)
    assert calls
    assert all(len(c.text) <= 80 for c in chunks)
    check_offsets(text, chunks)


def test_estimate_tokens_is_roughly_wordpiece_sized() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("the cat sat") == 3
    assert estimate_tokens("Total: $1,240.00") >= 6
    assert estimate_tokens("antidisestablishmentarianism") > 1


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .\n#,")), max_size=600),
       st.integers(min_value=16, max_value=80), st.integers(min_value=0, max_value=20))
@pytest.mark.timeout(60)
def test_property_offsets_and_budget(text: str, max_tokens: int, overlap: int) -> None:
    chunks = chunk_document(text, title="T", path="p", max_tokens=max_tokens,
                            overlap_tokens=overlap)
    assert chunks
    check_offsets(text, chunks)
    assert all(estimate_tokens(c.body) <= max_tokens for c in chunks)
    if text.strip():
        # All non-space content is covered, in order.
        assert chunks[0].start <= len(text) - len(text.lstrip())
        assert chunks[-1].end >= len(text.rstrip())
        for a, b in zip(chunks, chunks[1:], strict=False):
            assert b.start <= a.end or text[a.end : b.start].strip() == ""
