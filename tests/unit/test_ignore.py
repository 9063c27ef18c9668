"""``.memexignore``: gitignore syntax, with defaults for trees nobody searches by meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from memexfs.ignore import IgnoreRules
from memexfs.vault import Vault


@pytest.mark.parametrize(("lines", "path", "is_dir", "ignored"), [
    (["*.log"], "a/b/run.log", False, True),
    (["*.log"], "a/b/run.log.txt", False, False),
    (["build/"], "src/build", True, True),
    (["build/"], "src/build", False, False),  # a file called build is not the folder
    (["build/"], "src/build/out.o", False, True),  # inside an ignored folder
    (["/top.txt"], "top.txt", False, True),
    (["/top.txt"], "sub/top.txt", False, False),  # anchored at the vault root
    (["docs/*.md"], "docs/a.md", False, True),
    (["docs/*.md"], "docs/x/a.md", False, False),
    (["docs/**/*.md"], "docs/x/y/a.md", False, True),
    (["**/cache"], "a/b/cache", True, True),
    (["*.md", "!keep.md"], "notes/keep.md", False, False),  # the last matching rule wins
    (["secret/", "!secret/keep.md"], "secret/keep.md", False, True),  # git: parent excluded
    (["# a comment", "", "  "], "x.txt", False, False),
    (["file[0-9].txt"], "file7.txt", False, True),
    (["file[!0-9].txt"], "file7.txt", False, False),
])
def test_gitignore_rules(lines: list[str], path: str, is_dir: bool, ignored: bool) -> None:
    assert IgnoreRules(lines).ignored(path, is_dir) is ignored


def test_defaults_and_the_vault_file(tmp_path: Path) -> None:
    for rel in (".git/objects/ab", "node_modules/pkg/index.js", ".venv/lib/x.py",
                "src/__pycache__/m.pyc", "notes/a.md", "notes/run.log", "drafts/d.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / ".memexignore").write_text("*.log\ndrafts/\n")
    listed = sorted(rel for rel, _ in Vault.open(tmp_path).iter_files())
    assert listed == [".memexignore", "notes/a.md"]
