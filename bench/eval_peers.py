"""The peers MemexFS is measured against, on the same extracted text, one result per file.

* **BM25**: ``bm25s`` (Okapi BM25, k1=1.5, b=0.75, English stop words, Snowball stemmer) over each
  file's whole extracted text — what a plain full-text index gives.
* **dense MiniLM**: all-MiniLM-L6-v2 in fp32 through sentence-transformers, one vector per file
  (its first 256 word pieces, the model's own limit), cosine — what a plain embedding search
  (the model Cortex is distilled from) gives.

Neither peer sees the query grammar: they get the folder name as typed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bench.eval_peers")


def file_texts(vault: Path, paths: list[str]) -> dict[str, str]:
    """Title + text of each file as MemexFS's extractor reads it (in process: trusted data)."""
    from memexfs.extract import extract_in_process

    out = {}
    for p in paths:
        ext = extract_in_process(vault / p)
        out[p] = f"{ext.title}\n{ext.text}" if ext.title else ext.text
    return out


class BM25Peer:
    def __init__(self, texts: dict[str, str]) -> None:
        import bm25s
        import Stemmer

        self.paths = list(texts)
        self._stemmer = Stemmer.Stemmer("english")
        corpus = bm25s.tokenize([texts[p] for p in self.paths], stopwords="en",
                                stemmer=self._stemmer, show_progress=False)
        self.index = bm25s.BM25()
        self.index.index(corpus, show_progress=False)

    def rank(self, query: str, k: int) -> list[str]:
        import bm25s

        toks = bm25s.tokenize([query], stopwords="en", stemmer=self._stemmer,
                              show_progress=False)
        if not toks.vocab:
            return []
        docs, scores = self.index.retrieve(toks, k=min(k, len(self.paths)), show_progress=False)
        return [self.paths[int(d)] for d, s in zip(docs[0], scores[0], strict=True) if s > 0]


class DensePeer:
    def __init__(self, texts: dict[str, str], cache: Path) -> None:
        from embed.minilm import MiniLMEncoder

        self.enc = MiniLMEncoder()
        self.paths = list(texts)
        self._cache = cache
        self.doc_vecs = self._encode_cached([texts[p] for p in self.paths])

    def _encode_cached(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
                for t in texts]
        mem: dict[str, Any] = {}
        if self._cache.exists():
            with np.load(self._cache) as data:
                mem = dict(zip(data["keys"].tolist(), data["vecs"], strict=True))
        todo = [i for i, k in enumerate(keys) if k not in mem]
        if todo:
            log.info("dense peer: encoding %d documents", len(todo))
            vecs = self.enc.encode([texts[i] for i in todo])
            mem.update({keys[i]: v for i, v in zip(todo, vecs, strict=True)})
            self._cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._cache.with_suffix(".tmp.npz")
            names = sorted(mem)
            np.savez(tmp, keys=np.array(names), vecs=np.stack([mem[n] for n in names]))
            tmp.replace(self._cache)
        return np.stack([mem[k] for k in keys]).astype(np.float32)

    def rank(self, query: str, k: int) -> list[str]:
        q = self.enc.encode([query])[0]
        scores = self.doc_vecs @ q
        order = np.argsort(-scores, kind="stable")[:k]
        return [self.paths[int(i)] for i in order]
