"""The shipped weights: 2-bit packing, size budget, checksum verification."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embed.packing import ChecksumError, load_weights, pack_ternary, save_weights, unpack_ternary
from embed.ternary import WEIGHTS_FILE

pytestmark = pytest.mark.filterwarnings("error")


@pytest.mark.timeout(60)
@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([-1, 0, 1]), min_size=1, max_size=100).map(lambda v: v * 4))
def test_pack_roundtrip(values: list[int]) -> None:
    w = np.asarray(values, dtype=np.int8)
    packed = pack_ternary(w)
    assert packed.nbytes == w.size // 4
    assert np.array_equal(unpack_ternary(packed, w.shape), w)


@pytest.mark.timeout(10)
def test_pack_rejects_non_ternary() -> None:
    with pytest.raises(ValueError, match="-1, 0, 1"):
        pack_ternary(np.array([0, 1, 2, -1], dtype=np.int8))


@pytest.mark.timeout(30)
def test_shipped_weights_verify_and_fit_the_budget() -> None:
    tern, floats, meta = load_weights(WEIGHTS_FILE)
    assert meta["name"] == "cortex-b158-v1"
    n_weights = sum(w.size for w in tern.values())
    assert n_weights == 6 * (4 * 384 * 384 + 2 * 384 * 1536)  # every encoder linear is ternary
    with np.load(WEIGHTS_FILE) as z:
        packed_bytes = sum(z[k].nbytes for k in z.files if k.endswith(".t2"))
    assert packed_bytes <= 3 * 1024 * 1024
    assert WEIGHTS_FILE.stat().st_size <= 4 * 1024 * 1024
    assert all(set(np.unique(w)) <= {-1, 0, 1} for w in tern.values())
    assert all(np.isfinite(v).all() for v in floats.values())


@pytest.mark.timeout(30)
def test_tampered_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    rng = np.random.default_rng(0)
    save_weights(
        path,
        {"a": rng.integers(-1, 2, (16, 8)).astype(np.int8)},
        {"a.scale": np.asarray(0.5, np.float32)},
        {"name": "t"},
    )
    tern, _, _ = load_weights(path)
    assert tern["a"].shape == (16, 8)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["a.t2"] = arrays["a.t2"] ^ np.uint8(1)  # flip one bit per byte
    np.savez(path, **arrays)
    with pytest.raises(ChecksumError):
        load_weights(path)
