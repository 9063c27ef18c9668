"""SearchEngine over a real Qdrant Edge store in a temp dir, with a deterministic hashing encoder.

The encoder is a test double for ranking *plumbing* (filters, grouping, fusion, negation,
thresholds); search quality is measured with the real encoder in bench/retrieval_eval.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memexfs.errors import NotFound
from memexfs.schema import FileRecord, location_payload
from memexfs.store import ChunkHit, ChunkPoint, EdgeStore
from query.boilerplate import LineFrequency
from query.engine import SearchEngine, Tuning
from query.filters import day_number
from query.parse import parse
from tests.fakes import HASH_DIM as DIM
from tests.fakes import HashEncoder
from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

TODAY = date(2024, 1, 15)


DOCS: list[tuple[str, list[str], dict[str, Any]]] = [
    ("Finance/Invoices/acme-0401.pdf", ["Acme Corp invoice web hosting amount due 149"],
     {"kind": "invoice", "vendor": "acme", "status": "overdue", "doc_day": date(2023, 11, 3),
      "amount": 149.0, "currency": "USD"}),
    ("Finance/Invoices/acme-0399.pdf", ["Acme Corp invoice web hosting paid in full"],
     {"kind": "invoice", "vendor": "acme", "status": "paid", "doc_day": date(2023, 10, 9)}),
    ("Finance/Invoices/acme-0390.pdf", ["Acme Corp invoice web hosting balance open"],
     {"kind": "invoice", "vendor": "acme", "status": "unpaid", "doc_day": date(2023, 6, 1),
      "due_day": date(2023, 7, 1)}),
    ("Finance/Invoices/northwind-2312.pdf", ["Northwind Electric electricity invoice kWh"],
     {"kind": "invoice", "vendor": "northwind", "status": "unpaid", "doc_day": date(2023, 12, 2),
      "due_day": date(2024, 1, 20), "amount": 2400.0, "currency": "EUR"}),
    ("Mail/acme-reminder.eml", ["reminder your Acme Corp invoice web hosting is due soon"],
     {"kind": "email", "doc_day": date(2023, 11, 20)}),
    ("Notes/biology.md", ["mitochondria make energy for the cell through respiration",
                          "the cell divides by mitosis into two daughter cells"],
     {"kind": "note", "doc_day": date(2023, 3, 3)}),
    ("Notes/chemistry.md", ["acids and bases neutralization pH titration"],
     {"kind": "note", "doc_day": date(2023, 4, 4)}),
    ("Recipes/banana-bread.txt", ["banana bread recipe overripe bananas flour bake"],
     {"kind": "recipe", "doc_day": date(2022, 8, 8)}),
]


def _payload(path: str, extra: dict[str, Any]) -> dict[str, Any]:
    out = {**location_payload(path), "doc_type": location_payload(path)["ext"],
           "title": path.rsplit("/", 1)[-1], "encoder": HashEncoder.name}
    for key, value in extra.items():
        out[key] = day_number(value) if isinstance(value, date) else value
    return out


def _put(store: EdgeStore, enc: HashEncoder, n: int, path: str, chunks: list[str],
         extra: dict[str, Any]) -> None:
    fid = f"00000000-0000-4000-8000-{n:012d}"
    store.put_file(FileRecord(file_id=fid, path=path, size=1, mtime_ns=1, status="indexed",
                              chunks=len(chunks)))
    vecs = enc.encode(chunks)
    store.put_chunks(fid, [
        ChunkPoint(fid, i, vecs[i].tolist(), text,
                   {**_payload(path, extra), "body": text, "chunk_index": i})
        for i, text in enumerate(chunks)])


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchEngine]:
    root: Path = tmp_path_factory.mktemp("store")
    store = EdgeStore(root, DIM)
    enc = HashEncoder()
    for n, (path, chunks, extra) in enumerate(DOCS):
        _put(store, enc, n, path, chunks, extra)
    yield SearchEngine(store, enc, Tuning(floor=0.15))
    store.close()


LETTERHEAD = "Orbit Telecom Services · PO Box 88120, Seattle, WA 98138"
FOOTER = "Questions about your bill? Email noreply@orbittelecom.net. Thank you for your business."
MONTHS = ["January", "February", "March", "April", "May", "June"]


def _bill(month: str) -> str:
    return (f"{LETTERHEAD}\nBill to: Dana Whitfield\nFiber internet 500 Mbps for {month} "
            f"${len(month)}0.99\n{FOOTER}")


@pytest.fixture
def bills(tmp_path: Path) -> Iterator[EdgeStore]:
    """One vendor's monthly bills: the same letterhead and footer in every file."""
    store = EdgeStore(tmp_path / "store", DIM)
    for n, month in enumerate(MONTHS[:5]):
        _put(store, HashEncoder(), n, f"Bills/orbit-{month}.txt", [_bill(month)],
             {"kind": "invoice", "vendor": "orbit"})
    yield store
    store.close()


