"""Cortex quality against committed floors, and deterministic vectors.

The floors sit a little under the numbers measured when the weights were exported (see
embed/cortex-b158-v1.json); a regression in kernels, packing or the forward pass falls below.
"""

from __future__ import annotations

import numpy as np
import pytest

import embed
from embed._paths import eval_dir
from embed.kernels import REFERENCE, available_paths
from embed.ternary import TernaryEncoder
from embed.train.distill_data import read_stsb
from embed.train.eval_cisi import load_cisi, top_k

pytestmark = pytest.mark.filterwarnings("error")

STSB_TEST_FLOOR = 81.5  # measured 81.92 at export (teacher 82.03); the issue asks >= 80.0
CISI_TOP10_OVERLAP_FLOOR = 0.48  # measured 0.529 on the first 250 docs, 112 queries
CISI_DOCS = 250


@pytest.mark.timeout(120)
def test_stsb_test_spearman_floor() -> None:
    from scipy.stats import spearmanr

    enc = embed.load_encoder("ternary")
    rows = read_stsb(eval_dir() / "stsb" / "sts-test.csv")
    assert len(rows) == 1379
    a = enc.encode([r[0] for r in rows])
    b = enc.encode([r[1] for r in rows])
    rho = spearmanr((a * b).sum(1), [r[2] for r in rows]).statistic * 100
    assert rho >= STSB_TEST_FLOOR


@pytest.mark.timeout(180)
def test_cisi_neighbours_overlap_teacher() -> None:
    """Top-10 CISI neighbours of each query: Cortex should mostly retrieve what the teacher does."""
    cisi = load_cisi(eval_dir() / "cisi")
    docs = [cisi.docs[i] for i in sorted(cisi.docs)[:CISI_DOCS]]
    queries = [cisi.queries[i] for i in sorted(cisi.queries)]
    runs = []
    for name in ("minilm", "ternary"):
        enc = embed.load_encoder(name)
        runs.append(top_k(enc.encode(queries), enc.encode(docs), 10))
    overlap = np.mean([len(set(t) & set(s)) / 10 for t, s in zip(*runs, strict=True)])
    assert overlap >= CISI_TOP10_OVERLAP_FLOOR


@pytest.mark.timeout(120)
def test_vectors_are_deterministic() -> None:
    """Same text -> same bits: across calls, batch companions, thread counts and kernel paths."""
    texts = ["the invoice is overdue", "x", "a longer sentence about the quarterly tax report " * 9]
    enc = embed.load_encoder("ternary")
    ref = enc.encode(texts)
    assert np.array_equal(enc.encode(texts), ref)
    assert np.array_equal(enc.encode(texts[::-1])[::-1], ref)
    assert np.array_equal(enc.encode(texts + ["filler " * 50] * 5)[:3], ref)
    for path in [*available_paths(), REFERENCE]:
        for threads in (1, 2):
            other = TernaryEncoder(kernel=path, threads=threads)
            assert np.array_equal(other.encode(texts), ref), (path, threads)
