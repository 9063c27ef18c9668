"""Changes made directly in the vault while mounted reach the kernel's caches at once, not after
the attribute timeout: the watcher drops the cached entries and attributes it concerns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.mounting import mounted
from tests.waiting import eventually

pytestmark = [pytest.mark.mount, pytest.mark.timeout(120)]


def test_outside_edit_create_and_delete_are_seen_through_the_mount(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    (vault / "d").mkdir(parents=True)
    (vault / "d" / "f.txt").write_text("hello\n")
    with mounted(vault, tmp_path / "mnt") as m:
        m.wait_idle(timeout=120)
        f = m.mnt / "d" / "f.txt"
        assert f.read_text() == "hello\n"
        assert os.stat(f).st_size == 6  # now cached by the kernel for the attr timeout (5 s)
        (vault / "d" / "f.txt").write_text("hello world, longer now\n")
        (vault / "d" / "g.txt").write_text("new\n")
        # well inside the 5 s attribute timeout: only an invalidation explains a fresh view
        assert eventually(lambda: os.stat(f).st_size == 24, timeout=4.0)
        assert f.read_text() == "hello world, longer now\n"
        assert "g.txt" in os.listdir(m.mnt / "d")
        assert (m.mnt / "d" / "g.txt").read_text() == "new\n"
        (vault / "d" / "g.txt").unlink()
        assert eventually(lambda: not (m.mnt / "d" / "g.txt").exists(), timeout=4.0)
