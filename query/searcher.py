"""Parse-then-search for one vault: the single path behind ``/q``, ``related/``, the CLI and the
Python API, so a folder and a command given the same words always answer the same.

The encoder loads lazily, on the first search (seconds, once): the caller passes a factory, so
this layer never imports the encoder package itself. The engine (numpy and the ranking code) is
imported then too, so a mount that builds a Searcher is not slowed down by it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING

from memexfs.store import Store
from query.explain import describe
from query.parse import Query, parse

if TYPE_CHECKING:
    from embed import Encoder
    from query.engine import SearchEngine, SearchResult, Tuning


class Searcher:
    """Thread-safe; ``today`` None means the real date at each search."""

    def __init__(self, store: Store, load_encoder: Callable[[], Encoder],
                 today: date | None = None, tuning: Tuning | None = None) -> None:
        self.store = store
        self.today = today
        self._load = load_encoder
        self._tuning = tuning
        self._engine: SearchEngine | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def engine(self) -> SearchEngine:
        with self._lock:
            if self._engine is None:
                from query.engine import SearchEngine

                self._engine = SearchEngine(self.store, self._load(), self._tuning)
            return self._engine

    def parse(self, segments: str | Sequence[str], k: int | None = None) -> Query:
        """A folder name (or nested names) read with the vault's known vendors."""
        eng = self.engine()
        q = parse(segments if isinstance(segments, str) else list(segments),
                  self.today or date.today(), eng.known_vendors())
        if k is not None:
            from dataclasses import replace

            q = replace(q, k=k)
        return q

    def search(self, segments: str | Sequence[str], k: int | None = None) -> SearchResult:
        return self.engine().search(self.parse(segments, k))

    def related(self, path: str, k: int = 20) -> SearchResult:
        return self.engine().related(path, k)

    def explain(self, segments: str | Sequence[str], reason: str | None = None) -> str:
        return describe(self.parse(segments), reason)

    def invalidate(self) -> None:
        """The index changed: cached catalog facts (known vendors) are stale."""
        if self._engine is not None:
            self._engine.invalidate()
