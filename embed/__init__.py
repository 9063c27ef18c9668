"""Sentence encoders for MemexFS: the `Encoder` protocol and `load_encoder(name)`.

Importing this package is cheap: torch and the models load only inside `load_encoder`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DEFAULT_ENCODER", "ENCODER_NAMES", "Encoder", "load_encoder"]

# The one switch for the default: "ternary" since Cortex holds the STS-B floor (81.90 test
# Spearman with 8-bit attention, 82.03 for the fp32 teacher; floor 80.0; export report in
# embed/cortex-b158-v1.json).
DEFAULT_ENCODER = "ternary"
ENCODER_NAMES = ("minilm", "ternary")


@runtime_checkable
class Encoder(Protocol):
    """What the indexer and query code rely on; implementations must be thread-safe."""

    name: str  # stable id incl. a version; stored with every chunk vector
    dim: int
    max_tokens: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 (len(texts), dim), each row L2-normalised."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text` ([CLS]/[SEP] included), before truncation."""
        ...


_cache: dict[str, Encoder] = {}
_cache_lock = threading.Lock()


def _construct(name: str) -> Encoder:
    if name == "minilm":
        from embed.minilm import MiniLMEncoder

        return MiniLMEncoder()
    from embed.ternary import TernaryEncoder

    return TernaryEncoder()


def load_encoder(name: str | None = None) -> Encoder:
    """The encoder called `name` (None = DEFAULT_ENCODER), loaded offline once per process."""
    key = DEFAULT_ENCODER if name is None else name
    if key not in ENCODER_NAMES:
        raise ValueError(f"unknown encoder {name!r}; valid names: {', '.join(ENCODER_NAMES)}")
    with _cache_lock:
        enc = _cache.get(key)
        if enc is None:
            enc = _construct(key)
            _cache[key] = enc
        return enc
