"""Structured fields from text. The documents here are written for the tests, in wordings and
layouts unlike the dev corpus, so they check that the rules generalise."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from memexfs.fields import (
    extract_fields,
    find_dates,
    parse_amount,
    vendor_aliases,
    vendor_slug,
)

MTIME = dt.datetime(2024, 2, 1, 12, 0).timestamp()


def fields(text: str, doc_type: str = "text", meta: dict[str, str] | None = None,
           path: str = "docs/file.txt") -> dict[str, object]:
    return extract_fields(text, path=path, title="", doc_type=doc_type, meta=meta or {},
                          mtime=MTIME)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Acme Corp.", "acme"),
        ("ACME Corporation", "acme"),
        ("Acme Cloud Hosting, Inc.", "acme"),
        ("acme", "acme"),
        ("Rose City Pharmacy", "rosecity"),
        ("Nimbus Storage Ltd", "nimbus"),
        ("Hofmann Elektro GmbH", "hofmannelektro"),
        ("Blue Harbor Insurance Company", "blueharbor"),
        ("The Copper Pot Restaurant LLC", "copperpot"),
        ("Müller & Söhne GmbH", "müllersöhne"),
    ],
)
def test_vendor_slug(name: str, slug: str) -> None:
    assert vendor_slug(name) == slug


def test_vendor_slug_matches_what_a_user_types() -> None:
    assert vendor_slug("rose city") == vendor_slug("Rose City Pharmacy, Inc.")
    assert vendor_slug("acme") == vendor_slug("ACME Corporation")
    assert vendor_slug("Inc.") is None
    assert vendor_aliases("Rose City Pharmacy") == ["rosecity", "rose", "rosecitypharmacy"]


def test_find_dates_formats() -> None:
    text = ("2024-03-05, March 6, 2024, 7 Mar 2024, Sept. 8, 2024, 09/10/2024, 25/12/2024, "
            "11.04.2024, 31 February 2024")
    got = [d.isoformat() for _, _, d in find_dates(text)]
    assert got == ["2024-03-05", "2024-03-06", "2024-03-07", "2024-09-08", "2024-09-10",
                   "2024-12-25", "2024-04-11"]


@pytest.mark.parametrize(
    ("raw", "value"),
    [("1,234.56", 1234.56), ("1.234,56", 1234.56), ("640,00", 640.0), ("1 234,5", 1234.5),
     ("12", 12.0), ("1,000", 1000.0)],
)
def test_parse_amount(raw: str, value: float) -> None:
    assert parse_amount(raw) == value


def test_every_key_present_and_json_serialisable() -> None:
    f = fields("")
    for key in ("kind", "doc_date", "issue_date", "due_date", "sent_date", "period_start",
                "period_end", "amount", "currency", "vendor", "vendor_name", "status",
                "invoice_number", "field_sources"):
        assert key in f
    json.dumps(f)
    assert f["doc_date"] == "2024-02-01"
    assert f["field_sources"] == {"kind": "doc_type:text", "doc_date": "mtime"}


UK_INVOICE = """TAX INVOICE
Nimbus Storage Ltd
14 Wharf Road, Bristol BS1 4RN · accounts@nimbus-storage.example

Invoice No.: NS-2291
Date of invoice: 12 March 2024
Payment due: 11 April 2024

Item                         Amount
Cold storage, 2 TB           £900.00
VAT                          £120.50
Invoice total                £1,020.50

Status: Unpaid
"""


def test_unseen_invoice_layout() -> None:
    f = fields(UK_INVOICE, doc_type="pdf")
    assert f["kind"] == "invoice"
    assert f["invoice_number"] == "NS-2291"
    assert f["issue_date"] == "2024-03-12"
    assert f["doc_date"] == "2024-03-12"
    assert f["due_date"] == "2024-04-11"
    assert f["amount"] == 1020.5
    assert f["currency"] == "GBP"
    assert f["vendor"] == "nimbus"
    assert f["vendor_name"] == "Nimbus Storage Ltd"
    assert f["status"] == "unpaid"
    sources = f["field_sources"]
    assert isinstance(sources, dict)
    assert sources["status"].startswith("phrase:")
    assert sources["doc_date"] == "label:issue-date"


UTILITY = """Riverbend Water Utility
PO Box 12, Springfield · billing@riverbend-water.example
Account 55-1203
Statement date: 01/05/2024
Service period: Dec 1, 2023 - Dec 31, 2023
Due date: 01/26/2024

