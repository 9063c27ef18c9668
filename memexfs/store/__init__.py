"""Storage behind a small interface: the catalog and the chunk index.

``Store`` (``api``) is what the rest of MemexFS codes against, with neutral filter, query and hit
types. Backends: ``EdgeStore`` (``edge``, Qdrant Edge in-process; its HNSW half ``edge_index``
and builder ``optimize``), ``ProcessStore`` (``process``: Edge in a child process, over
``wire``), ``ServerStore`` (``server``: a Qdrant server through qdrant-client). Shared by the
backends: one filter translation (``filters``), the non-UTF-8 name codec (``codec``), BM25
(``lexical``) and the numbered schema migrations (``migrations``). ``open_store`` (``open``)
picks the backend of a vault. Modules import downwards only: api, codec, filters, lexical,
migrations, optimize <- edge_index <- edge <- wire <- process; server; open last.
"""

from __future__ import annotations

from memexfs.errors import IndexFull, IndexUnavailable
from memexfs.store.api import (
    DENSE,
    PAGE,
    SPARSE,
    ChunkHit,
    ChunkPoint,
    ChunkQuery,
    Condition,
    Filter,
    IndexTooNew,
    IsEmpty,
    Match,
    MatchAny,
    Range,
    SearchMode,
    Store,
)
from memexfs.store.codec import escape_str, escape_value, unescape_str, unescape_value
from memexfs.store.edge import EdgeStore, default_reserve, is_panic
from memexfs.store.open import open_store
from memexfs.store.optimize import IndexPolicy
from memexfs.store.process import ProcessStore
from memexfs.store.server import ServerStore, Sharding, collection_prefix

__all__ = [
    "DENSE", "PAGE", "SPARSE", "ChunkHit", "ChunkPoint", "ChunkQuery", "Condition", "EdgeStore",
    "Filter", "IndexFull", "IndexPolicy", "IndexTooNew", "IndexUnavailable", "IsEmpty", "Match",
    "MatchAny", "ProcessStore", "Range", "SearchMode", "ServerStore", "Sharding", "Store",
    "collection_prefix", "default_reserve", "escape_str", "escape_value", "is_panic",
    "open_store", "unescape_str", "unescape_value",
]
