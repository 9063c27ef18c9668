"""Cortex's float functions: close to the exact functions, and equal bit for bit in the kernels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embed import kernels as K
from embed.floatops import exp_nonpos, gelu

pytestmark = pytest.mark.filterwarnings("error")

PATHS = K.available_paths()


def test_gelu_is_the_erf_gelu() -> None:
    import torch

    x = np.linspace(-12, 12, 240_001, dtype=np.float32)
    exact = torch.nn.functional.gelu(torch.from_numpy(x).double()).numpy()
    assert np.abs(gelu(x) - exact).max() < 1e-6
    assert gelu(np.float32([0.0]))[0] == 0.0


def test_exp_nonpos_relative_error() -> None:
    t = np.linspace(-80, 0, 100_001, dtype=np.float32)
    assert (np.abs(exp_nonpos(t) / np.exp(t.astype(np.float64)) - 1)).max() < 1e-5


@pytest.mark.timeout(120)
@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 40), k4=st.integers(1, 40), n16=st.integers(1, 6),
       scale=st.floats(1e-4, 1e3), seed=st.integers(0, 2**32 - 1))
def test_fused_gelu_equals_reference_on_every_path(m: int, k4: int, n16: int, scale: float,
                                                   seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, 4 * k4)) * scale).astype(np.float32)
    w = rng.integers(-1, 2, (16 * n16, 4 * k4)).astype(np.int8)
    lin = K.TernaryLinear(w, rng.uniform(1e-3, 0.5, 16 * n16).astype(np.float32),
                          rng.standard_normal(16 * n16).astype(np.float32))
    q, a = K.quantize_ref(x)
    ref = gelu(K.matmul_ref(q, a, lin.w, lin.ws, lin.b))
    for path in [*PATHS, K.REFERENCE]:
        run = K.Runner(path, threads=2)
        assert np.array_equal(run.linear(run.quantize(x), lin, act="gelu"), ref), path


def test_unknown_activation_is_refused() -> None:
    ext = K.load_extension()
    assert ext is not None
    q = np.zeros((1, 4), np.uint8)
    args = (q, np.ones(1, np.float32), np.zeros(16 * 4, np.int8), np.zeros(16, np.int32),
            np.ones(16, np.float32), np.zeros(16, np.float32), np.zeros((1, 16), np.float32),
            1, 4, 16, K.PATH_IDS["scalar"])
    with pytest.raises(ValueError, match="act"):
        ext.matmul(*args, 7)


def test_add_layer_norm_matches_torch_layer_norm() -> None:
    import torch

    from embed.floatops import LN_EPS, add_layer_norm

    rng = np.random.default_rng(5)
    y, res = (rng.standard_normal((9, 384)).astype(np.float32) * 3 for _ in range(2))
    gamma, beta = rng.standard_normal(384).astype(np.float32), rng.standard_normal(384).astype(
        np.float32)
    exact = torch.nn.functional.layer_norm(torch.from_numpy(y + res).double(), (384,),
                                           torch.from_numpy(gamma).double(),
                                           torch.from_numpy(beta).double(), eps=float(LN_EPS))
    assert np.abs(add_layer_norm(y, res, gamma, beta) - exact.numpy()).max() < 1e-5


@pytest.mark.timeout(120)
@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 50), n16=st.integers(1, 30), scale=st.floats(1e-3, 1e3),
       seed=st.integers(0, 2**32 - 1))
def test_fused_add_ln_quant_equals_reference_on_every_path(m: int, n16: int, scale: float,
                                                          seed: int) -> None:
    from embed.floatops import add_layer_norm

    rng = np.random.default_rng(seed)
    n = 16 * n16
    y = (rng.standard_normal((m, n)) * scale).astype(np.float32)
    h0 = (rng.standard_normal((m, n)) * scale).astype(np.float32)
    gamma = rng.uniform(0.1, 2, n).astype(np.float32)
    beta = rng.standard_normal(n).astype(np.float32)
    want_h = add_layer_norm(y, h0, gamma, beta)
    want_q, want_a = K.quantize_ref(want_h)
    for path in [*PATHS, K.REFERENCE]:
        h = h0.copy()
        q, a = K.Runner(path, threads=2).add_ln_quant(y, h, gamma, beta)
        assert np.array_equal(h, want_h), path
        codes = q.astype(np.int16) - (0 if path == K.REFERENCE else 128)
        assert np.array_equal(codes, want_q), path
        assert np.array_equal(a, want_a), path
