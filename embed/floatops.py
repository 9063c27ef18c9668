"""Float functions of Cortex defined by float32 IEEE operations only (no libm, no FMA).

The compiled kernels compute the same operations in the same order, so their results equal these
numpy definitions bit for bit on every path: an exp for non-positive arguments (attention
probabilities, the erf below) and GELU with an erf after Abramowitz & Stegun, Handbook of
Mathematical Functions (1964), formula 7.1.26 (absolute error below 1.5e-7). Constants are given
as float32 bit patterns; the C code uses the same hex literals.
"""

from __future__ import annotations

import numpy as np

F = np.float32


def _hex(h: str) -> np.float32:
    return F(float.fromhex(h))


LOG2E = _hex("0x1.715476p+0")
LN2 = _hex("0x1.62e43p-1")
EXP_FLOOR = F(-87.0)  # exp(-87) is about the smallest normal float32
EXP_POLY = tuple(  # Taylor coefficients of exp on [-ln2/2, ln2/2], Horner order: 1/120 ... 1, 1
    _hex(h) for h in ("0x1.111112p-7", "0x1.555556p-5", "0x1.555556p-3", "0x1p-1", "0x1p+0",
                      "0x1p+0")
)
RSQRT2 = _hex("0x1.6a09e6p-1")
ERF_P = _hex("0x1.4f740ap-2")  # 0.3275911
ERF_A = tuple(  # a5, a4, a3, a2, a1 (Horner order)
    _hex(h) for h in ("0x1.0fb844p+0", "-0x1.7401c6p+0", "0x1.6be1c6p+0", "-0x1.23531cp-2",
                      "0x1.04f20cp-2")
)


def exp_nonpos(t: np.ndarray, floor: np.float32 = EXP_FLOOR) -> np.ndarray:
    """exp(max(t, floor)) for t <= 0: range reduction by powers of two, degree-5 polynomial."""
    t = np.maximum(np.asarray(t, dtype=F), floor)
    k = np.rint(t * LOG2E)
    r = t - k * LN2
    y = np.full_like(r, EXP_POLY[0])
    for c in EXP_POLY[1:]:
        y = y * r + c
    return np.ldexp(y, k.astype(np.int32)).astype(F)


def gelu(x: np.ndarray) -> np.ndarray:
    """x * (1 + erf(x / sqrt 2)) / 2, the GELU of BERT-style encoders."""
    x = np.asarray(x, dtype=F)
    z = np.abs(x) * RSQRT2
    t = F(1.0) / (F(1.0) + ERF_P * z)
    poly = np.full_like(t, ERF_A[0])
    for c in ERF_A[1:]:
        poly = poly * t + c
    poly = poly * t
    y = F(1.0) - poly * exp_nonpos(-(z * z))
    erf = np.copysign(y, x)
    out: np.ndarray = ((F(0.5) * x) * (F(1.0) + erf)).astype(F)
    return out


LN_EPS = _hex("0x1.197998p-40")  # 1e-12, BERT's LayerNorm epsilon
LANES = 16


def _lane_sum(v: np.ndarray) -> np.ndarray:
    """Row sums in a fixed order: 16 running lanes over the row in chunks of 16, then the lanes
    added one after another (the order of the compiled kernels' vector loop)."""
    m, n = v.shape
    chunks = v.reshape(m, n // LANES, LANES)
    acc = chunks[:, 0, :].copy()
    for j in range(1, n // LANES):
        acc = acc + chunks[:, j, :]
    total = acc[:, 0].copy()
    for lane in range(1, LANES):
        total = total + acc[:, lane]
    return total


def add_layer_norm(y: np.ndarray, res: np.ndarray, gamma: np.ndarray, beta: np.ndarray
                   ) -> np.ndarray:
    """LayerNorm(y + res) * gamma + beta over rows whose length is a multiple of 16."""
    x = (np.asarray(y, dtype=F) + np.asarray(res, dtype=F)).astype(F)
    n = F(x.shape[1])
    mean = _lane_sum(x) / n
    d = x - mean[:, None]
    var = _lane_sum(d * d) / n
    rstd = F(1.0) / np.sqrt(var + LN_EPS)
    out: np.ndarray = ((d * rstd[:, None]) * gamma + beta).astype(F)
    return out
