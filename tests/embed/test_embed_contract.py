"""The `embed` contract other layers rely on (DESIGN.md): names, caching, shapes, threads."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import embed

pytestmark = pytest.mark.filterwarnings("error")

TEXTS = ["unpaid invoices from acme", "A man is playing a guitar.", "", "tax " * 400]


@pytest.mark.timeout(60)
def test_import_is_light() -> None:
    code = "import sys, embed; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.timeout(10)
def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="minilm.*ternary"):
        embed.load_encoder("bert-large")


@pytest.mark.timeout(120)
def test_default_and_cache() -> None:
    assert embed.DEFAULT_ENCODER in embed.ENCODER_NAMES
    enc = embed.load_encoder()
    assert enc is embed.load_encoder(embed.DEFAULT_ENCODER)
    assert enc is embed.load_encoder(None)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", embed.ENCODER_NAMES)
def test_encoder_contract(name: str) -> None:
    enc = embed.load_encoder(name)
    assert isinstance(enc, embed.Encoder)
    assert enc.dim == 384
    assert enc.max_tokens == 256
    assert enc.name in {"minilm-l6-v2", "cortex-b158-v1-a8"}
    v = enc.encode(TEXTS)
    assert v.dtype == np.float32
    assert v.shape == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert enc.encode([]).shape == (0, 384)
    assert enc.count_tokens("") == 2  # [CLS] [SEP]
    assert enc.count_tokens("tax " * 400) > enc.max_tokens  # untruncated, so chunkers can split
    # meaning, not just shape: a paraphrase is closer than an unrelated sentence
    a, b, c = enc.encode(
        [
            "A cat sits on the mat.",
            "A kitten is sitting on a rug.",
            "Quarterly revenue rose by four percent.",
        ]
    )
    assert a @ b > a @ c + 0.2


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", embed.ENCODER_NAMES)
def test_concurrent_encode_matches_serial(name: str) -> None:
    enc = embed.load_encoder(name)
    batches = [[f"document {i} about {w}" for w in ("cats", "taxes", "rust")] for i in range(8)]
    serial = [enc.encode(b) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(enc.encode, batches))
    for s, p in zip(serial, parallel, strict=True):
        assert np.allclose(s, p, atol=1e-6)


@pytest.mark.timeout(120)
def test_a_failing_worker_fails_the_call_and_leaves_the_encoder_usable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from embed.ternary import TernaryEncoder

    enc = TernaryEncoder(threads=2)
    texts = [f"note {i} " + "word " * (5 * i) for i in range(12)]  # several length batches
    want = enc.encode(texts)
    real = enc._forward
    calls = {"n": 0}

    def flaky(run, seqs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return real(run, seqs)

    monkeypatch.setattr(enc, "_forward", flaky)
    with pytest.raises(RuntimeError, match="boom"):
        enc.encode(texts)
    assert np.array_equal(enc.encode(texts), want)
