"""What is served but never indexed: ``<vault>/.memexignore`` in gitignore syntax, plus defaults.

Version-control internals, dependency trees and caches (``.git/``, ``node_modules/``, ``.venv/``,
``__pycache__/``…) are thousands of files nobody searches by meaning; they stay visible and
writable through the mount, they are just not extracted or embedded. Supported syntax, as in
gitignore(5): blank lines and ``#`` comments; ``!`` negates; a trailing ``/`` matches folders
only; a pattern with a ``/`` (other than at its end) is anchored at the vault root, otherwise it
matches a name at any depth; ``*``, ``?``, ``[...]`` within a name and ``**`` across folders.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".memexignore"
DEFAULTS = (".git/", ".hg/", ".svn/", "node_modules/", ".venv/", "venv/", "__pycache__/",
            ".mypy_cache/", ".pytest_cache/", ".ruff_cache/", ".tox/", "*.pyc", ".DS_Store")


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _translate(pattern: str) -> str:
    """A gitignore glob (without its leading ``/``) as a regex over a whole relative path."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j].replace("\\", "\\\\")
                out.append(f"[{'^' if body[:1] == '!' else ''}{body.lstrip('!')}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _rule(line: str) -> _Rule | None:
    line = line.rstrip("\n").rstrip()
    if not line or line.startswith("#"):
        return None
    negate = line.startswith("!")
    if negate:
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    body = _translate(line.lstrip("/"))
    regex = f"^{body}$" if anchored else f"^(?:.*/)?{body}$"
    return _Rule(re.compile(regex), negate, dir_only)


class IgnoreRules:
    """Decides, per vault-relative path, whether indexing skips it (last matching rule wins;
    a file inside an ignored folder is ignored)."""

    def __init__(self, lines: list[str]) -> None:
        self._rules = [r for r in map(_rule, lines) if r is not None]

    @classmethod
    def for_vault(cls, root: str | Path, extra: Sequence[str] = ()) -> IgnoreRules:
        """The defaults, ``extra`` (the config's excludes), then ``<root>/.memexignore`` (later
        rules win, so ``!name`` in the vault's own file takes back an exclude)."""
        try:
            own = (Path(root) / IGNORE_FILE).read_text(encoding="utf-8", errors="replace")
        except OSError:
            own = ""
        return cls([*DEFAULTS, *extra, *own.splitlines()])

    def _match(self, rel: str, is_dir: bool) -> bool | None:
        verdict: bool | None = None
        for r in self._rules:
            if (not r.dir_only or is_dir) and r.regex.match(rel):
                verdict = not r.negate
        return verdict

    def ignored(self, rel: str, is_dir: bool = False) -> bool:
        """Is ``rel`` (``a/b/c.txt``) skipped — itself, or through one of its folders?"""
        parts = rel.strip("/").split("/")
        for i in range(1, len(parts)):
            if self._match("/".join(parts[:i]), True):
                return True
        return bool(self._match("/".join(parts), is_dir))