def q(engine: SearchEngine, name: str | list[str]) -> list[str]:
    res = engine.search(parse(name, TODAY, engine.known_vendors()))
    return [h.path for h in res.hits]


def test_one_hit_per_file_ranked_with_snippet(engine: SearchEngine) -> None:
    res = engine.search(parse("cell mitosis energy", TODAY))
    paths = [h.path for h in res.hits]
    assert paths[0] == "Notes/biology.md"
    assert len(paths) == len(set(paths))
    top = res.hits[0]
    assert top.rank == 1
    assert 0.0 < top.score <= 1.0
    assert top.title == "biology.md"
    assert "mitosis" in top.snippet or "energy" in top.snippet
    assert [h.rank for h in res.hits] == list(range(1, len(res.hits) + 1))


@pytest.mark.parametrize("mode", ["dense", "sparse", "hybrid"])
def test_every_mode_finds_the_exact_topic(engine: SearchEngine, mode: str) -> None:
    res = engine.search(parse("banana bread overripe bananas", TODAY), mode=mode)  # type: ignore[arg-type]
    assert res.hits[0].path == "Recipes/banana-bread.txt"


def test_known_vendors_come_from_payloads(engine: SearchEngine) -> None:
    assert engine.known_vendors() == {"acme", "northwind"}
    engine.invalidate()
    assert engine.known_vendors() == {"acme", "northwind"}


def test_status_filter_excludes_only_contradicting_files(engine: SearchEngine) -> None:
    paths = q(engine, "unpaid acme invoices")
    assert "Finance/Invoices/acme-0399.pdf" not in paths  # known paid
    assert "Finance/Invoices/northwind-2312.pdf" not in paths  # another known vendor
    assert set(paths[:2]) == {"Finance/Invoices/acme-0401.pdf", "Finance/Invoices/acme-0390.pdf"}
    assert "Mail/acme-reminder.eml" in paths  # no status field: kept, ranked after


def test_overdue_means_overdue_or_unpaid_past_due(engine: SearchEngine) -> None:
    paths = q(engine, "overdue invoice")
    assert set(paths[:2]) == {"Finance/Invoices/acme-0401.pdf", "Finance/Invoices/acme-0390.pdf"}
    assert "Finance/Invoices/northwind-2312.pdf" not in paths  # unpaid, due in the future


def test_date_phrase_filters_inside_the_search(engine: SearchEngine) -> None:
    paths = q(engine, "acme invoices last quarter")
    assert set(paths) <= {"Finance/Invoices/acme-0401.pdf", "Finance/Invoices/acme-0399.pdf",
                          "Mail/acme-reminder.eml"}
    assert "Finance/Invoices/acme-0401.pdf" in paths


def test_folder_and_type_filters(engine: SearchEngine) -> None:
    assert set(q(engine, "invoice in:Finance>Invoices type:pdf")) == {
        p for p, _, _ in DOCS if p.startswith("Finance/Invoices/")}
    assert q(engine, "reminder type:email") == ["Mail/acme-reminder.eml"]
    assert q(engine, "bread in:Recipes/banana-bread.txt") == ["Recipes/banana-bread.txt"]


def test_filter_only_query_lists_newest_first(engine: SearchEngine) -> None:
    paths = q(engine, "in:Notes")
    assert paths == ["Notes/chemistry.md", "Notes/biology.md"]


def test_negation_drops_files_containing_the_word(engine: SearchEngine) -> None:
    paths = q(engine, "web hosting invoice -reminder")
    assert "Mail/acme-reminder.eml" not in paths
    assert "Finance/Invoices/acme-0401.pdf" in paths
    assert "Finance/Invoices/acme-0401.pdf" not in q(engine, "invoice -acme")


def test_amount_currency_and_due_hints_rank_matches_first(engine: SearchEngine) -> None:
    north = "Finance/Invoices/northwind-2312.pdf"
    for name in ("invoice over $2,000", "invoice in euros"):
        paths = q(engine, f"{name} min:0")  # min:0: every candidate the filter lets through
        assert paths[0] == north, name
        assert "Finance/Invoices/acme-0401.pdf" not in paths  # known to contradict the hint
        assert "Mail/acme-reminder.eml" in paths  # fields unknown: kept, ranked by meaning
    paths = q(engine, "invoice due in the next week")
    assert north in paths  # due in the window
    assert "Finance/Invoices/acme-0390.pdf" not in paths  # due long ago


