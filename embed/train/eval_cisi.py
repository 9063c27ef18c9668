"""CISI (SMART format) reader and retrieval metrics, shared by the tests and the benchmark."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_FIELD = re.compile(r"^\.([A-Z])(?:\s+(\d+))?\s*$")


@dataclass(frozen=True)
class Cisi:
    docs: dict[int, str]  # doc id -> title + abstract
    queries: dict[int, str]
    qrels: dict[int, set[int]]  # query id -> relevant doc ids (binary judgements)


def _read_smart(path: Path, keep: tuple[str, ...]) -> dict[int, str]:
    out: dict[int, list[str]] = {}
    cur, field = -1, ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = _FIELD.match(line)
        if m:
            if m.group(1) == "I":
                cur = int(m.group(2))
                out[cur] = []
            field = m.group(1)
        elif field in keep and cur >= 0:
            out[cur].append(line.strip())
    return {k: " ".join(x for x in v if x) for k, v in out.items()}


def load_cisi(root: Path) -> Cisi:
    docs = _read_smart(root / "CISI.ALL", ("T", "W"))
    queries = _read_smart(root / "CISI.QRY", ("W",))
    qrels: dict[int, set[int]] = {}
    for line in (root / "CISI.REL").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            qrels.setdefault(int(parts[0]), set()).add(int(parts[1]))
    return Cisi(docs, queries, qrels)


def top_k(queries: np.ndarray, docs: np.ndarray, k: int = 10) -> np.ndarray:
    """Indices of the k most cosine-similar docs per query (rows are L2-normalised)."""
    sims = queries @ docs.T
    idx = np.argpartition(-sims, kth=min(k, sims.shape[1] - 1), axis=1)[:, :k]
    order = np.take_along_axis(sims, idx, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(idx, order, axis=1)


def ndcg_at_10(ranked: list[list[int]], relevant: list[set[int]]) -> float:
    """Mean nDCG@10 with binary gains (CISI judgements carry no grades)."""
    scores = []
    for run, rel in zip(ranked, relevant, strict=True):
        dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(run[:10]) if d in rel)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(10, len(rel))))
        scores.append(dcg / idcg if idcg else 0.0)
    return float(np.mean(scores))


def cisi_ndcg(encoder: object, cisi: Cisi) -> float:
    """nDCG@10 of dense retrieval with `encoder` over all judged CISI queries."""
    doc_ids = sorted(cisi.docs)
    qids = sorted(q for q in cisi.queries if q in cisi.qrels)
    d = encoder.encode([cisi.docs[i] for i in doc_ids])  # type: ignore[attr-defined]
    q = encoder.encode([cisi.queries[i] for i in qids])  # type: ignore[attr-defined]
    ranked = [[doc_ids[j] for j in row] for row in top_k(q, d, 10)]
    return ndcg_at_10(ranked, [cisi.qrels[i] for i in qids])
