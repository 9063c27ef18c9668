"""A compact torch BERT for quantization-aware distillation (BitNet b1.58 recipe).

The same module runs the fp32 teacher (quant off) and the ternary student (quant on, straight-
through estimators), so the student's quantizers are exactly the ones the inference path uses:
absmean per-tensor ternary weights and per-token absmax int8 activations (see `embed.quant`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from embed.quant import ACT_QMAX, EPS

HIDDEN, HEADS, FFN, LAYERS = 384, 12, 1536, 6
LINEARS = ("query", "key", "value", "attn_out", "inter", "out")
_HF = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "inter": "intermediate.dense",
    "out": "output.dense",
}


def ternarize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q in {-1,0,1}, scale): the per-tensor absmean recipe of BitNet b1.58."""
    scale = w.abs().mean().clamp(min=EPS)
    return (w / scale).round().clamp(-1, 1), scale


def quant_act(x: torch.Tensor) -> torch.Tensor:
    """Fake-quantize to per-token int8 (absmax, symmetric +-127) with a straight-through grad."""
    s = ACT_QMAX / x.detach().abs().amax(dim=-1, keepdim=True).clamp(min=EPS)
    q = (x * s).round().clamp(-ACT_QMAX, ACT_QMAX) / s
    return x + (q - x).detach()


class BitLinear(nn.Linear):
    """nn.Linear whose forward sees ternary weights and int8 activations when `quant` is set."""

    quant: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quant:
            return F.linear(x, self.weight, self.bias)
        q, scale = ternarize(self.weight)
        w = self.weight + (q * scale - self.weight).detach()
        return F.linear(quant_act(x), w, self.bias)


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query, self.key, self.value = (BitLinear(HIDDEN, HIDDEN) for _ in range(3))
        self.attn_out = BitLinear(HIDDEN, HIDDEN)
        self.ln1 = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.inter = BitLinear(HIDDEN, FFN)
        self.out = BitLinear(FFN, HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(
        self, h: torch.Tensor, bias: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        b, t, _ = h.shape
        d = HIDDEN // HEADS

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, t, HEADS, d).transpose(1, 2)

        q, k, v = heads(self.query(h)), heads(self.key(h)), heads(self.value(h))
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        ctx = ctx.transpose(1, 2).reshape(b, t, HIDDEN)
        h = self.ln1(h + self.attn_out(ctx))
        h = self.ln2(h + self.out(F.gelu(self.inter(h))))
        return h, (q, k, v)


class MiniBert(nn.Module):
    """all-MiniLM-L6-v2's encoder + mean pooling; `set_quant(True)` turns it into Cortex."""

    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(30522, HIDDEN)
        self.pos = nn.Embedding(512, HIDDEN)
        self.tok_type = nn.Embedding(2, HIDDEN)
        self.ln_emb = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))

    @classmethod
    def from_teacher(cls, model_dir: Path) -> MiniBert:
        from safetensors.torch import load_file

        sd = load_file(str(model_dir / "model.safetensors"))
        m = cls()
        with torch.no_grad():
            m.word.weight.copy_(sd["embeddings.word_embeddings.weight"])
            m.pos.weight.copy_(sd["embeddings.position_embeddings.weight"])
            m.tok_type.weight.copy_(sd["embeddings.token_type_embeddings.weight"])
            m.ln_emb.weight.copy_(sd["embeddings.LayerNorm.weight"])
            m.ln_emb.bias.copy_(sd["embeddings.LayerNorm.bias"])
            for i, mod in enumerate(m.layers):
                layer = cast(Layer, mod)
                p = f"encoder.layer.{i}."
                for name, hf in _HF.items():
                    lin = getattr(layer, name)
                    lin.weight.copy_(sd[p + hf + ".weight"])
                    lin.bias.copy_(sd[p + hf + ".bias"])
                lns: tuple[tuple[nn.LayerNorm, str], ...] = (
                    (layer.ln1, "attention.output.LayerNorm"),
                    (layer.ln2, "output.LayerNorm"),
                )
                for ln, hf in lns:
                    ln.weight.copy_(sd[p + hf + ".weight"])
                    ln.bias.copy_(sd[p + hf + ".bias"])
        return m

    def set_quant(self, on: bool) -> None:
        for mod in self.modules():
            if isinstance(mod, BitLinear):
                mod.quant = on

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[tuple[torch.Tensor, ...]]]:
        """(normalised mean-pooled embedding, hidden states per layer, (q, k, v) per layer)."""
        t = ids.shape[1]
        pos = torch.arange(t, device=ids.device)
        h = self.ln_emb(self.word(ids) + self.pos(pos)[None] + self.tok_type.weight[0])
        bias = torch.zeros(mask.shape, dtype=h.dtype).masked_fill(mask == 0, -math.inf)
        bias = bias[:, None, None, :]
        hidden, qkv = [], []
        for layer in self.layers:
            h, rel = layer(h, bias)
            hidden.append(h)
            qkv.append(rel)
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1), hidden, qkv
