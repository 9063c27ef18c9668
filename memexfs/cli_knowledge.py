"""``memexfs topics|bridges|summary|graph``: the knowledge folders' engine from the command line.

The vault must not be mounted (the daemon holds its index): each command opens it offline, as
``memexfs search`` does, and runs :class:`query.knowledge.Knowledge` over it; the topic model is
read from and saved to the vault's state folder, so the ids match the mount's ``topics/``.
Registered by :mod:`memexfs.cli` through :func:`add_parsers` and :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a command runs: numpy and the engine cost every CLI call 0.3 s
    from query.knowledge import Knowledge


@contextlib.contextmanager
def _knowledge(source: str, encoder: str | None) -> Iterator[Knowledge]:
    from memexfs.cli import offline  # late: memexfs.cli imports this module
    from query.knowledge import Knowledge

    def load() -> Any:
        from embed import load_encoder

        return load_encoder(encoder)

    with offline(source) as (vault, store):
        k = Knowledge(store, vault.root, load, vault.state, background=False)
        try:
            yield k
        finally:
            k.close()


def _rel(source: str, path: str) -> str:
    return os.path.relpath(path, os.path.realpath(source)) if os.path.isabs(path) else path


def add_parsers(sub: Any) -> None:
    """Add the four commands to ``memexfs``'s sub-parsers."""
    t = sub.add_parser("topics", help="the vault's topics (what topics/ shows)")
    t.add_argument("source")
    t.add_argument("--json", action="store_true")
    t.add_argument("--encoder")

    b = sub.add_parser("bridges", help="files like PATH in other topics and folders, unlinked")
    b.add_argument("source")
    b.add_argument("path")
    b.add_argument("-k", type=int, default=20)
    b.add_argument("--json", action="store_true")
    b.add_argument("--encoder")

    s = sub.add_parser("summary", help="an extractive summary of PATH, cited by line")
    s.add_argument("source")
    s.add_argument("path")
    s.add_argument("--json", action="store_true")
    s.add_argument("--encoder")

    g = sub.add_parser("graph", help="write the vault's graph as a page or picture")
    g.add_argument("source")
    g.add_argument("-o", "--output", required=True, type=Path,
                   help="graph.html (self-contained page), .svg or .png")
    g.add_argument("--summaries", action="store_true",
                   help="summaries on hover (costs the encoder per file)")
    g.add_argument("--json", action="store_true", help="print nodes/edges counts as JSON")
    g.add_argument("--encoder")


def cmd_topics(a: argparse.Namespace) -> int:
    with _knowledge(a.source, a.encoder) as k:
        topics, unsorted = k.topics(), k.unsorted()
    if a.json:
        print(json.dumps({"topics": [
            {"id": t.id, "name": t.name, "keywords": t.keywords, "size": t.size,
             "files": t.files, "subtopics": [{"id": c.id, "name": c.name, "size": c.size,
                                              "files": c.files} for c in t.children]}
            for t in topics], "unsorted": unsorted}, indent=2))
        return 0
    for t in topics:
        print(f"{t.id:>4}  {t.name}  ({t.size} files)")
        for c in t.children:
            print(f"{c.id:>8}  {c.name}  ({c.size})")
    if unsorted:
        print(f"      unsorted  ({len(unsorted)} files)")
    return 0


def cmd_bridges(a: argparse.Namespace) -> int:
    from memexfs.cli import CliError
    from memexfs.errors import NotFound

    with _knowledge(a.source, a.encoder) as k:
        try:
            found = k.bridges(_rel(a.source, a.path), k=a.k)
        except NotFound as exc:
            raise CliError(str(exc)) from None
    if a.json:
        print(json.dumps({"bridges": [
            {"path": b.path, "score": b.score, "topic": b.topic,
             "why": {"here": b.source.text, "there": b.target.text}} for b in found]},
            indent=2))
        return 0
    if not found:
        print("no bridges", file=sys.stderr)
    for b in found:
        print(f"{b.score:.3f}  {b.path}\n       here:  {b.source.text}\n"
              f"       there: {b.target.text}")
    return 0


def cmd_summary(a: argparse.Namespace) -> int:
    rel = _rel(a.source, a.path)
    with _knowledge(a.source, a.encoder) as k:
        text = k.summary(rel)
    if a.json:
        rows = []
        for line in text.splitlines():
            body, _, cite = line[2:].rpartition("  [")
            path, _, no = cite.rstrip("]").rpartition(":")
            rows.append({"sentence": body, "path": path, "line": int(no) if no.isdigit() else 0})
        print(json.dumps({"path": rel, "summary": rows}, indent=2))
        return 0
    sys.stdout.write(text)
    return 0


def cmd_graph(a: argparse.Namespace) -> int:
    from memexfs.cli import CliError
    from query.graph_page import ExportError, write_graph

    with _knowledge(a.source, a.encoder) as k:
        graph = k.graph(summaries=a.summaries)
    try:
        name = os.path.basename(os.path.realpath(a.source))
        write_graph(graph, a.output, title=f"MemexFS: {name}")
    except ExportError as exc:
        raise CliError(str(exc)) from None
    counts = {"nodes": len(graph.nodes), "edges": len(graph.edges),
              "topics": len(graph.topics), "output": str(a.output)}
    if a.json:
        print(json.dumps(counts, indent=2))
    else:
        print(f"wrote {a.output}: {counts['nodes']} files, {counts['edges']} edges, "
              f"{counts['topics']} topics")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "topics": cmd_topics, "bridges": cmd_bridges, "summary": cmd_summary, "graph": cmd_graph}


def main(argv: list[str] | None = None) -> int:
    """``python -m memexfs.cli_knowledge CMD ...``: these commands without the rest of the CLI."""
    from memexfs.cli import CliError
    from memexfs.errors import MemexError

    parser = argparse.ArgumentParser(prog="memexfs")
    add_parsers(parser.add_subparsers(dest="cmd", required=True))
    a = parser.parse_args(argv)
    try:
        return COMMANDS[a.cmd](a)
    except CliError as exc:
        print(f"memexfs: {exc}", file=sys.stderr)
        return exc.code
    except (MemexError, OSError) as exc:
        print(f"memexfs: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
