"""The BM25 side of the chunk index: one definition for every store backend.

Documents and queries go through Qdrant's own BM25 tokenizer (English stop words, Snowball
stemmer; ``qdrant_edge.Bm25``), so the Edge and server backends make identical sparse vectors and
IDF comes from the collection (Qdrant's IDF modifier). One thing differs from Qdrant's
``embed_query``: a query term that occurs twice counts twice. Verbose queries ("articles about
time-sharing systems ... operating systems for ...") say what matters by repeating it; counting
repeats (as Lucene and bm25s do) raised BM25-only nDCG@10 on the dev splits from 0.362 to 0.443
(CACM) and 0.299 to 0.353 (CISI), personal-dev unchanged (``bench/retrieval_eval.py``).
"""

from __future__ import annotations

from typing import Any

import qdrant_edge as qe

BM25_CONFIG: dict[str, Any] = {"language": "english"}  # k=1.2, b=0.75, avg_len=256 (defaults)


class Lexical:
    """Sparse vectors for chunk texts and queries (thread-safe: the model is immutable)."""

    def __init__(self) -> None:
        self._model = qe.Bm25(qe.Bm25Config(**BM25_CONFIG))

    def document(self, text: str) -> Any:
        return self._model.embed_document(text)

    def query(self, text: str) -> Any:
        """Term ids of ``text`` with their counts as weights (empty when nothing is left after
        stop words)."""
        counts: dict[int, float] = {}
        for word in text.split():
            for i in self._model.embed_query(word).indices:
                counts[i] = counts.get(i, 0.0) + 1.0
        return qe.SparseVector(indices=list(counts), values=list(counts.values()))
