"""Pure helpers of the query path: score fusion, store-filter building, result-name dedup and
the ``.results`` round trip. Expected values are worked out by hand in each test."""

from __future__ import annotations

import math
import os
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memexfs.api import Memex, _parse_results
from memexfs.fields_memory import DocFields
from memexfs.store import Condition, Filter, IsEmpty, Match, MatchAny, Range
from mount.virtual import Hit, Listing
from mount.virtual.results import dedup_names
from query.filters import NO_PAYMENT_KINDS, build_filter, day_number, hint_matches
from query.fusion import fuse
from query.parse import Query, parse

TODAY = date(2024, 1, 15)  # day 19737
NOT_MONEY = Filter(must_not=(MatchAny("kind", NO_PAYMENT_KINDS),))


# ---------------------------------------------------------------------------------- fusion
def test_convex_min_max_normalises_dense_and_divides_bm25_by_its_best() -> None:
    dense = {"a": 0.9, "b": 0.5, "c": 0.1}  # min-max: a 1, b 0.5, c 0
    sparse = {"b": 10.0, "d": 5.0}  # / best: b 1, d 0.5
    assert fuse(dense, sparse) == pytest.approx({"a": 0.5, "b": 0.75, "c": 0.0, "d": 0.25})
    # alpha weighs dense: a .8*1, b .8*.5 + .2*1, c 0, d .2*.5
    assert fuse(dense, sparse, "convex", alpha=0.8) == pytest.approx(
        {"a": 0.8, "b": 0.6, "c": 0.0, "d": 0.1})


def test_convex_ties_and_degenerate_lists() -> None:
    # One distinct dense score: every candidate counts as the best (span 0 -> 1.0).
    assert fuse({"a": 0.3, "b": 0.3}, {}) == pytest.approx({"a": 0.5, "b": 0.5})
    # BM25 all zero: no lexical evidence, not a division by zero.
    assert fuse({"a": 0.9, "b": 0.1}, {"a": 0.0, "b": 0.0}) == pytest.approx(
        {"a": 0.5, "b": 0.0})
    assert fuse({}, {}) == {}
    assert fuse({}, {"x": 2.0}, alpha=0.25) == pytest.approx({"x": 0.75})


def test_rrf_sums_weighted_reciprocal_ranks_scaled_so_first_in_both_is_one() -> None:
    dense = {"a": 0.9, "b": 0.5}  # ranks a 1, b 2
    sparse = {"b": 3.0, "c": 1.0}  # ranks b 1, c 2
    # k=60: score / (1/61); a .5/61, b .5/62 + .5/61, c .5/62
    got = fuse(dense, sparse, "rrf")
    assert got == pytest.approx({"a": 0.5, "b": 0.5 + 0.5 * 61 / 62, "c": 0.5 * 61 / 62})
    # k=1: / (1/2); a .5/2, b .5/3 + .5/2, c .5/3
    assert fuse(dense, sparse, "rrf", rrf_k=1) == pytest.approx(
        {"a": 0.5, "b": 0.5 + 1 / 3, "c": 1 / 3})
    # weights: alpha=0.9 -> a .9/61 *61, c .1/62 *61
    w = fuse(dense, sparse, "rrf", alpha=0.9)
    assert w["a"] == pytest.approx(0.9)
    assert w["c"] == pytest.approx(0.1 * 61 / 62)
    assert fuse({"a": 1.0, "b": 0.0}, {"a": 9.0}, "rrf")["a"] == pytest.approx(1.0)


def test_rrf_ignores_score_magnitudes() -> None:
    near = fuse({"a": 0.51, "b": 0.50}, {}, "rrf", rrf_k=10)
    far = fuse({"a": 0.99, "b": 0.01}, {}, "rrf", rrf_k=10)
    assert near == pytest.approx(far)
    assert far == pytest.approx({"a": 0.5, "b": 0.5 * 11 / 12})


def test_dbsf_scales_each_list_by_mean_plus_minus_three_sigma() -> None:
    dense = {"a": 1.0, "b": 2.0, "c": 3.0}  # mean 2, sigma sqrt(2/3)
    sd = math.sqrt(2 / 3)
    lo, width = 2 - 3 * sd, 6 * sd
    got = fuse(dense, {"a": 5.0}, "dbsf")  # one BM25 hit: it scores 1
    assert got == pytest.approx({"a": 0.5 * (1 - lo) / width + 0.5,
                                 "b": 0.5 * 0.5, "c": 0.5 * (3 - lo) / width})
    # equal scores carry no spread: all 1
    assert fuse({"a": 0.4, "b": 0.4}, {}, "dbsf") == pytest.approx({"a": 0.5, "b": 0.5})


