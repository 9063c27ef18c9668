"""Quantization-aware distillation of all-MiniLM-L6-v2 into Cortex (ternary, BitNet b1.58).

Reproducible, CPU-only, resumable; not run in CI. Student starts from the teacher's weights and
trains with straight-through estimators against four losses (TinyBERT / MiniLMv2 / BitDistill):
final-embedding cosine, in-batch similarity structure, per-layer hidden states, and per-layer
Q-Q / K-K / V-V attention relations. Checkpoints are chosen on STS-B *dev*; STS-B test is only
read by `embed.train.export --report-test`, once, for the chosen checkpoint.

    nice -n 10 python -m embed.train.distill --run embed/distill_runs/r1 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embed._paths import eval_dir, teacher_dir
from embed.tokenizer import WordPiece
from embed.train.distill_data import build_corpus, read_stsb
from embed.train.qat import HEADS, HIDDEN, MiniBert

log = logging.getLogger("embed.train.distill")

SOURCE_WEIGHTS = {"stsb_train": 0.45, "man": 0.25, "stdlib": 0.15, "debian": 0.15}
LOSS_WEIGHTS = {"cos": 5.0, "sim": 50.0, "hidden": 1.0, "rel": 1.0}
FROZEN = ("word.", "pos.", "tok_type.")  # the float embedding tables stay the teacher's


def trainable_state(model: MiniBert) -> dict[str, torch.Tensor]:
    """Everything but the (frozen, teacher-loaded) embedding tables."""
    return {
        k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith(FROZEN)
    }


def relation_kl(
    t: torch.Tensor, s: torch.Tensor, key_bias: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """KL(teacher || student) of softmax(x x^T / sqrt(d)) per head, over valid query rows."""
    d = t.shape[-1]
    lt = torch.log_softmax(t @ t.transpose(-1, -2) / math.sqrt(d) + key_bias, dim=-1)
    ls = torch.log_softmax(s @ s.transpose(-1, -2) / math.sqrt(d) + key_bias, dim=-1)
    kl = (lt.exp() * (lt - ls)).nan_to_num().sum(-1)  # (b, h, t)
    return (kl * valid[:, None, :]).sum() / (valid.sum() * HEADS)


def distill_loss(
    teacher: MiniBert, student: MiniBert, ids: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    with torch.no_grad():
        te, th, tqkv = teacher(ids, mask)
    se, sh, sqkv = student(ids, mask)
    valid = mask.to(torch.float32)
    key_bias = torch.zeros_like(valid).masked_fill(mask == 0, -math.inf)[:, None, None, :]
    cos = (1 - (te * se).sum(-1)).mean()
    sim = F.mse_loss(se @ se.T, te @ te.T)
    n_tok = valid.sum() * HIDDEN
    hidden = sum(
        (((s - t) ** 2 * valid[..., None]).sum() / n_tok) / (t**2 * valid[..., None]).sum() * n_tok
        for s, t in zip(sh, th, strict=True)
    ) / len(th)
    rel = sum(
        relation_kl(t, s, key_bias, valid)
        for tq, sq in zip(tqkv, sqkv, strict=True)
        for t, s in zip(tq, sq, strict=True)
    ) / (3 * len(tqkv))
    parts = {"cos": cos, "sim": sim, "hidden": hidden, "rel": rel}
    total = sum(LOSS_WEIGHTS[k] * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


@torch.no_grad()
def embed_texts(model: MiniBert, tok: WordPiece, texts: list[str], bs: int = 64) -> np.ndarray:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), HIDDEN), dtype=np.float32)
    for i in range(0, len(order), bs):
        idx = order[i : i + bs]
        ids, mask = tok.pad(tok.encode_batch([texts[j] for j in idx]))
        e, _, _ = model(torch.from_numpy(ids), torch.from_numpy(mask))
        out[idx] = e.numpy()
    return out


def stsb_spearman(model: MiniBert, tok: WordPiece, split: str) -> float:
    """STS-B Spearman x 100 of cosine similarity (split: 'dev' or 'test')."""
    from scipy.stats import spearmanr

    rows = read_stsb(eval_dir() / "stsb" / f"sts-{split}.csv")
    a = embed_texts(model, tok, [r[0] for r in rows])
    b = embed_texts(model, tok, [r[1] for r in rows])
    return float(spearmanr((a * b).sum(1), [r[2] for r in rows]).statistic) * 100


class Batches:
    """Batches from one source at a time, texts of similar length, truncated to max_tokens."""

    def __init__(self, tok: WordPiece, max_tokens: int, batch: int, seed: int) -> None:
        self.corpus = build_corpus(eval_dir(), seed=seed)
        self.tok, self.max_tokens, self.batch = tok, max_tokens, batch

    def sample(self, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
        src = rng.choices(list(SOURCE_WEIGHTS), weights=list(SOURCE_WEIGHTS.values()))[0]
        pool = rng.sample(self.corpus[src], self.batch * 4)
        ids = [
            x[: self.max_tokens - 1] + x[-1:] if len(x) > self.max_tokens else x
            for x in self.tok.encode_batch(pool)
        ]
        ids.sort(key=len)
        start = rng.randrange(0, len(ids) - self.batch + 1)
        a, m = self.tok.pad(ids[start : start + self.batch])
        return torch.from_numpy(a), torch.from_numpy(m)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="run directory (checkpoints, log)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.run.mkdir(parents=True, exist_ok=True)

    tok = WordPiece(teacher_dir())
    teacher = MiniBert.from_teacher(teacher_dir()).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = MiniBert.from_teacher(teacher_dir())
    student.set_quant(True)
    params = []
    for name, p in student.named_parameters():
        p.requires_grad_(not name.startswith(FROZEN))
        if p.requires_grad:
            params.append(p)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    data = Batches(tok, args.max_tokens, args.batch, args.seed)
    rng = random.Random(args.seed)
    step, best, elapsed = 0, -1.0, 0.0

    last = args.run / "last.pt"
    if last.exists():
        ck = torch.load(last, weights_only=False)
        student.load_state_dict(ck["model"], strict=False)
        opt.load_state_dict(ck["opt"])
        step, best, elapsed = ck["step"], ck["best"], ck["elapsed"]
        rng.setstate(ck["rng"])
        torch.set_rng_state(ck["torch_rng"])
        log.info("resumed at step %d (best dev %.2f)", step, best)
    else:
        dev = stsb_spearman(student, tok, "dev")
        log.info("step 0: post-training ternary STS-B dev %.2f", dev)
        (args.run / "config.json").write_text(
            json.dumps(
                {
                    **{k: str(v) for k, v in vars(args).items()},
                    "sources": SOURCE_WEIGHTS,
                    "losses": LOSS_WEIGHTS,
                },
                indent=1,
            )
        )

    logf = (args.run / "log.jsonl").open("a")
    t0 = time.monotonic() - elapsed
    while step < args.steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        ids, mask = data.sample(rng)
        loss, parts = distill_loss(teacher, student, ids, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        rec: dict[str, float | int] = {
            "step": step,
            "loss": float(loss),
            **parts,
            "t": round(time.monotonic() - t0, 1),
        }
        if step % 20 == 0:
            log.info("%s", rec)
        if step % args.eval_every == 0 or step == args.steps:
            student.eval()
            dev = stsb_spearman(student, tok, "dev")
            student.train()
            rec["dev"] = dev
            if dev > best:
                best = dev
                torch.save(
                    {"model": trainable_state(student), "step": step, "dev": dev},
                    args.run / "best.pt",
                )
            log.info("step %d: STS-B dev %.2f (best %.2f)", step, dev, best)
            torch.save(
                {
                    "model": trainable_state(student),
                    "opt": opt.state_dict(),
                    "step": step,
                    "best": best,
                    "elapsed": time.monotonic() - t0,
                    "rng": rng.getstate(),
                    "torch_rng": torch.get_rng_state(),
                },
                args.run / "tmp.pt",
            )
            (args.run / "tmp.pt").replace(last)
        logf.write(json.dumps(rec) + "\n")
        logf.flush()


if __name__ == "__main__":
    main()
