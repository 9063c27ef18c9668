"""Fixtures for the real-mount tests: one mount per test module, compared with a plain directory.

The reference directory sits on the same filesystem as the vault, so whatever the passthrough
inherits from the backing filesystem (xattr support, name limits) is the same on both sides.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.mounting import Mount, memexfs_cmd, mounted

_counter = itertools.count()


@dataclass
class Trees:
    """A live mount plus a plain reference directory; ``pair()`` gives fresh twin folders."""

    mount: Mount
    ref: Path

    def pair(self, prefix: str = "t") -> tuple[Path, Path]:
        name = f"{prefix}{next(_counter)}"
        a, b = self.mount.mnt / name, self.ref / name
        a.mkdir()
        b.mkdir()
        return a, b


def run_check(vault: Path) -> subprocess.CompletedProcess[str]:
    """``memexfs check VAULT`` (offline: takes the vault lock, so only after unmount)."""
    return subprocess.run(memexfs_cmd("check", str(vault)), capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trees]:
    """A vault mounted with ``--no-watch`` (all changes go through the mount, so the watcher
    would only echo them) and a sibling plain directory as the POSIX reference."""
    base = tmp_path_factory.mktemp("posix")
    ref = base / "ref"
    ref.mkdir()
    with mounted(base / "vault", base / "mnt", "--no-watch") as m:
        yield Trees(m, ref)
        assert m.proc.poll() is None, f"daemon died:\n{m.log_text()}"
