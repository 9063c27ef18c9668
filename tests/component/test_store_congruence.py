"""Edge and the server backend rank alike: the same small corpus in Qdrant Edge and in
qdrant-client's local mode, the same dense, hybrid (RRF with ``rrf_k`` and ``weights``, DBSF),
sparse, negation/filter and facet queries; the same ids in the same order, scores within a
tolerance. Vectors are seeded random (this is about the store layer, not about quality); each
chunk has a length of its own, so no two BM25 scores tie: Edge and local mode order equal scores
differently, which is the one difference allowed."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from memexfs.schema import location_payload
from memexfs.store import (
    ChunkHit,
    ChunkPoint,
    ChunkQuery,
    EdgeStore,
    Filter,
    IsEmpty,
    Match,
    MatchAny,
    Range,
    ServerStore,
    Store,
)

pytestmark = pytest.mark.timeout(120)

DIM = 16
WORDS = ("invoice", "payment", "acme", "rent", "lease", "garden", "tomato", "budget", "travel",
         "train", "hotel", "receipt", "insurance", "policy", "claim", "tax", "refund", "salary",
         "contract", "notice")
KINDS = ("invoice", "receipt", "contract", "note")
VENDORS = ("acme", "globex", "initech", None)


def _vec(rng: np.random.Generator) -> list[float]:
    v = rng.standard_normal(DIM)
    return (v / np.linalg.norm(v)).tolist()


def _fid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _corpus() -> list[tuple[str, list[ChunkPoint]]]:
    rng = np.random.default_rng(7)
    files = []
    length = 3  # a length of its own per chunk: no two BM25 scores tie (the engines order
    # ties differently, and a tie cut by a prefetch limit changes the fused ranks)
    for n in range(24):
        path = f"{('home', 'work', 'tax')[n % 3]}/{n:02d}-{KINDS[n % 4]}.txt"
        fields = {"kind": KINDS[n % 4], "doc_day": 19000 + 17 * n, "amount": 10.0 * n}
        if VENDORS[n % 4] is not None:
            fields["vendor"] = VENDORS[n % 4]
        chunks = []
        for i in range(1 + n % 3):
            length += 1
            text = " ".join(rng.choice(WORDS, size=length))
            chunks.append(ChunkPoint(_fid(n), i, _vec(rng), text,
                                     {**location_payload(path), **fields, "body": text,
                                      "chunk_hash": f"h{n}-{i}", "encoder": "test"}))
        files.append((_fid(n), chunks))
    return files


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Store]]:
    from qdrant_client import QdrantClient

    edge = EdgeStore(tmp_path_factory.mktemp("congruence") / "index", DIM)
    server = ServerStore(DIM, client=QdrantClient(location=":memory:"), prefix="c")
    for s in (edge, server):
        for fid, chunks in _corpus():
            s.put_chunks(fid, chunks)
    yield edge, server
    edge.close()
    server.close()


QV = _vec(np.random.default_rng(99))
NOT_ACME = Filter(must_not=(Match("vendor", "acme"),))
QUERIES = {
    "dense": ChunkQuery(limit=15, dense=QV, mode="dense"),
    "dense-threshold": ChunkQuery(limit=30, dense=QV, mode="dense", score_threshold=0.2),
    "sparse": ChunkQuery(limit=15, text="invoice payment acme", mode="sparse"),
    "hybrid-rrf": ChunkQuery(limit=15, dense=QV, text="invoice payment acme"),
    "hybrid-rrf-k-weights": ChunkQuery(limit=15, dense=QV, text="rent lease tax refund",
                                       rrf_k=5, weights=(1.0, 0.3)),
    "hybrid-sparse-heavy": ChunkQuery(limit=15, dense=QV, text="hotel train travel",
                                      rrf_k=20, weights=(0.25, 2.0)),
    "hybrid-small-prefetch": ChunkQuery(limit=8, dense=QV, text="salary contract notice",
                                        prefetch_limit=6, weights=(1.37, 1.0)),
    "hybrid-dbsf": ChunkQuery(limit=15, dense=QV, text="insurance policy claim",
                              fusion="dbsf"),
    "hybrid-negation": ChunkQuery(limit=15, dense=QV, text="invoice receipt", filter=NOT_ACME,
                                  weights=(1.0, 0.5)),
    "hybrid-filters": ChunkQuery(
        limit=15, dense=QV, text="budget tax garden", rrf_k=30,
        filter=Filter(must=(Filter(should=(Match("dirs", "tax"), Match("dirs", "home"))),
                            Range("doc_day", gte=19050),
                            Filter(should=(MatchAny("vendor", ("globex", "initech")),
                                           IsEmpty("vendor")))),
                      must_not=(MatchAny("kind", ("note",)),))),
    "dense-range-amount": ChunkQuery(limit=15, dense=QV, mode="dense",
                                     filter=Filter(must=(Range("amount", gt=40.0, lte=180.0),))),
}


def _ranked(hits: list[ChunkHit]) -> list[str]:
    return [h.point_id for h in hits]


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_both_backends_rank_the_same(stores: tuple[Store, Store], name: str) -> None:
    edge, server = stores
    q = QUERIES[name]
    got_edge, got_server = edge.search(q), server.search(q)
    assert got_edge, "the query must find something to compare"
    assert _ranked(got_edge) == _ranked(got_server)
    assert [h.score for h in got_edge] == pytest.approx([h.score for h in got_server], rel=1e-4,
                                                        abs=1e-5)


def test_batches_rank_as_single_searches(stores: tuple[Store, Store]) -> None:
    names = sorted(QUERIES)
    for s in stores:
        batch = s.search_batch([QUERIES[n] for n in names])
        assert [_ranked(b) for b in batch] == [_ranked(s.search(QUERIES[n])) for n in names]


def test_the_ranking_knobs_change_the_ranking(stores: tuple[Store, Store]) -> None:
    """Else the congruence above would hold for a backend that ignores them."""
    edge, _ = stores
    base = ChunkQuery(limit=15, dense=QV, text="hotel train travel")
    variants = [base, ChunkQuery(limit=15, dense=QV, text="hotel train travel", rrf_k=1),
                ChunkQuery(limit=15, dense=QV, text="hotel train travel", weights=(0.1, 3.0))]
    results = [[(h.point_id, round(h.score, 6)) for h in edge.search(q)] for q in variants]
    assert results[0] != results[1]
    assert _ranked(edge.search(variants[0])) != _ranked(edge.search(variants[2]))


@pytest.mark.parametrize("key", ["vendor", "kind", "dirs", "ext"])
def test_facets_and_counts_agree(stores: tuple[Store, Store], key: str) -> None:
    edge, server = stores
    assert sorted(map(str, edge.distinct(key))) == sorted(map(str, server.distinct(key)))
    flt = QUERIES["hybrid-filters"].filter
    assert edge.count_chunks(flt) == server.count_chunks(flt) > 0
    assert edge.count_chunks(NOT_ACME) == server.count_chunks(NOT_ACME) > 0
