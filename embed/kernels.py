"""Ternary x int8 linear layers: an exact reference and the compiled kernels, chosen at run time.

Every path computes out = ((float)(sum_k q[m,k] * w[n,k]) * a[m]) * ws[n] + b[n] in float32,
with q the per-token int8 activations (absmax, +-127) and w the ternary weights, so the compiled
paths (AVX-512 VNNI, AVX2, scalar C) and the references (numpy, torch._int_mm) agree bit for bit.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from types import ModuleType

import numpy as np

from embed.attention import attention_ref
from embed.floatops import add_layer_norm, gelu
from embed.quant import ACT_QMAX, EPS

log = logging.getLogger(__name__)

PATH_IDS = {"scalar": 0, "avx2": 1, "vnni": 2}
ACTIVATIONS = {None: 0, "gelu": 1}  # applied to the linear's output (embed.floatops)
REFERENCE = "reference"
EXT_NAME = "embed._cortex_kernels"
KERNEL_ABI = 2  # CORTEX_ABI in embed/_kernels/cortex_kernels.c
_ext: ModuleType | None = None
_ext_tried = False
_ext_lock = threading.Lock()


def load_extension(build: bool = True) -> ModuleType | None:
    """The compiled kernels, (re)building them in place once if they are missing or older than
    their sources; None (the reference path) if that fails or the build's ABI is not ours."""
    global _ext, _ext_tried
    with _ext_lock:
        if _ext_tried:
            return _ext
        _ext_tried = True
        from embed._build import is_stale

        if build and is_stale():
            _try_build("sources are newer than the build")
        try:
            ext = importlib.import_module(EXT_NAME)
        except ImportError:
            if not (build and _try_build("not built yet")):
                return None
            try:
                ext = importlib.import_module(EXT_NAME)
            except ImportError as exc:
                log.warning("Cortex C kernels unavailable (%s); using the reference path", exc)
                return None
        if getattr(ext, "ABI", None) != KERNEL_ABI:
            log.warning("Cortex C kernels at %s have ABI %s, not %s (an old build?); using the "
                        "reference path", getattr(ext, "__file__", "?"),
                        getattr(ext, "ABI", None), KERNEL_ABI)
            return None
        _ext = ext
        return _ext


def _try_build(why: str) -> bool:
    try:
        from embed._build import build_inplace

        log.info("building the Cortex C kernels (%s)", why)
        build_inplace()
        importlib.invalidate_caches()
        return True
    except Exception as exc:  # any build failure means fallback
        log.warning("Cortex C kernels unavailable (%s); using the reference path", exc)
        return False


def available_paths() -> list[str]:
    """Compiled paths this CPU can run, best first (empty without the extension)."""
    ext = load_extension()
    return list(ext.supported_paths()) if ext is not None else []


def best_path() -> str:
    """MEMEXFS_CORTEX_KERNEL if set (and supported), else the best compiled path, else reference."""
    paths = available_paths()
    forced = os.environ.get("MEMEXFS_CORTEX_KERNEL")
    if forced:
        if forced == REFERENCE or forced in paths:
            return forced
        log.warning("MEMEXFS_CORTEX_KERNEL=%s not available here (have %s)", forced, paths)
    return paths[0] if paths else REFERENCE


