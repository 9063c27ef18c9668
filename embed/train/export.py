"""Export a distillation checkpoint to the shipped weights file, and report its STS-B scores.

    python -m embed.train.export --ckpt embed/distill_runs/r1/best.pt            # writes the .npz
    python -m embed.train.export --report-test                                   # dev + test, once

The test split is read only here, for the exported (dev-selected) checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from embed._paths import PACKAGE_DIR, eval_dir
from embed.packing import save_weights

REPORT_FILE = PACKAGE_DIR / "cortex-b158-v1.json"
log = logging.getLogger("embed.train.export")


def export(ckpt: Path, out: Path, extra_meta: dict[str, Any] | None = None) -> str:
    import torch

    from embed.train.qat import LAYERS, LINEARS, MiniBert, ternarize

    ck = torch.load(ckpt, weights_only=False)
    model = MiniBert()
    model.load_state_dict(ck["model"], strict=False)
    tern: dict[str, np.ndarray] = {}
    floats: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for i in range(LAYERS):
            layer = model.layers[i]
            for name in LINEARS:
                lin = getattr(layer, name)
                q, scale = ternarize(lin.weight)
                key = f"layers.{i}.{name}"
                tern[key] = q.to(torch.int8).numpy()
                floats[key + ".scale"] = np.asarray(float(scale), dtype=np.float32)
                floats[key + ".bias"] = lin.bias.numpy()
            for ln in ("ln1", "ln2"):
                mod = getattr(layer, ln)
                floats[f"layers.{i}.{ln}.weight"] = mod.weight.numpy()
                floats[f"layers.{i}.{ln}.bias"] = mod.bias.numpy()
        floats["ln_emb.weight"] = model.ln_emb.weight.numpy()
        floats["ln_emb.bias"] = model.ln_emb.bias.numpy()
    meta = {
        "name": "cortex-b158-v1",
        "layers": LAYERS,
        "teacher": "all-MiniLM-L6-v2",
        "step": ck.get("step"),
        "dev_spearman_qat": ck.get("dev"),
        **(extra_meta or {}),
    }
    return save_weights(out, tern, floats, meta)


def stsb_spearman(encoder: Any, split: str) -> float:
    from scipy.stats import spearmanr

    from embed.train.distill_data import read_stsb

    rows = read_stsb(eval_dir() / "stsb" / f"sts-{split}.csv")
    a = encoder.encode([r[0] for r in rows])
    b = encoder.encode([r[1] for r in rows])
    return float(spearmanr((a * b).sum(1), [r[2] for r in rows]).statistic) * 100


def main(argv: list[str] | None = None) -> None:
    from embed.ternary import WEIGHTS_FILE, TernaryEncoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path)
    ap.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    ap.add_argument("--report-test", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.ckpt:
        digest = export(args.ckpt, args.out)
        log.info("wrote %s (%d bytes, sha256 %s)", args.out, args.out.stat().st_size, digest)
    if args.report_test:
        enc = TernaryEncoder(args.out)
        report = {
            "weights": args.out.name,
            "meta": enc.meta,
            "kernel": enc.runner.path,
            "stsb_dev": round(stsb_spearman(enc, "dev"), 2),
            "stsb_test": round(stsb_spearman(enc, "test"), 2),
        }
        REPORT_FILE.write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