def test_dbsf_best_in_both_lists_is_best_but_below_one() -> None:
    # mean +- 3 sigma scaling (as Qdrant does): the documented exception to "the best scores 1"
    got = fuse({"a": 3.0, "b": 2.0, "c": 1.0}, {"a": 3.0, "b": 2.0, "c": 1.0}, "dbsf")
    assert max(got, key=got.__getitem__) == "a"
    assert 0.5 < got["a"] < 1.0


scores = st.dictionaries(st.sampled_from("abcdef"),
                         st.floats(-1, 1, allow_nan=False), max_size=6)
bm25 = st.dictionaries(st.sampled_from("abcdef"), st.floats(0, 50, allow_nan=False), max_size=6)


@given(scores, bm25, st.sampled_from(["convex", "rrf", "dbsf"]), st.floats(0, 1),
       st.integers(1, 100))
def test_fused_scores_cover_both_lists_and_stay_in_unit_range(
        dense: dict[str, float], sparse: dict[str, float], method: str, alpha: float,
        k: int) -> None:
    got = fuse(dense, sparse, method, alpha, k)  # type: ignore[arg-type]
    assert set(got) == set(dense) | set(sparse)
    assert all(-1e-9 <= s <= 1 + 1e-9 for s in got.values())


# ---------------------------------------------------------------------------- build_filter
def q(name: str, vendors: tuple[str, ...] = ()) -> Query:
    return parse(name, TODAY, vendors)


def test_plain_words_build_no_filter() -> None:
    f = build_filter(q("meeting notes"))
    assert f == Filter()
    assert not f


def test_type_filter_ors_extension_doc_type_and_kind() -> None:
    types = ("eml", "email", "pdf")
    assert build_filter(q("type:email,pdf report")) == Filter(must=(Filter(should=(
        MatchAny("ext", types), MatchAny("doc_type", types), MatchAny("kind", types))),))


def test_folder_filter_matches_a_parent_folder_or_the_file_itself() -> None:
    assert build_filter(q("in:Finance%2FInvoices")) == Filter(must=(Filter(should=(
        Match("dirs", "Finance/Invoices"), Match("path", "Finance/Invoices"))),))


@pytest.mark.parametrize(("name", "gte", "lte"), [
    ("after:2022 before:2023-06", 19358, 19508),  # 2023-01-01 .. 2023-05-31
    ("after:2023-06-30", 19539, None),  # from 2023-07-01, open-ended
    ("before:2023", None, 19357),  # up to 2022-12-31
    ("reports from 2023", 19358, 19722),  # a time phrase filters too
])
def test_dates_are_a_hard_doc_day_range(name: str, gte: int | None, lte: int | None) -> None:
    assert build_filter(q(name)) == Filter(must=(Range("doc_day", gte=gte, lte=lte),))


def test_ambiguous_phrase_filters_on_its_wide_reading() -> None:
    # strict 2023-11-15..2023-12-31, wide 2023-11-01..today
    f = build_filter(q("internet bills from the past two months"))
    assert f == Filter(must=(Range("doc_day", gte=19662, lte=19737),))


def test_dates_in_prose_do_not_filter_but_rank() -> None:
    query = q("The number of databases and the online use of databases has increased "
              "dramatically over the past several years, bringing in 1979 new problems")
    assert build_filter(query) == Filter()
    assert hint_matches(query, {"doc_day": 3300}) == {"date": True}  # 1979-01-14
    assert hint_matches(query, {"doc_day": 19000}) == {"date": False}
    assert hint_matches(query, {}) == {"date": False}


@pytest.mark.parametrize(("name", "status"), [
    ("unpaid invoices", MatchAny("status", ("unpaid", "overdue"))),
    ("paid invoices", Match("status", "paid")),
    ("overdue bills", Filter(should=(Match("status", "overdue"), Filter(must=(
        Match("status", "unpaid"), Range("due_day", lt=19737)))))),
])
def test_status_keeps_files_without_a_status_and_drops_non_money_kinds(
        name: str, status: Condition) -> None:
    assert build_filter(q(name)) == Filter(must=(
        Filter(should=(status, IsEmpty("status"))), NOT_MONEY))


def test_status_word_used_as_a_verb_is_no_filter() -> None:
    assert build_filter(q("we paid the law firm")) == Filter()


