"""Extracted fields as the mount shows them: one value from payload, catalog and ``.results``,
kept in little memory per file (issue 12)."""

from __future__ import annotations

import tracemalloc

import pytest

from memexfs.fields import extract_fields
from memexfs.fields_memory import DocFields, FieldsMemory, day_number
from memexfs.pipeline import flat_fields
from mount.virtual import Hit, Listing, read_fields_line, unescape_field

pytestmark = pytest.mark.filterwarnings("error")

INVOICE = """ACME Corporation
Invoice #INV-2023-0412
Invoice date: 2023-10-02
Due date: 2023-11-01
Amount due: $1,234.50
Status: unpaid
"""


def _invoice_fields() -> DocFields:
    fields = extract_fields(INVOICE, path="Finance/acme-0412.txt", title="", doc_type="text",
                            meta={}, mtime=0.0)
    got = DocFields.from_payload(flat_fields(fields))
    assert got is not None
    return got


def test_an_invoice_shows_what_its_filters_match() -> None:
    f = _invoice_fields()
    assert f.shown() == {"kind": "invoice", "vendor": "acme", "amount": "1234.50",
                         "currency": "USD", "due": "2023-11-01", "date": "2023-10-02",
                         "payment": "unpaid"}
    assert f.due is not None
    assert f.due.isoformat() == "2023-11-01"
    assert f.to_json()["amount"] == 1234.5


def test_a_date_guessed_from_mtime_is_not_shown() -> None:
    fields = extract_fields("just some words about gardening", path="notes/garden.md",
                            title="", doc_type="markdown", meta={}, mtime=1_700_000_000.0)
    assert fields["doc_date"]  # the catalog keeps the guess ...
    f = DocFields.from_payload(flat_fields(fields))
    assert f is not None
    assert f.date is None  # ... but no date filter sees it, so no xattr claims it
    assert set(f.shown()) == {"kind"}


def test_no_field_at_all_is_none() -> None:
    assert DocFields.from_payload({"path": "a.txt", "doc_type": "text"}) is None
    assert DocFields.from_payload({"amount": True, "due_day": "soon"}) is None


def test_memory_follows_moves_and_removals() -> None:
    mem = FieldsMemory()
    inv = _invoice_fields()
    mem.put("a.txt", inv)
    mem.put("b.txt", DocFields(kind="note"))
    mem.move("a.txt", "x/a.txt")
    assert mem.get("a.txt") is None
    assert mem.get("x/a.txt") == inv
    mem.move("gone.txt", "b.txt")  # a rename over b of a file without fields
    assert mem.get("b.txt") is None
    mem.put("x/a.txt", None)
    assert len(mem) == 0


def test_kind_only_entries_share_one_tuple_and_strings_are_interned() -> None:
    mem = FieldsMemory()
    for i in range(3):
        mem.put(f"n{i}.md", DocFields.from_payload({"kind": "".join(["no", "te"])}))
    first, second = mem.get("n0.md"), mem.get("n2.md")
    assert first is not None
    assert first is second
    a = DocFields.from_payload({"vendor": "".join(["ac", "me"])})
    b = DocFields.from_payload({"vendor": "".join(["acm", "e"])})
    assert a is not None
    assert b is not None
    assert a.vendor is b.vendor


def test_a_million_file_vault_costs_tens_of_megabytes() -> None:
    """100k entries (1 in 10 an invoice with its own values): bytes per file, paths excluded."""
    paths = [f"folder{i % 100}/file-{i}.txt" for i in range(100_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        mem = FieldsMemory()
        for i, path in enumerate(paths):
            payload = ({"kind": "invoice", "vendor": f"vendor{i % 50}", "amount": i + 0.5,
                        "currency": "USD", "due_day": 19_000 + i % 900, "status": "unpaid"}
                       if i % 10 == 0 else {"kind": ("note", "document", "email")[i % 3]})
            mem.put(path, DocFields.from_payload(payload))
        per_file = (tracemalloc.get_traced_memory()[0] - before) / len(paths)
    finally:
        tracemalloc.stop()
    assert per_file < 80, f"{per_file:.1f} bytes per file"


def test_results_rows_keep_four_columns_and_fields_read_back() -> None:
    inv = _invoice_fields()
    odd = DocFields(kind="invoice", vendor="a\tb=c")
    hits = [Hit("acme.txt", "Finance/acme.txt", 0.9, 1, "invoice", inv),
            Hit("plain.md", "plain.md", 0.5, 2, "plain"),
            Hit("odd.txt", "odd.txt", 0.4, 3, "odd", odd)]
    lines = Listing(hits, None, generation=1).results_text().decode().splitlines()
    assert lines[0] == "# rank\tscore\tpath\tsnippet"
    rows = [line.split("\t") for line in lines if not line.startswith("#")]
    assert [len(r) for r in rows] == [4, 4, 4]
    assert [unescape_field(r[2]) for r in rows] == ["Finance/acme.txt", "plain.md", "odd.txt"]
    assert lines[2] == ("# 1\tkind=invoice\tvendor=acme\tamount=1234.50\tcurrency=USD\t"
                        "due=2023-11-01\tdate=2023-10-02\tpayment=unpaid")
    read = [got for got in map(read_fields_line, lines) if got is not None]
    assert read == [(1, inv), (3, odd)]
    assert read_fields_line("# no results above the similarity threshold") is None
    assert day_number("2023-11-01") == inv.due_day
