"""Ignored trees through a real mount (issue 12): served and writable, never indexed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.mounting import memexfs_cmd, mounted

pytestmark = [pytest.mark.mount, pytest.mark.timeout(300)]


def test_ignored_files_are_served_but_not_indexed(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    for rel, text in {".git/config": "[core] lentil soup", "notes/soup.md": "lentil soup recipe",
                      "build.log": "lentil soup build log"}.items():
        (vault / rel).parent.mkdir(parents=True, exist_ok=True)
        (vault / rel).write_text(text)
    (vault / ".memexignore").write_text("*.log\n")
    with mounted(vault, tmp_path / "mnt", "--no-watch") as m:
        (m.mnt / "node_modules" / "pkg").mkdir(parents=True)
        (m.mnt / "node_modules" / "pkg" / "soup.js").write_text("// lentil soup in code")
        (m.mnt / "notes" / "more.md").write_text("more lentil soup")
        st = m.wait_idle(timeout=240)
        assert (m.mnt / "node_modules" / "pkg" / "soup.js").read_text().startswith("//")
        assert (m.mnt / ".git" / "config").read_text().startswith("[core]")
        found = sorted(p for p in (m.mnt / "q" / "lentil soup").iterdir()
                       if p.name != ".results")
        names = {p.name for p in found}
        assert names == {"soup.md", "more.md"}, names
        assert st["files"] == 3  # notes/soup.md, notes/more.md and .memexignore itself
    check = subprocess.run(memexfs_cmd("check", str(vault)), capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
