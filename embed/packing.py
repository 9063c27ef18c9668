"""The shipped weights file: ternary weights at 2 bits each, float parts, and a SHA-256 checksum.

Layout (an .npz, no pickles): for every array a name -> ndarray; ternary matrices are stored as
`<name>.t2` (uint8, four weights per byte, codes 0 -> 0, 1 -> +1, 2 -> -1) with `<name>.shape`;
`__meta__` is a JSON string and `__sha256__` the digest over every other entry (name, dtype,
shape, bytes) in sorted order. Loading recomputes the digest and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

_DECODE = np.array([0, 1, -1, 0], dtype=np.int8)


class ChecksumError(ValueError):
    """The weights file does not match its recorded checksum (corrupt or edited)."""


def pack_ternary(w: np.ndarray) -> np.ndarray:
    """int8 {-1,0,1} array (size a multiple of 4) -> uint8, 2 bits per weight, little end first."""
    flat = np.asarray(w, dtype=np.int8).ravel()
    if flat.size % 4 or not np.isin(flat, (-1, 0, 1)).all():
        raise ValueError("pack_ternary needs values in {-1, 0, 1} and a size divisible by 4")
    codes = np.where(flat < 0, 2, flat).astype(np.uint8).reshape(-1, 4)
    return codes[:, 0] | (codes[:, 1] << 2) | (codes[:, 2] << 4) | (codes[:, 3] << 6)


def unpack_ternary(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of pack_ternary."""
    p = np.asarray(packed, dtype=np.uint8)
    codes = np.stack([(p >> s) & 3 for s in (0, 2, 4, 6)], axis=1).ravel()
    return _DECODE[codes].reshape(shape)


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_weights(
    path: Path, ternary: dict[str, np.ndarray], floats: dict[str, np.ndarray], meta: dict[str, Any]
) -> str:
    """Write the file; returns its checksum."""
    arrays: dict[str, np.ndarray] = {}
    for name, w in ternary.items():
        arrays[f"{name}.t2"] = pack_ternary(w)
        arrays[f"{name}.shape"] = np.asarray(w.shape, dtype=np.int64)
    for name, v in floats.items():
        arrays[name] = np.ascontiguousarray(v, dtype=np.float32)
    arrays["__meta__"] = np.asarray(json.dumps(meta, sort_keys=True))
    digest = _digest(arrays)
    tmp = path.with_suffix(".tmp.npz")
    arrays["__sha256__"] = np.asarray(digest)
    np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
    return digest


def load_weights(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """(ternary int8 matrices, float arrays, meta) after verifying the checksum."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    recorded = str(arrays.pop("__sha256__", ""))
    if _digest(arrays) != recorded:
        raise ChecksumError(f"{path}: checksum mismatch, refusing to load these weights")
    meta = json.loads(str(arrays.pop("__meta__")))
    ternary: dict[str, np.ndarray] = {}
    floats: dict[str, np.ndarray] = {}
    for name, v in arrays.items():
        if name.endswith(".t2"):
            base = name[:-3]
            ternary[base] = unpack_ternary(v, tuple(int(s) for s in arrays[base + ".shape"]))
        elif not name.endswith(".shape"):
            floats[name] = v
    return ternary, floats, meta