Previous balance                       $61.20
Payment received - thank you           -$61.20
Water usage, 4,100 gal                 $48.75
Sewer                                  $22.10
Total amount due                       $70.85
"""


def test_statement_thanking_for_previous_payment_is_still_open() -> None:
    f = fields(UTILITY)
    assert f["kind"] == "invoice"
    assert f["amount"] == 70.85
    assert f["period_start"] == "2023-12-01"
    assert f["period_end"] == "2023-12-31"
    assert f["issue_date"] == "2024-01-05"
    assert f["due_date"] == "2024-01-26"
    assert f["vendor"] == "riverbend"
    assert f["status"] == "unpaid"  # the thank-you is for the previous bill


@pytest.mark.parametrize(
    ("phrase", "status"),
    [
        ("Balance due: $430.00", "unpaid"),
        ("We have not yet received your payment. Payment not yet received.", "unpaid"),
        ("Amount due: $0.00 - paid on 2024-03-20 by card.", "paid"),
        ("PAID IN FULL", "paid"),
        ("Thank you! We received your payment of $430.00 on March 20, 2024.", "paid"),
        ("Past due: $430.00. This invoice is 12 days late.", "overdue"),
        ("FINAL NOTICE: $430.00 was due on March 30, 2024 and has not been received.", "overdue"),
        ("", None),
    ],
)
def test_status_phrases(phrase: str, status: str | None) -> None:
    text = ("Invoice\nLarkspur Design Co.\nInvoice #: LD-77\nInvoice date: March 1, 2024\n"
            f"Due date: March 30, 2024\nTotal: $430.00\n\n{phrase}\n")
    f = fields(text)
    assert f["kind"] == "invoice"
    assert f["status"] == status
    assert f["amount"] == 430.0


def test_paid_statement_amount_is_the_bill_not_the_zero_balance() -> None:
    text = ("Monthly statement\nOrchid Mobile · 1 Tower Sq · help@orchid.example\n"
            "Invoice #: OM-88\nInvoice date: 2024-02-02\nDue date: 2024-02-22\n"
            "Previous balance  $40.00\nPayment received on previous balance - thank you  -$40.00\n"
            "Unlimited plan  $35.00\nAutopay payment 2024-02-20  -$35.00\n"
            "Total amount due: $0.00\n")
    f = fields(text)
    assert f["amount"] == 35.0
    assert f["status"] == "paid"


def test_euro_invoice_with_comma_decimals() -> None:
    text = ("Rechnung / Invoice\nAtelier Brandt B.V. · Keizersgracht 1, Amsterdam\n"
            "Invoice #: AB-2024-9\nInvoice date: 2024-04-02\nDue date: 2024-04-16\n"
            "Total: € 1.250,00\nThis invoice is unpaid.\n")
    f = fields(text)
    assert f["amount"] == 1250.0
    assert f["currency"] == "EUR"
    assert f["vendor"] == "atelierbrandt"
    assert f["status"] == "unpaid"


def email_meta(sender: str, subject: str, date: str = "Tue, 05 Mar 2024 10:00:00 -0800") -> (
    dict[str, str]
):
    name, _, addr = sender.rpartition(" <")
    return {"from": sender, "from_addr": addr.rstrip(">") if addr else sender,
            "from_name": name, "subject": subject, "date": date,
            "date_iso": "2024-03-05T10:00:00-08:00", "to": "Sam Lee <sam@example.org>"}


def test_invoice_email_vendor_is_sender_organisation() -> None:
    body = ("From: billing@acme-corp.example\nSubject: Your March invoice\n\nHi Sam,\n"
            "your invoice A-1009 for March comes to $88.00, due March 30, 2024.\n"
            "Balance due: $88.00\n\nThe billing team\n")
    meta = email_meta("billing@acme-corp.example", "Your March invoice")
    f = fields(body, doc_type="email", meta=meta, path="Mail/x.eml")
    assert f["kind"] == "invoice"
    assert f["vendor"] == "acme"
    assert f["sender"] == "billing@acme-corp.example"
    assert f["sent_date"] == "2024-03-05"
    assert f["doc_date"] == "2024-03-05"
    assert f["amount"] == 88.0
    assert f["status"] == "unpaid"
    assert f["due_date"] == "2024-03-30"


def test_payment_confirmation_and_reminder_emails() -> None:
    conf = fields("Hello,\nWe received your payment of $88.00 for invoice A-1009. Thanks!\n"
                  "Acme Corp\n", doc_type="email",
                  meta=email_meta("Acme Corp <billing@acme-corp.example>",
                                  "Payment received for A-1009"), path="Mail/c.eml")
    assert conf["kind"] == "payment_confirmation"
    assert conf["status"] == "paid"
    assert conf["invoice_number"] == "A-1009"
    assert conf["vendor"] == "acme"
    rem = fields("Hello,\nA quick reminder: invoice A-1010 ($120.00) is payable by April 2, "
                 "2024.\nAcme Corp\n", doc_type="email",
                 meta=email_meta("billing@acme-corp.example", "Reminder: invoice A-1010"),
                 path="Mail/r.eml")
    assert rem["kind"] == "payment_reminder"
    assert rem["due_date"] == "2024-04-02"
    assert rem["issue_date"] is None  # a reminder is not the invoice
    assert rem["doc_date"] == "2024-03-05"


def test_documents_that_merely_mention_a_vendor_are_not_invoices() -> None:
    contract = fields("Master Services Agreement\n\nThis Agreement is made between Acme Corp "
                      "and Sam Lee. Invoices are payable within 30 days. Either party may "
                      "terminate with 30 days' notice. Governing law: Oregon.\n", doc_type="pdf")
    assert contract["kind"] == "contract"
    assert contract["status"] is None
    news = fields("Acme Corp product update: new data centers! Unsubscribe any time.\n",
                  doc_type="email", meta=email_meta("news@acme-corp.example",
                                                    "Acme product update"), path="Mail/n.eml")
    assert news["kind"] == "email"
    assert news["sender_org"] == "acme"
    code = fields("def overdue(invoices):\n    # unpaid invoices past due\n"
                  "    return [i for i in invoices if i.balance_due > 0]\n", doc_type="code",
                  path="src/billing.py")
    assert code["kind"] == "code"
    assert code["status"] is None


def test_receipt() -> None:
    text = ("          MAPLE LEAF BAKERY\n   22 Main St, Springfield\n\n03/14/2024  08:12\n"
            "Order # 5512\nCroissant x2          $7.00\nLatte                 $4.50\n"
            "TOTAL                $11.50\nVISA ****1234\nThank you for shopping at Maple Leaf "
            "Bakery!\n")
    f = fields(text)
    assert f["kind"] == "receipt"
    assert f["doc_date"] == "2024-03-14"
    assert f["amount"] == 11.5
    assert f["vendor"] == "mapleleaf"
    assert f["status"] == "paid"


def test_note_dates_come_from_the_text_or_the_file_name() -> None:
    note = fields("# Kickoff\n\n**Date:** June 3, 2024\nAttendees: Ana, Bo\n\nAgenda: scope\n",
                  doc_type="markdown", path="Projects/x/meeting.md")
    assert note["kind"] == "meeting_notes"
    assert note["doc_date"] == "2024-06-03"
    journal = fields("Slept badly, long walk by the river.", doc_type="markdown",
                     path="Personal/Journal/2024-05-17.md")
    assert journal["kind"] == "journal"
    assert journal["doc_date"] == "2024-05-17"
    sources = journal["field_sources"]
    assert isinstance(sources, dict)
    assert sources["doc_date"] == "file-name"
