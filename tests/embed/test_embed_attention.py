"""Cortex's 8-bit attention: every compiled path equals the numpy definition bit for bit, and the
definition stays close to float softmax attention."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embed import kernels as K
from embed.attention import CUTOFF, attention_ref, exp_poly

pytestmark = pytest.mark.filterwarnings("error")

PATHS = K.available_paths()
HEADS, D = 12, 32


def _qkv(rng: np.random.Generator, rows: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal((rows, 3 * HEADS * D)) * scale).astype(np.float32)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("seqs", "n"), [(1, 1), (2, 3), (3, 16), (2, 17), (4, 64), (1, 203)])
def test_compiled_attention_equals_reference(path: str, seqs: int, n: int) -> None:
    rng = np.random.default_rng(seqs * 1000 + n)
    qkv = _qkv(rng, seqs * n, scale=3.0)
    qkv[0, :D] = 0.0  # an all-zero query head exercises the absmax floor
    ref = attention_ref(qkv, seqs, n, HEADS)
    for threads in (1, 2):
        out = np.full((seqs * n, HEADS * D), np.nan, np.float32)
        K.Runner(path, threads=threads).attention(qkv, out, seqs, n, HEADS)
        assert np.array_equal(out, ref), threads


@pytest.mark.timeout(120)
@settings(max_examples=30, deadline=None)
@given(seqs=st.integers(1, 3), n=st.integers(1, 70), scale=st.floats(1e-4, 1e3),
       seed=st.integers(0, 2**32 - 1))
def test_all_paths_agree_on_random_shapes(seqs: int, n: int, scale: float, seed: int) -> None:
    qkv = _qkv(np.random.default_rng(seed), seqs * n, scale)
    ref = attention_ref(qkv, seqs, n, HEADS)
    for path in PATHS:
        out = np.empty_like(ref)
        K.Runner(path, threads=1).attention(qkv, out, seqs, n, HEADS)
        assert np.array_equal(out, ref), path


@pytest.mark.timeout(60)
def test_reference_runner_without_extension_uses_the_definition() -> None:
    qkv = _qkv(np.random.default_rng(7), 2 * 9)
    out = np.empty((18, HEADS * D), np.float32)
    K.Runner(K.REFERENCE, threads=1).attention(qkv, out, 2, 9, HEADS)
    assert np.array_equal(out, attention_ref(qkv, 2, 9, HEADS))


def test_exp_poly_is_close_to_exp_where_it_matters() -> None:
    t = np.linspace(CUTOFF, 0, 10_001, dtype=np.float32)
    rel = np.abs(exp_poly(t) / np.exp(t.astype(np.float64)) - 1)
    assert rel.max() < 5e-6  # far below the 1/255 steps the probabilities are rounded to
    assert exp_poly(np.float32([-50.0]))[0] == pytest.approx(np.exp(CUTOFF), rel=1e-5)


@pytest.mark.timeout(60)
def test_close_to_float_softmax_attention() -> None:
    """Against exact float attention on activations shaped like Cortex's (per-head scale)."""
    import torch

    seqs, n = 2, 120
    qkv = _qkv(np.random.default_rng(3), seqs * n, scale=2.0)
    blk = torch.from_numpy(qkv).view(seqs, n, 3, HEADS, D).permute(2, 0, 3, 1, 4)
    exact = torch.nn.functional.scaled_dot_product_attention(blk[0], blk[1], blk[2])
    exact_rows = exact.transpose(1, 2).reshape(seqs * n, HEADS * D).numpy()
    got = attention_ref(qkv, seqs, n, HEADS)
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(exact_rows, axis=1)
    cos = (got * exact_rows).sum(1) / norms
    assert cos.min() > 0.99
