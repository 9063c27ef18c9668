"""Fuse per-file dense and BM25 scores into one ranking score.

Fusion happens per *file* (after grouping chunks), not per chunk: a file is one answer, and
grouping first keeps one long file from filling the candidate list with its chunks.

* ``convex``: ``alpha * dense' + (1 - alpha) * bm25'`` where dense' is min-max normalised over the
  candidates and bm25' is divided by the best BM25 score (0 when the file has no BM25 hit);
* ``rrf``: reciprocal-rank fusion, ``w / (k + rank)`` summed over the two lists;
* ``dbsf``: distribution-based score fusion (each list scaled by mean +- 3 sigma), as in Qdrant.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Literal

FusionName = Literal["convex", "rrf", "dbsf"]


def _minmax(scores: Mapping[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    span = hi - lo
    return {f: (s - lo) / span if span > 0 else 1.0 for f, s in scores.items()}


def _by_max(scores: Mapping[str, float]) -> dict[str, float]:
    hi = max(scores.values(), default=0.0)
    return {f: s / hi if hi > 0 else 0.0 for f, s in scores.items()}


def _dbsf(scores: Mapping[str, float]) -> dict[str, float]:
    vals = list(scores.values())
    if len(vals) < 2:
        return {f: 1.0 for f in scores}
    mu, sd = statistics.fmean(vals), statistics.pstdev(vals)
    if sd == 0:
        return {f: 1.0 for f in scores}
    lo, hi = mu - 3 * sd, mu + 3 * sd
    return {f: min(1.0, max(0.0, (s - lo) / (hi - lo))) for f, s in scores.items()}


def _ranks(scores: Mapping[str, float]) -> dict[str, int]:
    order = sorted(scores, key=lambda f: -scores[f])
    return {f: i + 1 for i, f in enumerate(order)}


def fuse(dense: Mapping[str, float], sparse: Mapping[str, float], method: FusionName = "convex",
         alpha: float = 0.5, rrf_k: int = 60) -> dict[str, float]:
    """file id -> fused score in [0, 1]. With convex and RRF the best file has 1 when it tops
    both lists; DBSF scales each list by its mean +- 3 sigma (as Qdrant does), so its best is
    usually below 1."""
    files = set(dense) | set(sparse)
    if method == "rrf":
        rd, rs = _ranks(dense), _ranks(sparse)
        best = 1.0 / (rrf_k + 1)  # a file ranked first in both lists scores 1
        return {
            f: ((alpha / (rrf_k + rd[f]) if f in rd else 0.0)
                + ((1 - alpha) / (rrf_k + rs[f]) if f in rs else 0.0)) / best
            for f in files
        }
    if method == "dbsf":
        nd, ns = _dbsf(dense), _dbsf(sparse)
    else:
        nd, ns = _minmax(dense), _by_max(sparse)
    return {f: alpha * nd.get(f, 0.0) + (1 - alpha) * ns.get(f, 0.0) for f in files}
