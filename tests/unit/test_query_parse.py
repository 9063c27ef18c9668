"""Folder names parse into the documented Query fields; bad names fail with a clear error."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memexfs.errors import BadQuery, NameTooLong
from query.parse import Query, date_window, parse

pytestmark = pytest.mark.timeout(30)

TODAY = date(2024, 1, 15)
VENDORS = frozenset({"acme", "northwind-electric", "bluebird-design-studio"})


def p(name: str | list[str], vendors: frozenset[str] = VENDORS) -> Query:
    return parse(name, TODAY, vendors)


def test_plain_words_and_separators_are_equivalent() -> None:
    a, b, c = p("contract landscaping"), p("contract_landscaping"), p("contract-landscaping")
    assert a.text == b.text == c.text == "contract landscaping"
    assert a.kinds == ("contract",)


def test_full_example() -> None:
    q = p("unpaid invoices from Acme last quarter")
    assert q.text == "unpaid invoices from Acme"
    assert (q.date_from, q.date_to, q.date_soft) == (date(2023, 10, 1), date(2023, 12, 31), None)
    assert q.status == "unpaid"
    assert q.kinds == ("invoice",)
    assert q.vendors == ("acme",)
    assert q.today == TODAY
    assert q.raw == "unpaid invoices from Acme last quarter"


def test_negation_only_at_token_start() -> None:
    q = p("acme-invoices -draft_-old-version")
    assert q.negations == ("draft", "old version")
    assert q.text == "acme invoices"


def test_filters() -> None:
    q = p("report type:pdf,DOCX type:email in:Finance%2FInvoices k:5 min:0.35")
    assert q.types == ("pdf", "docx", "eml", "email")
    assert q.folders == ("Finance/Invoices",)
    assert (q.k, q.min_score, q.text) == (5, 0.35, "report")


@pytest.mark.parametrize("value", ["Finance>Invoices", "Finance%2FInvoices", "/Finance/Invoices/",
                                   "Finance//Invoices"])
def test_folder_spellings(value: str) -> None:
    assert p(f"in:{value}").folders == ("Finance/Invoices",)


def test_filter_values_may_hold_underscores_when_space_separated() -> None:
    assert p("notes in:My_Projects").folders == ("My_Projects",)
    assert p("notes_type:md").types == ("md", "markdown")


@pytest.mark.parametrize(("name", "lo", "hi"), [
    ("after:2023-06-01", date(2023, 6, 2), None),
    ("after:2023-06", date(2023, 7, 1), None),
    ("after:2023", date(2024, 1, 1), None),
    ("before:2023-06-01", None, date(2023, 5, 31)),
    ("before:2023", None, date(2022, 12, 31)),
    ("after:2023-01 before:2023-04", date(2023, 2, 1), date(2023, 3, 31)),
])
def test_after_before_exclude_the_named_period(name: str, lo: date | None,
                                               hi: date | None) -> None:
    q = p(name)
    assert (q.date_from, q.date_to) == (lo, hi)
    assert q.explicit_dates
    assert q.text == ""


def test_ambiguous_phrase_keeps_both_readings() -> None:
    q = p("internet bills from the past two months")
    assert q.text == "internet bills"
    assert (q.date_from, q.date_to) == (date(2023, 11, 15), date(2023, 12, 31))
    assert q.date_soft == (date(2023, 11, 1), TODAY)
    assert date_window(q) == (date(2023, 11, 1), TODAY)


def test_phrase_and_explicit_bound_intersect() -> None:
    q = p("invoices last year after:2023-06")
    assert (q.date_from, q.date_to) == (date(2023, 7, 1), date(2023, 12, 31))


def test_nested_segments_refine() -> None:
    q = p(["invoices", "unpaid", "type:pdf"])
    assert q.text == "invoices unpaid"
    assert q.status == "unpaid"
    assert q.types == ("pdf",)
    assert p(["unpaid invoices", "overdue"]).status == "overdue"


def test_contradictory_status_is_rejected() -> None:
    with pytest.raises(BadQuery, match="contradictory payment status"):
        p(["paid invoices", "unpaid"])


@pytest.mark.parametrize(("name", "status"), [
    ("which invoices are overdue?", "overdue"),
    ("bills I still owe money on", "unpaid"),
    ("outstanding invoices", "unpaid"),
    ("paid invoices", "paid"),
    ("how much have we paid the law firm", None),  # "paid" as a verb
])
def test_status_words(name: str, status: str | None) -> None:
    assert p(name).status == status


def test_vendor_only_when_known() -> None:
    assert p("Northwind Electric bills").vendors == ("northwind-electric",)
    assert p("bluebird invoices").vendors == ("bluebird-design-studio",)
    assert p("globex invoices").vendors == ()
    assert p("electric bills").vendors == ()  # not the vendor's distinctive first word
    assert p("acme invoices", frozenset()).vendors == ()


def test_identifiers_keep_their_year() -> None:
    q = p("INV-2023-0417")
    assert q.text == "INV 2023 0417"
    assert q.date_from is None
    assert q.date_soft is None


@pytest.mark.parametrize(("name", "message"), [
    ("k:0", "k:0"), ("k:500", "1 to 200"), ("k:ten", "k:ten"), ("min:1.5", "min:1.5"),
    ("min:abc", "min:abc"), ("after:2023-13", "not a valid date"), ("before:yesterday", "YYYY"),
    ("type:", "needs a value"), ("type:p/d", "type:p/d"), ("in:..", "vault-relative"),
    ("after:2024 before:2023", "exclude every date"),
])
def test_bad_filter_values(name: str, message: str) -> None:
    with pytest.raises(BadQuery, match=message):
        p(name)


def test_control_characters_are_rejected() -> None:
    with pytest.raises(BadQuery, match="control character"):
        p("invoices\x07")
    assert BadQuery.errno == 22  # EINVAL


def test_name_length_is_capped_in_bytes() -> None:
    p("é" * 127)  # 254 bytes
    with pytest.raises(NameTooLong):
        p("é" * 128)
    with pytest.raises(NameTooLong):
        p(["ok", "x" * 256])


@settings(deadline=None)  # a shared, loaded CI machine: a slow example is not a failure
@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=60))
def test_any_printable_name_parses_or_fails_cleanly(name: str) -> None:
    try:
        q = parse(name, TODAY, VENDORS)
    except BadQuery:
        return
    assert 1 <= q.k <= 200
    assert q.date_soft is None or q.date_soft[0] <= q.date_soft[1]
    assert "_" not in q.text


@pytest.mark.parametrize(("name", "lo", "hi", "cur", "text"), [
    ("invoices over $2,000", 2000.0, None, None, "invoices"),
    ("receipts under 50€", None, 50.0, "EUR", "receipts"),
    ("bills more than 2k less than 3k", 2000.0, 3000.0, None, "bills"),
    ("invoices billed in euros", None, None, "EUR", "invoices billed in euros"),
    ("books under the bed", None, None, None, "books under the bed"),
])
def test_amounts_and_currencies(name: str, lo: float | None, hi: float | None, cur: str | None,
                                text: str) -> None:
    q = p(name)
    assert (q.amount_min, q.amount_max, q.currency) == (lo, hi, cur)
    assert q.text == text


def test_due_window_is_not_a_document_date() -> None:
    q = p("bills due in the next two weeks")
    assert (q.due_from, q.due_to) == (TODAY, date(2024, 1, 29))
    assert q.date_from is None
    assert q.date_soft is None
    assert p("meetings next week").date_from == TODAY


def test_contradictory_currencies_are_rejected() -> None:
    with pytest.raises(BadQuery, match="contradictory currencies"):
        p("invoices in euros over £20")


# ---- prose, possessives and empty names (issue 10) ---------------------------------------------
def test_todays_as_a_possessive_is_not_a_date() -> None:
    q = parse("finding information in today's libraries", date(2024, 1, 15))
    assert not q.has_filters
    assert "today's" in q.text


def test_last_weeks_meetings_is_still_a_date() -> None:
    q = parse("action items from last week's meetings", date(2024, 1, 15))
    assert q.date_soft is not None or q.date_from is not None
    assert not q.date_hint_only


def test_time_phrases_inside_a_sentence_only_rank() -> None:
    text = ("The number of databases and the online use of databases has increased "
            "dramatically over the past several years, bringing in 1979 new problems")
    q = parse(text, date(2024, 1, 15))
    assert q.date_hint_only
    assert not q.phrase_dated
    from query.filters import build_filter

    assert not build_filter(q)  # no doc_day range among the store filters


def test_short_queries_keep_their_date_filter() -> None:
    q = parse("invoices I received last month", date(2024, 1, 15))
    assert q.phrase_dated
    assert not q.date_hint_only


@pytest.mark.parametrize("name", [" ", "_", "- -", "k:5", "the", "of the", "what is it"])
def test_blank_or_common_word_queries_are_refused_with_a_reason(name: str) -> None:
    with pytest.raises(BadQuery, match="no words|only common words"):
        parse(name, date(2024, 1, 15))


def test_a_filter_alone_is_a_query() -> None:
    assert parse("type:pdf", date(2024, 1, 15)).types
    assert parse("unpaid", date(2024, 1, 15)).status == "unpaid"