# ------------------------------------------------------------------ packing
def panel_layout(w: np.ndarray) -> np.ndarray:
    """(n, k) int8 -> flat [n/16][k/4][16][4], the operand layout of the compiled kernels."""
    n, k = w.shape
    return np.ascontiguousarray(w.reshape(n // 16, 16, k // 4, 4).transpose(0, 2, 1, 3)).ravel()


# ------------------------------------------------------------------ reference
def quantize_ref(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row int8 activations (as int8) and dequantization factors a = absmax / 127."""
    x = np.asarray(x, dtype=np.float32)
    amax = np.maximum(np.abs(x).max(axis=1), np.float32(EPS))
    s = np.float32(ACT_QMAX) / amax
    q = np.clip(np.rint(x * s[:, None]), -ACT_QMAX, ACT_QMAX).astype(np.int8)
    return q, (amax / np.float32(ACT_QMAX)).astype(np.float32)


def epilogue(acc: np.ndarray, a: np.ndarray, ws: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = acc.astype(np.float32) * a[:, None]
    out *= ws[None, :]
    out += b[None, :]
    return np.asarray(out, dtype=np.float32)


def matmul_ref(
    q: np.ndarray, a: np.ndarray, w: np.ndarray, ws: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Exact int32 accumulation in numpy (slow; the ground truth for tests)."""
    acc = q.astype(np.int32) @ w.astype(np.int32).T
    return epilogue(acc, a, ws, b)


def matmul_torch(
    q: np.ndarray, a: np.ndarray, w_t: object, ws: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Exact int32 accumulation through torch._int_mm: the fast fallback without the C build."""
    import torch

    m = q.shape[0]
    pad = max(0, 17 - m)  # _int_mm wants more than 16 rows
    qt = torch.from_numpy(q)
    if pad:
        qt = torch.nn.functional.pad(qt, (0, 0, 0, pad))
    acc = torch._int_mm(qt, w_t)[:m].numpy()  # type: ignore[arg-type]
    return epilogue(acc, a, ws, b)


# ------------------------------------------------------------------ runtime
class TernaryLinear:
    """One (or several fused, e.g. Q|K|V) ternary linear layer, ready for every path."""

    def __init__(self, w: np.ndarray, ws: np.ndarray, b: np.ndarray) -> None:
        self.n, self.k = w.shape
        self.w = np.ascontiguousarray(w, dtype=np.int8)
        self.ws = np.ascontiguousarray(ws, dtype=np.float32)
        self.b = np.ascontiguousarray(b, dtype=np.float32)
        self.panels = panel_layout(self.w)
        self.wsum = self.w.sum(axis=1, dtype=np.int32)
        self._w_t: object | None = None

    def torch_weight(self) -> object:
        if self._w_t is None:
            import torch

            self._w_t = torch.from_numpy(np.ascontiguousarray(self.w.T))
        return self._w_t


class Runner:
    """Runs quantize + matmul on one path, rows split over `threads` (the C code drops the GIL)."""

    def __init__(self, path: str | None = None, threads: int = 2) -> None:
        self.path = path or best_path()
        self.ext = load_extension() if self.path != REFERENCE else None
        self.threads = max(1, threads)
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self._ws: dict[tuple[str, int, str], np.ndarray] = {}

    def buffer(self, role: str, m: int, n: int, dtype: type) -> np.ndarray:
        """A reusable (m, n) work array: fresh multi-MB allocations cost page faults on every call
        (glibc hands them back to the OS), which made the forward pass up to 2x slower."""
        key = (role, n, np.dtype(dtype).str)
        buf = self._ws.get(key)
        if buf is None or buf.shape[0] < m:
            buf = np.empty((max(m, 1), n), dtype=dtype)
            self._ws[key] = buf
        return buf[:m]

    def _split(self, m: int) -> list[tuple[int, int]]:
        if self._pool is None or m < 64:
            return [(0, m)]
        step = -(-m // self.threads)
        return [(i, min(m, i + step)) for i in range(0, m, step)]

    def _run(self, fn, spans: list[tuple[int, int]]) -> None:  # type: ignore[no-untyped-def]
        if len(spans) == 1 or self._pool is None:
            for s in spans:
                fn(*s)
        else:
            # every part is done before a failure is raised: the next call reuses the buffers
            futures = [self._pool.submit(fn, *s) for s in spans]
            wait(futures)
            for fut in futures:
                fut.result()

    def quantize(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(u8 activations q + 128 for C paths / int8 for reference, factors a)."""
        if self.ext is None:
            return quantize_ref(x)
        m, k = x.shape
        q = self.buffer("q", m, k, np.uint8)
        a = np.empty(m, dtype=np.float32)
        pid, ext = PATH_IDS[self.path], self.ext

        def part(i: int, j: int) -> None:
            ext.quantize(x[i:j], q[i:j], a[i:j], j - i, k, pid)

        self._run(part, self._split(m))
        return q, a

    def linear(
        self,
        qa: tuple[np.ndarray, np.ndarray],
        lin: TernaryLinear,
        out_role: str | None = None,
        act: str | None = None,
    ) -> np.ndarray:
        """out = act(dequant(q @ w.T) + b), act None or "gelu" (fused into the kernel's output);
        with out_role the result lives in a reused work array (valid until the next call with
        that role), else in a fresh one."""
        q, a = qa
        m = q.shape[0]
        act_id = ACTIVATIONS[act]
        if self.ext is None:
            out_ref = matmul_torch(q, a, lin.torch_weight(), lin.ws, lin.b)
            return gelu(out_ref) if act_id else out_ref
        if out_role is None:
            out = np.empty((m, lin.n), dtype=np.float32)
        else:
            out = self.buffer(out_role, m, lin.n, np.float32)
        pid, ext = PATH_IDS[self.path], self.ext

        def part(i: int, j: int) -> None:
            ext.matmul(
                q[i:j],
                a[i:j],
                lin.panels,
                lin.wsum,
                lin.ws,
                lin.b,
                out[i:j],
                j - i,
                lin.k,
                lin.n,
                pid,
                act_id,
            )

        self._run(part, self._split(m))
        return out

    def add_ln_quant(
        self, y: np.ndarray, h: np.ndarray, gamma: np.ndarray, beta: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """h = LayerNorm(y + h) * gamma + beta in place (embed.floatops.add_layer_norm); returns
        h's activation codes for the next linear layer, as quantize(h) would."""
        if self.ext is None:
            h[:] = add_layer_norm(y, h, gamma, beta)
            return quantize_ref(h)
        m, n = h.shape
        q = self.buffer("q_ln", m, n, np.uint8)
        a = np.empty(m, dtype=np.float32)
        pid, ext = PATH_IDS[self.path], self.ext

        def part(i: int, j: int) -> None:
            ext.add_ln_quant(y[i:j], h[i:j], gamma, beta, q[i:j], a[i:j], j - i, n, pid)

        self._run(part, self._split(m))
        return q, a

    def attention(
        self, qkv: np.ndarray, out: np.ndarray, seqs: int, length: int, heads: int
    ) -> None:
        """8-bit self-attention of `seqs` sequences of `length` rows each (embed.attention)."""
        if self.ext is None:
            out[:] = attention_ref(qkv, seqs, length, heads)
            return
        d = qkv.shape[1] // (3 * heads)
        pid, ext = PATH_IDS[self.path], self.ext

        def part(i: int, j: int) -> None:
            rows = slice(i * length, j * length)
            ext.attention(qkv[rows], out[rows], j - i, length, heads, d, pid)

        step = -(-seqs // self.threads)  # whole sequences per thread
        self._run(part, [(i, min(seqs, i + step)) for i in range(0, seqs, step)])
