"""Lines repeated across many files of a vault (letterheads, footers, "Page 1 of 2", greetings):
the snippet skips them, since they say nothing about why *this* file matched.

A "line" is a line of a chunk body cut at sentence ends too: a footer that a PDF wrapped at
different places in different files still shares its sentences ("Questions about your bill?").
:class:`LineFrequency` keeps, per vault, how many distinct chunk bodies hold each normalised
line (a document frequency), built from the store by a background thread: one scroll of every
chunk (~15 ms for personal-dev's 563 chunks; seconds at 100k), then only the lines held by
two chunks or more are kept, at most ``max_lines`` of them (~10 MB at worst). After index
changes it is rebuilt at most once per ``min_interval`` seconds, and searches use the last table
built meanwhile: a footer stays a footer while a few files change. Lines are keyed by Python's
string hash, which is stable within the process that holds the table.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from memexfs.store import Store

log = logging.getLogger(__name__)

# A scan of every chunk takes seconds at 100k chunks and more at a million: after a build that
# took t seconds the next waits at least COST_SHARE * t, so the scans cost a vault that keeps
# changing at most 2% of one core.
COST_SHARE = 50.0

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")  # "## Bill to", "- Bill to:" and "bill to" are one line
_SENTENCE_END = re.compile(r"(?<=[a-z0-9]{2}[.?!])\s+")  # not after "Mr." or "1."


def lines(body: str) -> list[str]:
    """The body's lines, each cut at its sentence ends; blank ones left out."""
    return [part for line in body.splitlines() for part in _SENTENCE_END.split(line)
            if part.strip()]


def normalise(line: str) -> str:
    """Case, runs of spaces, control characters and the punctuation around a line do not
    count; digits do ("Total due: $0.00" is boilerplate, "Total due: $149.00" is not)."""
    return _EDGES.sub("", " ".join(_CONTROL.sub(" ", line).lower().split()))


@dataclass(frozen=True)
class LineTable:
    """How many distinct chunk bodies hold each line, for the lines held by two or more."""

    chunks: int  # distinct chunk bodies counted
    counts: dict[int, int]

    def df(self, line: str) -> int:
        norm = normalise(line)
        return self.counts.get(hash(norm), 1) if norm else 0

    def common(self, line: str, more_than: int) -> bool:
        return self.df(line) > more_than


def build_table(bodies: Iterable[str], max_lines: int = 100_000) -> LineTable:
    """The table of these chunk bodies. Identical bodies count once: copies of a note (in
    Downloads, "notes (1).md") repeat its lines without making them boilerplate."""
    keys = array("q")
    seen: set[int] = set()
    for body in bodies:
        if hash(body) in seen:
            continue
        seen.add(hash(body))
        keys.extend({hash(norm) for norm in map(normalise, lines(body)) if norm})
    if not keys:
        return LineTable(len(seen), {})
    uniq, counts = np.unique(np.frombuffer(keys, dtype=np.int64), return_counts=True)
    shared = np.flatnonzero(counts > 1)
    shared = shared[np.argsort(-counts[shared], kind="stable")[:max_lines]]
    return LineTable(len(seen), dict(zip(uniq[shared].tolist(), counts[shared].tolist(),
                                         strict=True)))


class LineFrequency:
    """The :class:`LineTable` of one store, built and refreshed in the background; thread-safe."""

    def __init__(self, store: Store, min_interval: float = 60.0,
                 max_lines: int = 100_000) -> None:
        self.store = store
        self.min_interval = min_interval
        self.max_lines = max_lines
        self._table: LineTable | None = None
        self._generation = 0  # bumped by invalidate()
        self._built = -1  # the generation the table was built from
        self._started = -float("inf")  # monotonic time the last build began (failed or not)
        self._cost = 0.0  # seconds the last build took: rebuilds keep below 1/COST_SHARE of time
        self._done = threading.Event()  # set while no build is running
        self._done.set()
        self._lock = threading.Lock()

    def table(self, wait: float = 0.0) -> LineTable | None:
        """The last table built, starting a build when there is none or it is stale. With no
        table yet, waits up to ``wait`` seconds for the first build (a small vault's first
        listing then already skips its footers)."""
        with self._lock:
            table = self._table
            stale = self._built != self._generation
            due = time.monotonic() - self._started >= max(self.min_interval,
                                                          COST_SHARE * self._cost)
            if stale and due and self._done.is_set():
                self._start()
        if table is None and wait > 0 and self._done.wait(wait):
            with self._lock:
                table = self._table
        return table

    def invalidate(self) -> None:
        """The index changed: rebuild on a later :meth:`table` call."""
        with self._lock:
            self._generation += 1

    def refresh(self) -> LineTable:
        """Build the table now, in the calling thread."""
        with self._lock:
            generation = self._generation
        table = build_table((str(h.payload.get("body", "")) for h in self.store.iter_chunks(None)),
                            self.max_lines)
        with self._lock:
            self._table, self._built = table, generation
        return table

    def _start(self) -> None:  # under _lock
        self._started = time.monotonic()
        self._done.clear()
        threading.Thread(target=self._run, name="memexfs-line-df", daemon=True).start()

    def _run(self) -> None:
        t0 = time.perf_counter()
        try:
            table = self.refresh()
        except Exception as exc:  # the store closed or failed mid-scan: snippets skip nothing
            log.info("line frequencies not built: %s", exc)
        else:
            log.debug("line frequencies: %d shared lines over %d chunks in %.2fs",
                      len(table.counts), table.chunks, time.perf_counter() - t0)
        finally:
            with self._lock:
                self._cost = time.perf_counter() - t0
            self._done.set()
