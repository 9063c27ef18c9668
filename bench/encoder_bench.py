"""Encoder throughput and quality: sentence-transformers fp32 / bf16 autocast / torch dynamic
int8, onnxruntime dynamic-int8 MiniLM (the engine fastembed uses: the outside anchor, Cortex's
goal is >= 3x it on ~200-token chunks) and Cortex (ternary), in one process on the same texts.

    python bench/encoder_bench.py [--threads 2] [--chunks 96] [--queries 512] [--no-ndcg]

Prints the CPU flags and a table (speed vs fp32 and vs onnxruntime int8, mean cosine to fp32);
writes bench/results/encoder_bench.json. The onnxruntime row needs `pip install onnxruntime onnx`
(without them it is skipped with a note); its model is exported from the offline teacher and
quantised on first use, into bench/.cache/ (bench/ort_minilm.py).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import ort_minilm  # noqa: E402
from embed._paths import eval_dir  # noqa: E402
from embed.train.eval_cisi import cisi_ndcg, load_cisi  # noqa: E402

FLAGS = (
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)


def cpu_flags() -> dict[str, object]:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    have = set()
    model = platform.processor()
    for line in info.splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
    return {"model": model, **{f: f in have for f in FLAGS}}


def make_texts(n_queries: int, n_chunks: int, count: Callable[[str], int]) -> dict[str, list[str]]:
    """Short queries (first words of CISI queries/titles) and ~200-token chunks of CISI docs."""
    cisi = load_cisi(eval_dir() / "cisi")
    qs = [" ".join(q.split()[:8]) for q in cisi.queries.values()]
    qs += [d.split(".")[0][:60] for d in cisi.docs.values()]
    words = " ".join(cisi.docs[i] for i in sorted(cisi.docs)).split()
    chunks: list[str] = []
    i = 0
    while len(chunks) < n_chunks and i < len(words):
        n = 150
        while count(" ".join(words[i : i + n])) < 200 and n < 250:
            n += 5
        chunks.append(" ".join(words[i : i + n]))
        i += n
    return {"short": qs[:n_queries], "chunk": chunks}


def interleaved(fns: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median seconds per call of each function, repetitions interleaved (A B C A B C ...): drift
    in a shared machine's load then hits every variant alike. One warm-up call each first."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=96)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-ndcg", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "encoder_bench.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import embed
    from embed.ternary import TernaryEncoder

    flags = cpu_flags()
    print("CPU:", flags.pop("model"))
    print("flags:", " ".join(f"{k}={'yes' if v else 'no'}" for k, v in flags.items()))

    teacher = embed.load_encoder("minilm")
    cortex = TernaryEncoder(threads=args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads; Cortex kernel: {cortex.runner.path}")
    st = teacher.model  # type: ignore[attr-defined]
    st_int8 = copy.deepcopy(st)
    with (
        warnings.catch_warnings()
    ):  # torch.ao dynamic quantization is deprecated, still the baseline
        warnings.simplefilter("ignore")
        st_int8 = torch.ao.quantization.quantize_dynamic(
            st_int8, {torch.nn.Linear}, dtype=torch.qint8
        )

    def st_encode(model: Any, texts: list[str], bf16: bool = False) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return model.encode(
                texts,
                batch_size=32,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

    variants: dict[str, Callable[[list[str]], np.ndarray]] = {
        "st_fp32": lambda t: st_encode(st, t),
        "torch_bf16_autocast": lambda t: st_encode(st, t, bf16=True),
        "torch_dynamic_int8": lambda t: st_encode(st_int8, t),
    }
    results: dict[str, object] = {
        "cpu": flags,
        "threads": args.threads,
        "kernel": cortex.runner.path,
        "torch": torch.__version__,
        "onnxruntime": None,
        "runs": {},
    }
    ort = None
    missing = ort_minilm.available()
    if missing:
        results["ort_int8_skipped"] = f"onnxruntime int8 row skipped: {missing}"
        print(results["ort_int8_skipped"])
    else:
        import onnxruntime

        ort = ort_minilm.OrtMiniLM(threads=args.threads)
        variants["ort_int8"] = ort.encode
        results["onnxruntime"] = onnxruntime.__version__
        print(f"onnxruntime {onnxruntime.__version__}: {ort.path.name}")
    variants["cortex_ternary"] = cortex.encode
    texts = make_texts(args.queries, args.chunks, teacher.count_tokens)
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for kind, tx in texts.items():
        ntok = sum(min(teacher.count_tokens(t), teacher.max_tokens) for t in tx)
        runs[kind] = {}
        ref = variants["st_fp32"](tx)
        calls = {name: (lambda fn=fn, tx=tx: fn(tx)) for name, fn in variants.items()}
        for name, dt in interleaved(calls, args.reps).items():  # type: ignore[arg-type]
            runs[kind][name] = {
                "sentences_per_s": len(tx) / dt,
                "tokens_per_s": ntok / dt,
                "mean_tokens": ntok / len(tx),
                # fidelity: mean cosine of each text's vector to the fp32 teacher's
                "cos_vs_fp32": ort_minilm.mean_cosine(variants[name](tx), ref),
            }
    results["runs"] = runs

    head = f"{'texts':<7}{'encoder':<22}{'sent/s':>10}{'tok/s':>11}{'x fp32':>8}"
    head += f"{'x ort-i8':>9}" if ort else ""
    print(f"\n{head}{'cos fp32':>10}")
    for kind, rs in runs.items():
        base = rs["st_fp32"]["sentences_per_s"]
        for name, r in rs.items():
            r["speedup_vs_fp32"] = r["sentences_per_s"] / base
            vs_ort = ""
            if ort:
                r["speedup_vs_ort_int8"] = r["sentences_per_s"] / rs["ort_int8"]["sentences_per_s"]
                vs_ort = f"{r['speedup_vs_ort_int8']:>9.2f}"
            print(
                f"{kind:<7}{name:<22}{r['sentences_per_s']:>10.1f}{r['tokens_per_s']:>11.0f}"
                f"{r['speedup_vs_fp32']:>8.2f}{vs_ort}{r['cos_vs_fp32']:>10.4f}"
            )
    c = runs["chunk"]["cortex_ternary"]["sentences_per_s"]
    results["chunk_ternary_vs_bf16"] = c / runs["chunk"]["torch_bf16_autocast"]["sentences_per_s"]
    print(f"chunks: ternary / bf16 autocast = {results['chunk_ternary_vs_bf16']:.2f}")
    if ort:
        results["chunk_ternary_vs_ort_int8"] = c / runs["chunk"]["ort_int8"]["sentences_per_s"]
        print(f"chunks: ternary / onnxruntime int8 = {results['chunk_ternary_vs_ort_int8']:.2f}")

    if not args.no_ndcg:
        cisi = load_cisi(eval_dir() / "cisi")
        ndcg = {"minilm": cisi_ndcg(teacher, cisi), "ternary": cisi_ndcg(cortex, cisi)}
        if ort:
            ndcg["ort_int8"] = cisi_ndcg(ort, cisi)
        results["cisi_ndcg10"] = ndcg
        print("CISI nDCG@10:", {k: round(v, 4) for k, v in ndcg.items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
