"""A live mount plus a plain reference directory, and the offline checker."""

from __future__ import annotations

import itertools
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.mounting import Mount, memexfs_cmd

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