def test_vendor_hint_keeps_files_without_a_vendor_and_kind_is_no_filter() -> None:
    assert build_filter(q("acme invoices", ("acme-corp",))) == Filter(must=(
        Filter(should=(MatchAny("vendor", ("acme-corp",)), IsEmpty("vendor"))),))


def test_amounts_currency_and_due_windows_keep_files_without_the_field() -> None:
    assert build_filter(q("invoices over $2,000")) == Filter(must=(
        Filter(should=(Range("amount", gte=2000.0), IsEmpty("amount"))),))
    assert build_filter(q("receipts under 50 euros")) == Filter(must=(
        Filter(should=(Range("amount", lte=50.0), IsEmpty("amount"))),
        Filter(should=(Match("currency", "EUR"), IsEmpty("currency")))))
    # due 2024-01-15 .. 2024-01-29
    assert build_filter(q("invoices due in the next two weeks")) == Filter(must=(
        Filter(should=(Range("due_day", gte=19737, lte=19751), IsEmpty("due_day"))),))


def test_conditions_are_anded_in_a_fixed_order() -> None:
    f = build_filter(q("unpaid acme type:pdf in:Finance after:2022", ("acme",)))
    assert [type(c).__name__ for c in f.must] == ["Filter"] * 2 + ["Range"] + ["Filter"] * 3
    assert f.must[0] == Filter(should=(Match("dirs", "Finance"), Match("path", "Finance")))
    assert f.must[2] == Range("doc_day", gte=19358)
    assert f.must[4] == NOT_MONEY
    assert f.must[5] == Filter(should=(MatchAny("vendor", ("acme",)), IsEmpty("vendor")))


def test_day_number_counts_from_the_epoch() -> None:
    assert day_number(date(1970, 1, 1)) == 0
    assert day_number(TODAY) == 19737


# ---------------------------------------------------------------------------- hint_matches
def test_no_hints_no_entries() -> None:
    assert hint_matches(q("meeting notes"), {"vendor": "acme", "status": "paid"}) == {}


def test_vendor_kind_amount_and_currency_hints() -> None:
    query = q("acme invoices under 50 euros", ("acme",))
    assert hint_matches(query, {"vendor": "acme", "kind": "invoice", "amount": 49.5,
                                "currency": "EUR"}) == {
        "vendor": True, "kind": True, "amount": True, "currency": True}
    assert hint_matches(query, {"vendor": "globex", "kind": "receipt", "amount": 50.01,
                                "currency": "USD"}) == {
        "vendor": False, "kind": False, "amount": False, "currency": False}
    # a missing field, or a bool posing as a number, is no match
    assert hint_matches(query, {"amount": True}) == {
        "vendor": False, "kind": False, "amount": False, "currency": False}


@pytest.mark.parametrize(("payload", "ok"), [
    ({"status": "overdue"}, True),
    ({"status": "unpaid", "due_day": 19736}, True),  # due yesterday
    ({"status": "unpaid", "due_day": 19737}, False),  # due today: not late yet
    ({"status": "unpaid"}, False),  # no due date: not known to be late
    ({"status": "paid", "due_day": 1}, False),
])
def test_overdue_means_overdue_or_unpaid_past_its_due_day(payload: dict[str, object],
                                                          ok: bool) -> None:
    assert hint_matches(q("overdue"), payload) == {"status": ok}


def test_unpaid_includes_overdue_and_paid_is_exact() -> None:
    assert hint_matches(q("unpaid"), {"status": "overdue"}) == {"status": True}
    assert hint_matches(q("unpaid"), {"status": "paid"}) == {"status": False}
    assert hint_matches(q("paid"), {"status": "paid"}) == {"status": True}
    assert hint_matches(q("paid"), {"status": "unpaid"}) == {"status": False}


def test_due_hint_is_inclusive() -> None:
    query = q("invoices due in the next two weeks")  # due days 19737 .. 19751
    assert [hint_matches(query, {"due_day": d})["due"] for d in (19736, 19737, 19751, 19752)] \
        == [False, True, True, False]


def test_ambiguous_phrase_ranks_by_the_window_every_reading_agrees_on() -> None:
    query = q("internet bills from the past two months")  # strict 19676 .. 19722
    got = [hint_matches(query, {"doc_day": d})["date"] for d in (19662, 19676, 19722, 19737)]
    assert got == [False, True, True, False]


