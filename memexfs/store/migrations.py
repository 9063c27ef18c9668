"""Numbered schema migrations of an index (``llm``'s style): each runs once, in order.

An index records the number of migrations it has had (``SCHEMA_VERSION`` once current). Opening
one runs those it lacks, recording the version after each, so a crash between two leaves it at a
version it really has. An index whose version is above ``SCHEMA_VERSION`` was written by newer
code: :func:`check_version` refuses it before anything is touched. A migration only asks the
backend for what it may change (:class:`SchemaTarget`), so Edge and the server backend share the
list; each step must be idempotent (a crash can repeat the last one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from memexfs.schema import SCHEMA_VERSION, IndexKind
from memexfs.store.api import IndexTooNew

log = logging.getLogger(__name__)


class SchemaTarget(Protocol):
    """What a migration may do to an index."""

    def create_index(self, collection: str, key: str, kind: IndexKind) -> None:
        """Create a payload index on ``collection`` ("catalog" or "chunks"); no-op if it exists."""
        ...


def m001_payload_indexes(t: SchemaTarget) -> None:
    """The indexes of the first release."""
    for key in ("path", "status", "dirs"):
        t.create_index("catalog", key, "keyword")
    for key in ("file_id", "dirs", "ext", "doc_type", "kind", "vendor", "status"):
        t.create_index("chunks", key, "keyword")
    t.create_index("chunks", "doc_day", "integer")


def m002_catalog_encoder_chunk_path(t: SchemaTarget) -> None:
    """Filtered fields without an index: the catalog's ``encoder`` (the re-embed scan at each
    start) and the chunks' ``path`` (``in:`` a folder that is a file's name)."""
    t.create_index("catalog", "encoder", "keyword")
    t.create_index("chunks", "path", "keyword")


MIGRATIONS: list[Callable[[SchemaTarget], None]] = [
    m001_payload_indexes,
    m002_catalog_encoder_chunk_path,
]


def check_version(found: int, where: str) -> None:
    """Refuse an index that newer code wrote (``found`` above ours)."""
    if found > SCHEMA_VERSION:
        raise IndexTooNew(
            f"the index in {where} has schema version {found}, newer than this MemexFS "
            f"understands ({SCHEMA_VERSION}): upgrade MemexFS, or move the index away to "
            f"rebuild it")


def migrate(target: SchemaTarget, found: int, record: Callable[[int], None],
            where: str) -> list[str]:
    """Bring an index at version ``found`` to ``SCHEMA_VERSION``; ``record(n)`` stores the
    version after migration n. Returns the names of the migrations run."""
    check_version(found, where)
    ran = []
    for number in range(found + 1, SCHEMA_VERSION + 1):
        step = MIGRATIONS[number - 1]
        step(target)
        record(number)
        ran.append(step.__name__)
    if ran and found:
        log.info("index in %s migrated from schema version %d: %s", where, found, ", ".join(ran))
    return ran
