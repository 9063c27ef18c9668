"""Cortex's 8-bit self-attention: the exact definition, as a numpy reference.

Float attention was a third of Cortex's time in torch (a (n, n) float score matrix per head); with
8-bit operands both products run on the same integer units as the ternary layers. The compiled
kernel (``attention`` in ``embed/_kernels/cortex_kernels.c``) computes exactly this, bit for bit:

1. per token and head, Q and K get absmax int8 codes (the activation quantizer of the linears);
2. ``s[i, j] = ((float)(qQ_i . qK_j) * aQ_i) * (aK_j * SCALE)``, SCALE = 1/sqrt(head size);
3. ``e = exp_poly(s - max_j s)`` (embed.floatops: float32 IEEE operations only, so every
   implementation rounds alike), probabilities ``p = rint(255 e)`` as uint8, and the
   normaliser ``Z_i = sum_j p[i, j]`` is an exact integer;
4. V gets absmax int8 codes per channel (over the sequence), ``acc = p @ qV`` in int32, and
   ``out = ((float)acc * aV) / (float)Z``.

A probability under 1/510 of the row's largest rounds to zero (exp(CUTOFF) * 255 < 0.5), which is
also where the polynomial stops being needed.
"""

from __future__ import annotations

import numpy as np

from embed.floatops import exp_nonpos
from embed.quant import ACT_QMAX, EPS

F = np.float32
CUTOFF = F(-6.5)  # exp(-6.5) * 255 = 0.38: rounds to probability 0
P_MAX = F(255.0)


def exp_poly(t: np.ndarray) -> np.ndarray:
    """exp(t) for t in [CUTOFF, 0] (embed.floatops.exp_nonpos with the attention floor)."""
    return exp_nonpos(t, CUTOFF)


def _quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    amax = np.maximum(np.abs(x).max(axis=-1), F(EPS))
    s = F(ACT_QMAX) / amax
    q = np.clip(np.rint(x * s[..., None]), -ACT_QMAX, ACT_QMAX).astype(np.int32)
    return q, (amax / F(ACT_QMAX)).astype(F)


def attention_ref(qkv: np.ndarray, seqs: int, length: int, heads: int) -> np.ndarray:
    """qkv: (seqs * length, 3 * heads * d) float32 rows (Q | K | V); returns (rows, heads * d)."""
    hd = qkv.shape[1] // 3
    d = hd // heads
    scale = F(1.0) / np.sqrt(F(d))  # float32 sqrt and division, as in C
    x = qkv.astype(F).reshape(seqs, length, 3, heads, d).transpose(2, 0, 3, 1, 4)  # (3,g,h,n,d)
    qq, aq = _quantize_rows(x[0])
    qk, ak = _quantize_rows(x[1])
    dots = np.einsum("ghid,ghjd->ghij", qq, qk).astype(F)
    s = (dots * aq[..., :, None]) * (ak * scale)[..., None, :]
    e = exp_poly(s - s.max(axis=-1, keepdims=True))
    p = np.rint(e * P_MAX).astype(np.int32)
    z = p.sum(axis=-1).astype(F)
    v = x[2]  # (g, h, n, d): per channel = over the sequence axis
    vmax = np.maximum(np.abs(v).max(axis=-2), F(EPS))  # (g, h, d)
    qv = np.clip(np.rint(v * (F(ACT_QMAX) / vmax)[..., None, :]), -ACT_QMAX, ACT_QMAX)
    acc = np.einsum("ghij,ghjd->ghid", p, qv.astype(np.int32)).astype(F)
    out = (acc * (vmax / F(ACT_QMAX))[..., None, :]) / z[..., None]
    return np.ascontiguousarray(out.transpose(0, 2, 1, 3).reshape(seqs * length, hd), dtype=F)
