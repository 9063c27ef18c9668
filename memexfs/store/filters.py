"""One translation of the neutral filter language into a backend's filter objects.

Edge (``qdrant_edge``) and the server backend (``qdrant_client.models``) spell the same Qdrant
conditions with different constructors; each backend supplies them as a :class:`FilterSyntax`
and :func:`translate` does the rest: the walk over nested filters, the escaping of values
(``memexfs.store.codec``), and empty clauses left out. Also here: the filters the stores
themselves need, so both delete and trim a file's chunks by the same conditions.
"""

from __future__ import annotations

from typing import Any, Protocol

from memexfs.store.api import Condition, Filter, IsEmpty, Match, MatchAny, Range
from memexfs.store.codec import escape_value


class FilterSyntax(Protocol):
    """A backend's constructors for each condition (values arrive escaped)."""

    def match(self, key: str, value: Any) -> Any: ...
    def match_any(self, key: str, values: list[Any]) -> Any: ...
    def range(self, key: str, gte: float | None, lte: float | None, gt: float | None,
              lt: float | None) -> Any: ...
    def is_empty(self, key: str) -> Any: ...
    def filter(self, must: list[Any] | None, should: list[Any] | None,
               must_not: list[Any] | None) -> Any: ...


def translate(f: Filter | None, syntax: FilterSyntax) -> Any:
    """The backend's filter for ``f`` (None for no filter, or an empty one)."""
    if not f:
        return None
    return _filter(f, syntax)


def _filter(f: Filter, syntax: FilterSyntax) -> Any:
    def clause(conds: tuple[Condition, ...]) -> list[Any] | None:
        return [_cond(c, syntax) for c in conds] or None

    return syntax.filter(clause(f.must), clause(f.should), clause(f.must_not))


def _cond(c: Condition, syntax: FilterSyntax) -> Any:
    if isinstance(c, Match):
        return syntax.match(c.key, escape_value(c.value))
    if isinstance(c, MatchAny):
        return syntax.match_any(c.key, escape_value(list(c.values)))
    if isinstance(c, Range):
        return syntax.range(c.key, c.gte, c.lte, c.gt, c.lt)
    if isinstance(c, IsEmpty):
        return syntax.is_empty(c.key)
    return _filter(c, syntax)


def of_file(file_id: str) -> Filter:
    """Every chunk of one file."""
    return Filter(must=(Match("file_id", file_id),))


def by_path(path: str) -> Filter:
    """The catalog entry at ``path``."""
    return Filter(must=(Match("path", path),))


def tail_of(file_id: str, count: int) -> Filter:
    """A file's chunks from index ``count`` on: what is left over when a file shrinks."""
    return Filter(must=(Match("file_id", file_id), Range("chunk_index", gte=count)))