def test_k_limits_results(engine: SearchEngine) -> None:
    assert len(q(engine, "invoice k:2")) == 2


def test_threshold_returns_a_reason(engine: SearchEngine) -> None:
    res = engine.search(parse("zebra giraffe savanna", TODAY))
    assert res.hits == []
    assert res.reason
    assert "nothing relevant" in res.reason
    assert "share no word" in res.reason  # no BM25 hit: the stricter dense-only floor applied
    res = engine.search(parse("banana bread min:0.99", TODAY))
    assert res.hits == []
    best = engine.search(parse("banana bread", TODAY)).hits[0].cosine
    assert best is not None
    assert res.reason == f"nothing relevant: best cosine {best:.2f} is below min: (0.99)"


def test_weak_tail_below_the_best_hit_is_dropped(engine: SearchEngine) -> None:
    """Dense search returns every document; the ones far below the best are not results."""
    assert q(engine, "mitochondria respiration") == ["Notes/biology.md"]
    # an explicit min: is the user's own threshold: no relative cut on top of it
    assert len(q(engine, "mitochondria respiration min:0")) > 1


def test_empty_window_has_a_reason(engine: SearchEngine) -> None:
    res = engine.search(parse("invoice after:2030", TODAY))
    assert res.hits == []
    assert res.reason == "no indexed document matches the filters"


def test_related_excludes_the_file_itself(engine: SearchEngine) -> None:
    res = engine.related("Finance/Invoices/acme-0401.pdf", k=3)
    paths = [h.path for h in res.hits]
    assert "Finance/Invoices/acme-0401.pdf" not in paths
    assert len(paths) == 3
    assert all("acme" in p for p in paths)
    with pytest.raises(NotFound):
        engine.related("nope.txt")


def test_query_vectors_are_cached_across_index_changes(engine: SearchEngine) -> None:
    calls: list[list[str]] = []
    inner = engine.encoder
    real = inner.encode

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return real(texts)

    inner.encode = counting  # type: ignore[method-assign]
    try:
        first = q(engine, "banana bread cached")
        engine.invalidate()  # an index change: listings are searched again, not re-encoded
        assert q(engine, "banana bread cached") == first
        assert calls == [["banana bread cached"]]
    finally:
        inner.encode = real  # type: ignore[method-assign]


def test_known_vendors_use_the_store_facet_when_it_has_one(engine: SearchEngine) -> None:
    asked: list[str] = []

    class Faceted:
        def __getattr__(self, name: str) -> Any:
            return getattr(engine.store, name)

        def distinct(self, key: str) -> list[str]:
            asked.append(key)
            return ["acme", "zeta-widgets", ""]

    faceted = SearchEngine(Faceted(), engine.encoder)  # type: ignore[arg-type]
    assert faceted.known_vendors() == frozenset({"acme", "zeta-widgets"})
    assert faceted.known_vendors() == frozenset({"acme", "zeta-widgets"})
    assert asked == ["vendor"]  # cached until the index changes
    faceted.invalidate()
    faceted.known_vendors()
    assert asked == ["vendor", "vendor"]


def test_a_time_phrase_that_empties_the_folder_falls_back_to_ranking(
        engine: SearchEngine) -> None:
    """Nothing is dated last month (Dec 2023) among the notes: rather than an empty folder, the
    files are ranked by meaning and the reason says why the window did not filter."""
    res = engine.search(parse("mitochondria cell respiration last month", TODAY))
    assert [h.path for h in res.hits][:1] == ["Notes/biology.md"]
    assert res.reason is not None
    assert "ranked by meaning instead" in res.reason
    assert "2023-12-01 to 2023-12-31" in res.reason


def test_a_time_phrase_that_matches_still_filters(engine: SearchEngine) -> None:
    res = engine.search(parse("acme invoice web hosting last month", TODAY))
    assert res.reason is None
    assert {h.path for h in res.hits} <= {"Finance/Invoices/acme-0401.pdf",
                                           "Mail/acme-reminder.eml",
                                           "Finance/Invoices/northwind-2312.pdf"}


def test_dates_in_prose_rank_but_do_not_filter(engine: SearchEngine) -> None:
    prose = ("how did the cell divide by mitosis into two daughter cells as described by the "
             "biology notes written in 2022")
    q = parse(prose, TODAY)
    assert q.date_hint_only
    res = engine.search(q)
    assert res.hits
    assert res.hits[0].path == "Notes/biology.md"


