"""The teacher's WordPiece tokenizer (fast `tokenizers` implementation), shared by both encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained with max_seq_length 256 (sentence_bert_config)


class WordPiece:
    """Tokenizes batches to padded id/mask arrays; the teacher's tokenizer.json, no network."""

    def __init__(self, model_dir: Path, max_tokens: int = MAX_TOKENS) -> None:
        from tokenizers import Tokenizer

        self.max_tokens = max_tokens
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.no_truncation()
        # A separate truncating copy: count_tokens must see the untruncated length.
        self._trunc = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._trunc.no_padding()
        self._trunc.enable_truncation(max_length=max_tokens)

    def count_tokens(self, text: str) -> int:
        """Tokens the model would see for `text`, [CLS]/[SEP] included, before truncation."""
        return len(self._tok.encode(text).ids)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, truncated to max_tokens (special tokens included)."""
        return [e.ids for e in self._trunc.encode_batch(texts)]

    @staticmethod
    def pad(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Right-pad to the longest sequence: (ids int64 (b, t), mask int64 (b, t))."""
        t = max(len(x) for x in ids)
        out = np.zeros((len(ids), t), dtype=np.int64)
        mask = np.zeros((len(ids), t), dtype=np.int64)
        for i, x in enumerate(ids):
            out[i, : len(x)] = x
            mask[i, : len(x)] = 1
        return out, mask
