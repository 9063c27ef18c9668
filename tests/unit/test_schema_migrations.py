"""The numbered schema migrations on their own: order, once each, the version recorded after
each step, and an index newer than the code refused before anything runs."""

from __future__ import annotations

import pytest

from memexfs.schema import PAYLOAD_INDEXES, SCHEMA_VERSION, IndexKind
from memexfs.store import IndexTooNew, IndexUnavailable
from memexfs.store.migrations import MIGRATIONS, migrate


class Recorder:
    def __init__(self) -> None:
        self.indexes: dict[str, dict[str, IndexKind]] = {"catalog": {}, "chunks": {}}
        self.log: list[str] = []

    def create_index(self, collection: str, key: str, kind: IndexKind) -> None:
        self.indexes[collection][key] = kind
        self.log.append(f"{collection}.{key}")


def test_the_version_is_the_number_of_migrations_named_in_order() -> None:
    assert len(MIGRATIONS) == SCHEMA_VERSION
    assert [m.__name__[:5] for m in MIGRATIONS] == [f"m{n:03d}_" for n in
                                                    range(1, SCHEMA_VERSION + 1)]


def test_a_new_index_gets_every_migration_and_the_current_version() -> None:
    t, versions = Recorder(), []
    ran = migrate(t, 0, versions.append, "test")
    assert ran == [m.__name__ for m in MIGRATIONS]
    assert versions == list(range(1, SCHEMA_VERSION + 1))  # recorded after each step
    assert t.indexes == PAYLOAD_INDEXES  # the schema's table is what the migrations build


def test_an_old_index_runs_only_what_it_lacks() -> None:
    t, versions = Recorder(), []
    assert migrate(t, 1, versions.append, "test") == ["m002_catalog_encoder_chunk_path"]
    assert versions == [2]
    assert "catalog.path" not in t.log  # m001 is not run again
    assert t.indexes == {"catalog": {"encoder": "keyword"}, "chunks": {"path": "keyword"}}


def test_a_current_index_runs_nothing() -> None:
    t, versions = Recorder(), []
    assert migrate(t, SCHEMA_VERSION, versions.append, "test") == []
    assert (versions, t.log) == ([], [])


def test_a_newer_index_is_refused_with_a_clear_message() -> None:
    t, versions = Recorder(), []
    with pytest.raises(IndexTooNew, match=rf"schema version {SCHEMA_VERSION + 1}, newer than "
                                          rf"this MemexFS understands \({SCHEMA_VERSION}\)"):
        migrate(t, SCHEMA_VERSION + 1, versions.append, "/v/.memexfs/index")
    assert (versions, t.log) == ([], [])
    assert issubclass(IndexTooNew, IndexUnavailable)  # same errno, same handling upstream