def test_related_lists_only_files_that_are_close(engine: SearchEngine) -> None:
    """The recipe shares no words with the invoices and notes: nothing is related to it,
    and the reason says how close the best candidate came."""
    res = engine.related("Recipes/banana-bread.txt")
    assert res.hits == []
    assert res.reason is not None
    assert res.reason.startswith("nothing similar enough")
    acme = engine.related("Finance/Invoices/acme-0401.pdf")
    assert acme.hits
    assert all(h.score >= engine.tuning.related_floor for h in acme.hits)
    assert len(acme.hits) < len(DOCS) - 1  # the unrelated notes and the recipe are not listed


def test_scores_fall_with_rank_and_the_cosine_is_its_own_field(engine: SearchEngine) -> None:
    """The ranking fuses dense and BM25: its score never goes up as the rank goes down, while
    the cosine (what ``min:`` and the floors use) may."""
    rising = 0
    for name in ("acme invoice web hosting", "cell mitosis energy", "unpaid acme invoices",
                 "invoice in EUR min:0", "recipe min:0"):
        hits = engine.search(parse(name, TODAY, engine.known_vendors())).hits
        assert hits, name
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True), name
        assert all(0.0 <= s <= 1.0 for s in scores), name
        cosines = [h.cosine if h.cosine is not None else 2.0 for h in hits]
        assert all(-1.0 <= c <= 1.0 for c in cosines), name
        rising += any(b > a for a, b in zip(cosines, cosines[1:], strict=False))
    assert rising  # these queries show why the cosine is not the ranking score
    top = engine.search(parse("banana bread overripe bananas", TODAY)).hits[0]
    assert (top.path, top.score) == ("Recipes/banana-bread.txt", 1.0)  # first in both lists
    floored = engine.search(parse("mitochondria respiration min:0.2", TODAY)).hits
    assert floored
    assert all(h.cosine is not None and h.cosine >= 0.2 for h in floored)


def test_filter_only_and_related_scores(engine: SearchEngine) -> None:
    browse = engine.search(parse("type:pdf", TODAY)).hits
    assert browse
    assert {(h.score, h.cosine) for h in browse} == {(1.0, None)}  # no words: no cosine
    related = engine.related("Finance/Invoices/acme-0401.pdf").hits
    assert related
    assert all(h.score == h.cosine for h in related)  # ranked by the cosine itself


def test_snippets_leave_out_a_vendors_letterhead_and_footer(bills: EdgeStore) -> None:
    engine = SearchEngine(bills, HashEncoder(), Tuning(floor=0.0))
    engine.lines.refresh()
    hits = engine.search(parse("fiber internet bill March", TODAY)).hits
    assert hits[0].path == "Bills/orbit-March.txt"
    assert hits[0].snippet == "Fiber internet 500 Mbps for March $50.99"
    plain = SearchEngine(bills, HashEncoder(), Tuning(floor=0.0, boiler_chunks=10))
    plain.lines.refresh()  # no line is in more than 10 chunks: nothing is left out
    shown = plain.search(parse("fiber internet bill March", TODAY)).hits[0].snippet
    assert "Seattle, WA 98138 Bill to: Dana Whitfield Fiber internet" in shown
    assert "Questions about your bill?" in shown


def test_line_table_builds_in_the_background_and_after_index_changes(
        bills: EdgeStore) -> None:
    lines = LineFrequency(bills, min_interval=0.0)
    first = lines.table(wait=30.0)  # a first search waits for the first table
    assert first is not None
    assert first.chunks == 5
    assert first.common(FOOTER.split(". ")[-1], 3)
    _put(bills, HashEncoder(), 5, "Bills/orbit-June.txt", [_bill("June")], {})
    lines.invalidate()
    assert lines.table() is first  # the last table serves while the new one builds
    rebuilt = wait_until(lambda: (t := lines.table()) is not None and t.chunks == 6 and t,
                         30.0, "a table of the six bills")
    assert rebuilt.df(LETTERHEAD) == 6


def test_a_failed_scan_leaves_snippets_unfiltered(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        def iter_chunks(self, flt: Any = None) -> Iterator[ChunkHit]:
            raise RuntimeError("store closed")

    caplog.set_level(logging.INFO, logger="query.boilerplate")
    lines = LineFrequency(Failing(), min_interval=3600.0)  # type: ignore[arg-type]
    assert lines.table(wait=30.0) is None  # the build ended (in failure) within the wait
    assert "line frequencies not built: store closed" in caplog.text
    assert lines.table() is None  # and is not retried before min_interval
