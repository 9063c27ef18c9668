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


def settle(m: Mount) -> None:
    """Before the unmount: the daemon is alive and its index caught up, so the check after it
    sees the index's final word, not a race with it."""
    assert m.proc.poll() is None, f"daemon died:\n{m.log_text()[-4000:]}"
    st = m.wait_idle(timeout=120)
    assert st["state"] == "idle", st


def assert_consistent(vault: Path) -> None:
    """After the unmount: ``memexfs check`` finds vault, catalog and chunks in agreement."""
    res = run_check(vault)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith("0 problem(s)"), res.stdout
