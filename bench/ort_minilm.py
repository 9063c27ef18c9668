"""all-MiniLM-L6-v2 on onnxruntime with dynamic int8 weights: the engine fastembed uses, so the
outside anchor for Cortex's speed claim (Cortex >= 3x this on ~200-token chunks).

The offline teacher (embed._paths.teacher_dir) is exported once with torch.onnx (legacy
TorchScript exporter: dynamic batch and sequence axes, opset 17, mean pooling and L2
normalisation inside the graph, exactly as sentence-transformers does them). For the int8 file,
onnxruntime's BERT optimizer first fuses attention, LayerNorm+residual and bias+GELU (the
strongest onnxruntime recipe, so the anchor is not a straw man), then
onnxruntime.quantization.quantize_dynamic quantises every MatMul/Attention weight to QInt8 per
channel (activations uint8, per call): per tensor measured no faster here and loses fidelity
(mean cosine to fp32 0.94 vs 0.994 on 200-token chunks). The files are cached in bench/.cache/
and rebuilt when missing. Needs `pip install onnxruntime onnx`;
`available()` says whether they are there, so the benchmark can skip the row without them.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from embed._paths import force_offline, teacher_dir
from embed.tokenizer import WordPiece

CACHE = Path(__file__).resolve().parent / ".cache"
OPSET = 17
DIM, HEADS = 384, 12


def available() -> str | None:
    """None when onnxruntime and onnx import, else what to install (the row is then skipped)."""
    missing = []
    for name in ("onnxruntime", "onnx"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return f"pip install {' '.join(missing)}" if missing else None


def _export_fp32(path: Path) -> None:
    """Teacher -> ONNX: (input_ids, attention_mask) int64 (batch, seq) -> unit rows (batch, 384)."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    force_offline()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    bert = AutoModel.from_pretrained(str(teacher_dir()), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        """BERT + sentence-transformers' mean pooling (mask-weighted, clamp 1e-9) + normalise."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            h = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            mean = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    ids = torch.ones((2, 16), dtype=torch.int64)
    axes = {0: "batch", 1: "seq"}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            Pooled(),
            (ids, torch.ones_like(ids)),
            str(path),
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}},
            opset_version=OPSET,
        )


def _atomic(path: Path, build: Any) -> Path:
    """Build `path` through a temporary name, so an interrupted build leaves no half file."""
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")  # the cache ignores itself
        fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=CACHE)
        os.close(fd)
        try:
            build(Path(tmp))
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return path


def model_paths() -> tuple[Path, Path]:
    """(fp32, int8) ONNX files, exported and quantised on first use."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    fp32 = _atomic(CACHE / f"minilm-l6-v2-opset{OPSET}.onnx", _export_fp32)

    def quantise(out: Path) -> None:
        fused = out.with_suffix(".fused.onnx")
        try:
            model = optimizer.optimize_model(
                str(fp32), model_type="bert", num_heads=HEADS, hidden_size=DIM, opt_level=1
            )
            model.save_model_to_file(str(fused))
            quantize_dynamic(
                fused,
                out,
                weight_type=QuantType.QInt8,
                per_channel=True,
                # the fused contrib ops (Attention, SkipLayerNorm) carry no inferred types
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            fused.unlink(missing_ok=True)

    name = f"minilm-l6-v2-fused-int8-pc-ort{onnxruntime.__version__}.onnx"
    return fp32, _atomic(CACHE / name, quantise)


class OrtMiniLM:
    """The int8 MiniLM on one onnxruntime session, batched like sentence-transformers (length
    sorted, 32 per batch, right-padded to the batch's longest, truncated at 256 tokens)."""

    name = "ort-int8-minilm"
    dim = DIM

    def __init__(self, threads: int, batch_size: int = 32) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = model_paths()[1]
        self._sess = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        self._tok = WordPiece(teacher_dir())
        self._batch_size = batch_size

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, shape (len(texts), 384)."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        ids = self._tok.encode_batch(list(texts)) if texts else []
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        for s in range(0, len(order), self._batch_size):
            batch = order[s : s + self._batch_size]
            tok, mask = WordPiece.pad([ids[i] for i in batch])
            out[batch] = self._sess.run(None, {"input_ids": tok, "attention_mask": mask})[0]
        return out


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean row-wise cosine of two sets of unit vectors (the int8 row's fidelity to fp32)."""
    return float(np.mean(np.sum(a * b, axis=1)))
