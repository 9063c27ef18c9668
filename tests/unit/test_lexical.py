"""BM25 query vectors count repeated terms (as Lucene and bm25s do); documents are Qdrant's."""

from __future__ import annotations

from memexfs.store.lexical import Lexical


def _weights(vec: object) -> dict[int, float]:
    return dict(zip(vec.indices, vec.values, strict=True))  # type: ignore[attr-defined]


def test_a_repeated_query_term_counts_twice() -> None:
    lex = Lexical()
    once = _weights(lex.query("operating systems"))
    twice = _weights(lex.query("operating systems for systems programmers"))
    system = next(i for i in once if i in twice and twice[i] == 2.0)
    assert once[system] == 1.0
    assert len(twice) == 3  # "for" is a stop word; "systems" once, with weight 2


def test_stop_words_only_give_an_empty_query() -> None:
    assert list(Lexical().query("the and of").indices) == []


def test_query_terms_match_document_terms() -> None:
    lex = Lexical()
    doc = set(lex.document("Time-sharing systems for IBM computers").indices)
    assert set(lex.query("time sharing computer system").indices) <= doc
