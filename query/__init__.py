"""Query side of MemexFS: parse a /q folder name, search the index, one result per file.

``parse(name, today)`` -> :class:`Query`; ``SearchEngine(store, encoder).search(query)`` ->
:class:`SearchResult` of :class:`FileHit`; ``.related(path)`` for files like a given one.
"""

from __future__ import annotations

from query.engine import FileHit, SearchEngine, SearchResult, Tuning
from query.parse import Query, parse

__all__ = ["FileHit", "Query", "SearchEngine", "SearchResult", "Tuning", "parse"]
