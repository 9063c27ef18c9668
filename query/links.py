"""Links between vault files: markdown wiki links, relative markdown links and e-mail threads.

Edges come from the files themselves, read-only through the vault root (link syntax does not
survive chunking intact, and a chunk's body may cut a ``[[link]]`` in two):

* ``[[Note]]``, ``[[Note|alias]]``, ``[[Note#Heading]]``, ``![[embed]]`` — resolved like Obsidian:
  by file stem (``Note`` -> ``Note.md``) or by name (``[[scan.pdf]]``), case-insensitively; a
  target with a folder (``[[dir/Note]]``) matches on its path suffix; ties go to the file in the
  source's own folder, then the shortest path, then the first in sort order.
* ``[text](path)`` / ``![alt](path)`` with a path relative to the source (``/`` = vault root),
  ``%20`` and ``<...>`` forms, ``#heading`` dropped; ``http:``/``mailto:`` etc. are not edges.
* E-mail: a message's ``In-Reply-To`` (else the last known id in ``References``) points at the
  message whose ``Message-ID`` it names.

Code fences and inline code are skipped. :class:`LinkGraph` keeps each source's raw links and
resolves them against the current set of paths, so a file created later picks up links that were
dangling, and one file's change re-reads only that file.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

log = logging.getLogger(__name__)

LinkKind = Literal["wiki", "markdown", "reply"]

LINK_EXTS = frozenset({"md", "markdown", "mdx", "txt", "org", "rst"})  # files whose text we parse
MAIL_EXTS = frozenset({"eml"})
MAX_READ = 2 << 20  # bytes read per file: links in a 30 MB log are not worth the time
MAIL_HEADER_BYTES = 64 << 10

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_WIKI = re.compile(r"!?\[\[([^\[\]\n]+?)\]\]")
_MD = re.compile(r"!?\[(?P<text>[^\[\]\n]*)\]\(\s*(?P<target><[^>\n]+>|[^)\s]+)"
                 r"(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_MSGID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True)
class RawLink:
    """A link as written in its source, before resolution."""

    kind: LinkKind
    target: str  # wiki: the page part; markdown: the path part (decoded); reply: a Message-ID
    line: int  # 1-based line in the source (0 for e-mail headers)
    text: str  # alias / anchor text / header name


@dataclass(frozen=True)
class Link:
    """A resolved edge ``source -> target`` (vault-relative paths)."""

    source: str
    target: str
    kind: LinkKind
    line: int
    text: str


# ---- parsing ---------------------------------------------------------------------------------
def parse_links(text: str) -> list[RawLink]:
    """Wiki and markdown links in ``text`` (outside code), in order of appearance."""
    out: list[RawLink] = []
    fenced = False
    for no, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced or ("[" not in line):
            continue
        line = _INLINE_CODE.sub(lambda m: " " * len(m[0]), line)
        for m in _WIKI.finditer(line):
            inner = m[1]
            page, _, alias = inner.partition("|")
            page = page.split("#", 1)[0].split("^", 1)[0].strip()
            if page:
                out.append(RawLink("wiki", page, no, alias.strip() or page))
        for m in _MD.finditer(line):
            target = m["target"]
            if target.startswith("<"):
                target = target[1:-1]
            if _SCHEME.match(target) or target.startswith("#"):
                continue
            target = unquote(target.split("#", 1)[0].split("?", 1)[0]).strip()
            if target:
                out.append(RawLink("markdown", target, no, m["text"].strip()))
    return out


@dataclass(frozen=True)
class MailIds:
    """Thread headers of one message (ids without angle brackets)."""

    message_id: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()


def parse_mail_ids(data: bytes) -> MailIds:
    """Message-ID, In-Reply-To and References from the header block of an RFC 5322 message."""
    head = data[:MAIL_HEADER_BYTES]
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(head)
    except Exception:  # a malformed header block is no thread, not an error
        return MailIds()

    def ids(name: str) -> list[str]:
        values = msg.get_all(name) or []
        return [m for v in values for m in _MSGID.findall(str(v))]

    mid = ids("Message-ID")
    parent = ids("In-Reply-To")
    return MailIds(mid[0] if mid else "", parent[0] if parent else "", tuple(ids("References")))


def mail_links(ids: MailIds) -> list[RawLink]:
    """The reply edge of a message: its parent, else its references from the nearest back."""
    if ids.in_reply_to:
        return [RawLink("reply", ids.in_reply_to, 0, "In-Reply-To")]
    return [RawLink("reply", ref, 0, "References") for ref in reversed(ids.references)]


# ---- resolution --------------------------------------------------------------------------------
def _ext(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name.lstrip(".") else ""


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


class PathIndex:
    """Vault paths by lower-case name and stem, for Obsidian-style resolution."""

    def __init__(self, paths: Iterable[str] = ()) -> None:
        self.paths: set[str] = set()
        self._lower: dict[str, str] = {}
        self._by_name: dict[str, set[str]] = {}
        self._by_stem: dict[str, set[str]] = {}
        for p in paths:
            self.add(p)

    def add(self, path: str) -> None:
        if path in self.paths:
            return
        self.paths.add(path)
        self._lower.setdefault(path.lower(), path)
        name = path.rsplit("/", 1)[-1].lower()
        self._by_name.setdefault(name, set()).add(path)
        self._by_stem.setdefault(_stem(name), set()).add(path)

    def remove(self, path: str) -> None:
        if path not in self.paths:
            return
        self.paths.discard(path)
        if self._lower.get(path.lower()) == path:
            del self._lower[path.lower()]
            for other in self.paths:  # another path with the same lower-case spelling
                if other.lower() == path.lower():
                    self._lower[path.lower()] = other
                    break
        name = path.rsplit("/", 1)[-1].lower()
        for table, key in ((self._by_name, name), (self._by_stem, _stem(name))):
            group = table.get(key)
            if group is not None:
                group.discard(path)
                if not group:
                    del table[key]

    def exact(self, path: str) -> str | None:
        if path in self.paths:
            return path
        return self._lower.get(path.lower())

    def wiki(self, page: str, source: str) -> str | None:
        """Resolve ``[[page]]`` written in ``source``."""
        page = page.strip().strip("/")
        key = page.lower()
        name = key.rsplit("/", 1)[-1]
        folder = key.rsplit("/", 1)[0] if "/" in key else ""
        # [[Note.pdf]] names a file; [[Note]] means a text note with that stem (Note.md first)
        cands = set(self._by_name.get(name, ()))
        cands |= {p for p in self._by_stem.get(name, ()) if _ext(p) in LINK_EXTS}
        if folder:
            cands = {p for p in cands
                     if ("/" + _parent(p.lower())).endswith("/" + folder)}
        if not cands:
            return None
        here = _parent(source)

        def rank(p: str) -> tuple[int, int, int, str]:
            md_first = 0 if _ext(p) in ("md", "markdown") else 1
            return (0 if _parent(p) == here else 1, md_first, p.count("/"), p)

        return min(cands, key=rank)

    def relative(self, target: str, source: str) -> str | None:
        """Resolve a markdown link path written in ``source``."""
        if target.startswith("/"):
            joined = target.lstrip("/")
        else:
            joined = posixpath.join(_parent(source), target)
        norm = posixpath.normpath(joined)
        if norm.startswith("..") or norm in (".", ""):
            return None  # outside the vault
        found = self.exact(norm)
        if found is None and not _ext(norm):
            found = self.exact(norm + ".md")
        return found


# ---- the graph -------------------------------------------------------------------------------
class LinkGraph:
    """Raw links per source file, resolved on demand against the current paths."""

    def __init__(self) -> None:
        self.index = PathIndex()
        self._raw: dict[str, list[RawLink]] = {}
        self._mail: dict[str, MailIds] = {}
        self._by_msgid: dict[str, str] = {}
        self._edges: list[Link] | None = None
        self._out: dict[str, list[Link]] = {}
        self._in: dict[str, list[Link]] = {}

    # -- updates
    def set_file(self, path: str, raw: Iterable[RawLink] = (),
                 mail: MailIds | None = None) -> None:
        """Record ``path`` (new or changed) with its raw links and thread headers."""
        self.index.add(path)
        self._raw[path] = [r for r in raw if r.kind != "reply"]
        old = self._mail.pop(path, None)
        if old is not None and self._by_msgid.get(old.message_id) == path:
            del self._by_msgid[old.message_id]
        if mail is not None:
            self._mail[path] = mail
            if mail.message_id:
                self._by_msgid.setdefault(mail.message_id, path)
        self._edges = None

    def remove_file(self, path: str) -> None:
        self.index.remove(path)
        self._raw.pop(path, None)
        old = self._mail.pop(path, None)
        if old is not None and self._by_msgid.get(old.message_id) == path:
            del self._by_msgid[old.message_id]
            for p, m in sorted(self._mail.items()):  # a copy of the same message takes over
                if m.message_id == old.message_id:
                    self._by_msgid[old.message_id] = p
                    break
        self._edges = None

    # -- queries
    def edges(self) -> list[Link]:
        """Every resolved edge, sorted; self-links and duplicates dropped."""
        if self._edges is None:
            seen: set[tuple[str, str, str]] = set()
            replied: set[str] = set()  # one parent per message
            out: list[Link] = []
            for src in sorted(self._raw):
                raws = list(self._raw[src])
                if src in self._mail:
                    raws += mail_links(self._mail[src])
                for r in raws:
                    dst = self._resolve(r, src)
                    if dst is None or dst == src or (src, dst, r.kind) in seen:
                        continue
                    if r.kind == "reply":
                        if src in replied:
                            continue
                        replied.add(src)
                    seen.add((src, dst, r.kind))
                    out.append(Link(src, dst, r.kind, r.line, r.text))
            self._out, self._in = {}, {}
            for e in out:
                self._out.setdefault(e.source, []).append(e)
                self._in.setdefault(e.target, []).append(e)
            self._edges = out
        return self._edges

    def _resolve(self, r: RawLink, src: str) -> str | None:
        if r.kind == "wiki":
            return self.index.wiki(r.target, src)
        if r.kind == "markdown":
            return self.index.relative(r.target, src)
        return self._by_msgid.get(r.target)

    def outgoing(self, path: str) -> list[Link]:
        self.edges()
        return list(self._out.get(path, ()))

    def backlinks(self, path: str) -> list[Link]:
        """What links to ``path``, sorted by source path."""
        self.edges()
        return list(self._in.get(path, ()))

    def neighbours(self, path: str) -> set[str]:
        """Files linked to or from ``path``."""
        self.edges()
        return ({e.target for e in self._out.get(path, ())}
                | {e.source for e in self._in.get(path, ())})

    def linked(self, a: str, b: str) -> bool:
        return b in self.neighbours(a)

    def degree(self, path: str) -> int:
        return len(self.neighbours(path))


# ---- reading the vault -----------------------------------------------------------------------
def read_vault_file(root: str | os.PathLike[str], path: str, limit: int = MAX_READ) -> bytes | None:
    """The first ``limit`` bytes of a regular vault file, never following a symlink at the end;
    None when it is gone or not a regular file."""
    full = os.path.join(os.fspath(root), path)
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.pread(fd, limit, 0)
    except OSError:
        return None
    finally:
        os.close(fd)


def scan_file(graph: LinkGraph, path: str,
              read: Callable[[str, int], bytes | None]) -> None:
    """(Re)read one file's links into ``graph``; files of other types are recorded as targets."""
    ext = _ext(path)
    if ext in LINK_EXTS:
        data = read(path, MAX_READ)
        text = data.decode("utf-8", "replace") if data else ""
        graph.set_file(path, parse_links(text))
    elif ext in MAIL_EXTS:
        data = read(path, MAIL_HEADER_BYTES)
        graph.set_file(path, (), parse_mail_ids(data) if data else None)
    else:
        graph.set_file(path)


def build_graph(root: str | os.PathLike[str], paths: Iterable[str]) -> LinkGraph:
    """The link graph of ``paths`` (vault-relative), reading their text from ``root``."""
    graph = LinkGraph()
    base = Path(root)

    def read(p: str, limit: int) -> bytes | None:
        return read_vault_file(base, p, limit)

    for p in sorted(paths):
        scan_file(graph, p, read)
    log.debug("link graph: %d files, %d edges", len(graph.index.paths), len(graph.edges()))
    return graph