# ------------------------------------------------------------------------------ dedup_names
def test_same_basename_in_different_folders_is_numbered_in_order() -> None:
    assert dedup_names(["a/x.txt", "b/x.txt", "c/d/x.txt", "y.txt"]) == [
        "x.txt", "x (2).txt", "x (3).txt", "y.txt"]


def test_suffix_goes_before_the_last_extension_only_when_there_is_one() -> None:
    assert dedup_names(["a/README", "b/README", "a/.env", "b/.env",
                        "a/t.tar.gz", "b/t.tar.gz"]) == [
        "README", "README (2)", ".env", ".env (2)", "t.tar.gz", "t.tar (2).gz"]


def test_names_keep_the_order_of_the_paths() -> None:
    paths = ["z/b.md", "a.md", "y/b.md", "c.md", "x/a.md"]
    assert dedup_names(paths) == ["b.md", "a.md", "b (2).md", "c.md", "a (2).md"]
    assert dedup_names([]) == []


def test_non_utf8_names_stay_escaped_and_still_dedup() -> None:
    raw = os.fsdecode(b"caf\xe9.txt")  # 'caf\udce9.txt' under surrogateescape
    names = dedup_names([f"a/{raw}", f"b/{raw}"])
    assert names == [raw, os.fsdecode(b"caf\xe9 (2).txt")]
    assert [os.fsencode(n) for n in names] == [b"caf\xe9.txt", b"caf\xe9 (2).txt"]


@pytest.mark.parametrize("paths", [["a/x.txt", "b/x.txt", "c/x (2).txt"],
                                   ["c/x (2).txt", "a/x.txt", "b/x.txt"]])
def test_names_that_look_like_a_dedup_suffix_stay_unique(paths: list[str]) -> None:
    names = dedup_names(paths)
    assert len(set(names)) == len(names), names


def test_a_name_like_a_suffix_alone_is_left_as_is() -> None:
    assert dedup_names(["a/x.txt", "b/x (2).txt"]) == ["x.txt", "x (2).txt"]


# ------------------------------------------------------------------- .results round trip
FIELDS = DocFields(kind="invoice", vendor="acme\tcorp", amount=120.0, currency="EUR",
                   due_day=19737, date_day=19700, payment="unpaid")
RAW = os.fsdecode(b"Inbox/caf\xe9.txt")


def test_results_text_parses_back_to_the_same_results() -> None:
    hits = [Hit("a.pdf", "Finance/a.pdf", 1.0, 1, "total  due\n120 EUR", FIELDS, 0.41234),
            Hit("caf.txt", RAW, 2 / 3, 2, "plain", None, None),
            Hit("t\tb", "x/t\tb", 0.25, 3, "", DocFields(vendor="globex"), None),
            Hit("c.md", "c.md", 0.1, 4, "only cosine", None, 0.5)]
    text = os.fsdecode(Listing(hits, "few\nmatches", generation=7).results_text())
    got = _parse_results(text, "/vault")
    assert got.reason == "few matches"
    assert [(r.rank, r.score, r.rel_path, r.path, r.title, r.snippet, r.fields, r.cosine)
            for r in got.hits] == [
        (1, 1.0, "Finance/a.pdf", "/vault/Finance/a.pdf", "a.pdf", "total due 120 EUR",
         FIELDS, 0.4123),
        (2, 0.6667, RAW, f"/vault/{RAW}", os.fsdecode(b"caf\xe9.txt"), "plain", None, None),
        (3, 0.25, "x/t\tb", "/vault/x/t\tb", "t\tb", "", DocFields(vendor="globex"), None),
        (4, 0.1, "c.md", "/vault/c.md", "c.md", "only cosine", None, 0.5)]


def test_no_hits_and_no_reason_parse_to_nothing() -> None:
    got = _parse_results(os.fsdecode(Listing([], None, generation=1).results_text()), "/v")
    assert (got.hits, got.reason) == ([], None)


def test_mounted_search_reads_non_utf8_paths_back(tmp_path: Path) -> None:
    folder = tmp_path / "q" / "cafe"
    folder.mkdir(parents=True)
    hits = [Hit("caf.txt", RAW, 1.0, 1, "s")]
    (folder / ".results").write_bytes(Listing(hits, None, generation=1).results_text())
    memex = Memex.__new__(Memex)  # only the two attributes _via_mount reads
    memex.mountpoint, memex.root = str(tmp_path), "/vault"
    assert [r.rel_path for r in memex._via_mount("q", "cafe").hits] == [RAW]
