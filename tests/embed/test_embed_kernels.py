"""Every compiled kernel path equals the exact reference bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embed import kernels as K

pytestmark = pytest.mark.filterwarnings("error")

PATHS = K.available_paths()


def _case(rng: np.random.Generator, m: int, k: int, n: int):
    x = (rng.standard_normal((m, k)) * rng.uniform(1e-3, 50, (m, 1))).astype(np.float32)
    if m > 1:
        x[0] = 0.0  # an all-zero row exercises the absmax floor
    w = rng.integers(-1, 2, (n, k)).astype(np.int8)
    ws = rng.uniform(1e-3, 0.1, n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    return x, K.TernaryLinear(w, ws, b)


@pytest.mark.timeout(60)
def test_extension_builds_and_offers_a_path() -> None:
    assert PATHS, "the C extension should build on the development machine"
    assert PATHS[-1] == "scalar"


@pytest.mark.timeout(30)
def test_dispatch_matches_cpu_flags() -> None:
    """A SIMD path is offered only when /proc/cpuinfo says the CPU has its instructions."""
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    assert ("vnni" in PATHS) == ({"avx512f", "avx512bw", "avx512_vnni"} <= flags)
    assert ("avx2" in PATHS) == ("avx2" in flags)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("m", "k", "n"),
    [(1, 4, 16), (5, 384, 48), (6, 384, 64), (37, 384, 1152), (103, 1536, 384), (200, 384, 1536)],
)
def test_compiled_equals_reference(path: str, m: int, k: int, n: int) -> None:
    rng = np.random.default_rng(m * 7919 + k * 31 + n)
    x, lin = _case(rng, m, k, n)
    q_ref, a_ref = K.quantize_ref(x)
    ref = K.matmul_ref(q_ref, a_ref, lin.w, lin.ws, lin.b)
    run = K.Runner(path, threads=2)
    q, a = run.quantize(x)
    assert np.array_equal(q.astype(np.int16) - 128, q_ref)
    assert np.array_equal(a, a_ref)
    assert np.array_equal(run.linear((q, a), lin), ref)
    assert np.array_equal(run.linear((q, a), lin, out_role="t"), ref)


@pytest.mark.timeout(60)
def test_torch_fallback_equals_reference() -> None:
    rng = np.random.default_rng(1)
    for m in (1, 16, 40):
        x, lin = _case(rng, m, 384, 384)
        q, a = K.quantize_ref(x)
        ref = K.matmul_ref(q, a, lin.w, lin.ws, lin.b)
        assert np.array_equal(K.Runner(K.REFERENCE).linear((q, a), lin), ref)


@pytest.mark.timeout(120)
@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 20),
    k4=st.integers(1, 40),
    n16=st.integers(1, 6),
    scale=st.floats(1e-6, 1e4),
    seed=st.integers(0, 2**32 - 1),
)
def test_all_paths_agree_on_random_shapes(m: int, k4: int, n16: int, scale: float, seed: int):
    rng = np.random.default_rng(seed)
    x, lin = _case(rng, m, 4 * k4, 16 * n16)
    x *= np.float32(scale)
    q_ref, a_ref = K.quantize_ref(x)
    ref = K.matmul_ref(q_ref, a_ref, lin.w, lin.ws, lin.b)
    for path in PATHS:
        run = K.Runner(path, threads=1)
        assert np.array_equal(run.linear(run.quantize(x), lin), ref), path


@pytest.mark.timeout(30)
def test_unsupported_path_is_refused_not_executed() -> None:
    ext = K.load_extension()
    assert ext is not None
    x = np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="not supported"):
        ext.quantize(x, np.empty((2, 4), np.uint8), np.empty(2, np.float32), 2, 4, 99)


@pytest.mark.timeout(30)
def test_failed_build_falls_back_to_reference_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    import embed._build

    def no_compiler() -> Path:
        raise RuntimeError("no C compiler")

    monkeypatch.setitem(sys.modules, "embed._cortex_kernels", None)  # import now fails
    monkeypatch.setattr(embed._build, "build_inplace", no_compiler)
    monkeypatch.setattr(K, "_ext", None)
    monkeypatch.setattr(K, "_ext_tried", False)
    with caplog.at_level("WARNING", logger="embed.kernels"):
        assert K.load_extension() is None
    assert "reference path" in caplog.text
    assert K.best_path() == K.REFERENCE
    run = K.Runner()
    x, lin = _case(np.random.default_rng(3), 20, 384, 384)
    q, a = K.quantize_ref(x)
    assert np.array_equal(
        run.linear(run.quantize(x), lin), K.matmul_ref(q, a, lin.w, lin.ws, lin.b)
    )


@pytest.mark.timeout(30)
def test_a_build_with_another_abi_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An in-place build left over from an older checkout imports fine but lacks functions."""
    import sys
    import types

    import embed._build

    old = types.ModuleType("embed._cortex_kernels")
    old.supported_paths = lambda: ["scalar"]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "embed._cortex_kernels", old)
    monkeypatch.setattr(embed._build, "is_stale", lambda: False)
    monkeypatch.setattr(K, "_ext", None)
    monkeypatch.setattr(K, "_ext_tried", False)
    with caplog.at_level("WARNING", logger="embed.kernels"):
        assert K.load_extension() is None
    assert "ABI" in caplog.text


@pytest.mark.timeout(30)
def test_stale_build_is_rebuilt_before_import(monkeypatch: pytest.MonkeyPatch) -> None:
    import embed._build

    built: list[bool] = []
    monkeypatch.setattr(embed._build, "is_stale", lambda: True)
    monkeypatch.setattr(embed._build, "build_inplace", lambda: built.append(True))
    monkeypatch.setattr(K, "_ext", None)
    monkeypatch.setattr(K, "_ext_tried", False)
    assert K.load_extension() is not None  # the (already imported) current build
    assert built == [True]


def test_is_stale_compares_the_build_with_every_source(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import embed._build

    fake = tmp_path / "kernels.so"
    monkeypatch.setattr(embed._build, "built_path", lambda: fake)
    assert not embed._build.is_stale()  # nothing built: not stale, just missing
    fake.write_bytes(b"")
    os.utime(fake, (0, 0))
    assert embed._build.is_stale()
    os.utime(fake, (4e9, 4e9))
    assert not embed._build.is_stale()


@pytest.mark.timeout(30)
def test_a_failing_part_is_raised_only_after_every_part_finished() -> None:
    import threading
    import time

    finished: list[int] = []
    lock = threading.Lock()

    def part(i: int, j: int) -> None:
        if i == 0:
            raise MemoryError("no room")
        time.sleep(0.3)
        with lock:
            finished.append(i)

    run = K.Runner("scalar", threads=2)
    with pytest.raises(MemoryError):
        run._run(part, [(0, 10), (10, 20)])
    assert finished == [10]
