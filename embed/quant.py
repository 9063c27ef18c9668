"""Quantization constants shared by training (embed.train.qat) and inference (embed.kernels)."""

from __future__ import annotations

ACT_QMAX = 127.0  # activations: per-token absmax, symmetric int8 in [-127, 127]
EPS = 1e-5  # floor for absmax / absmean scales (an all-zero row or tensor stays finite)
