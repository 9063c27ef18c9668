"""Virtual namespaces: ``/q/<query>/`` (search folders), ``/related/<path>/`` and the control file.

A query folder lists its results as relative symlinks to the real files, in rank order, plus a
hidden ``.results`` file (``mount.virtual.results``). Searches run in a worker thread behind a
limiter and a deadline and are cached per index generation and caller (``mount.virtual.base``).

Modules: ``base`` (nodes, attributes, listings and their cache), ``queries`` (``/q``),
``related``, ``control`` (``/.memexfs``), ``results`` (the ``.results`` format and its parser),
``caller`` (the caller's groups and system-call intent). The knowledge trees build on ``base``
in ``mount.knowledge_trees``.
"""

from __future__ import annotations

from mount.virtual.base import SearchBackend
from mount.virtual.control import ControlTree
from mount.virtual.queries import QueryTree
from mount.virtual.related import RelatedTree
from mount.virtual.results import (
    Hit,
    Listing,
    escape_field,
    read_cosine,
    read_fields_line,
    unescape_field,
)

__all__ = ["ControlTree", "Hit", "Listing", "QueryTree", "RelatedTree", "SearchBackend",
           "escape_field", "read_cosine", "read_fields_line", "unescape_field"]
