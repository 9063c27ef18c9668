"""Structured fields for search filters: kind, dates, amount, currency, vendor, payment status.

Rules over the extracted text, each field tagged with the rule that produced it so a wrong value can
be traced. Rules read labels ("Invoice date:", "Balance due:") and phrases, not file names, so they
work on unseen documents. Overdue depends on *today*, which is a query-time notion: we store what
the document states (paid / unpaid / overdue-as-stated) plus ``due_date``; the query layer decides.
The rules live in this package's modules by concern; ``extract_fields`` runs them in order.
"""

from __future__ import annotations

import datetime as dt
import re

from memexfs.fields.dates import (
    _DUE_LABELS,
    _ISSUE_LABELS,
    _PERIOD_RE,
    _content_date,
    _email_date,
    _first_dated,
    _labelled_date,
    _period,
    find_dates,
)
from memexfs.fields.kind import FINANCIAL_KINDS, _classify
from memexfs.fields.money import _amount, parse_amount
from memexfs.fields.status import _status
from memexfs.fields.vendor import _domain_org, _vendor, vendor_aliases, vendor_slug

__all__ = [
    "FINANCIAL_KINDS",
    "extract_fields",
    "find_dates",
    "parse_amount",
    "vendor_aliases",
    "vendor_slug",
]


_INVNO_RE = re.compile(
    r"\b(?i:invoice|bill|statement)\s*(?i:#|no\.?|number|num\.?|id)?\s*:?[ \t]*(?:\n[ \t]*)?"
    r"(?P<no>(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{2,}[A-Z0-9])\b",
)
_MD_EMPHASIS = re.compile(r"\*\*|__")  # "**Invoice #:** X" reads as "Invoice #: X"

_FIELDS = ("kind", "doc_date", "issue_date", "due_date", "sent_date", "period_start", "period_end",
           "amount", "currency", "vendor", "vendor_name", "vendor_aliases", "status",
           "invoice_number", "sender", "sender_org")


def extract_fields(
    text: str, *, path: str, title: str, doc_type: str, meta: dict[str, str], mtime: float
) -> dict[str, object]:
    """Payload fields for filters; every key present (None when unknown) plus ``field_sources``
    naming the rule behind each value."""
    out: dict[str, object] = dict.fromkeys(_FIELDS)
    src: dict[str, str] = {}
    # The document's own part: for an e-mail, the body before any attachment.
    text = _MD_EMPHASIS.sub("", text)
    head = text.split("\n--- Attachment: ", 1)[0] if doc_type == "email" else text[:6000]
    kind, rule = _classify(text, head, doc_type, meta, path)
    out["kind"], src["kind"] = kind, rule
    financial = kind in FINANCIAL_KINDS

    if doc_type == "email":
        sent = _email_date(meta)
        if sent:
            out["sent_date"], src["sent_date"] = sent.isoformat(), "email-date-header"
        if meta.get("from_addr"):
            out["sender"], src["sender"] = meta["from_addr"], "email-from"
            org = _domain_org(meta["from_addr"])
            if org:
                out["sender_org"], src["sender_org"] = org, "email-domain"

    if financial or kind in {"invoice_register", "estimate"}:
        _money_fields(text, head, doc_type, meta, kind, out, src)

    # doc_date: issue date for bills, sent date for mail, a dated line for notes, else mtime.
    if out["issue_date"]:
        out["doc_date"], src["doc_date"] = out["issue_date"], src["issue_date"]
    elif out["sent_date"]:
        out["doc_date"], src["doc_date"] = out["sent_date"], src["sent_date"]
    else:
        d = _content_date(head, doc_type, path)
        if d is not None:
            out["doc_date"], src["doc_date"] = d[0].isoformat(), d[1]
        else:
            out["doc_date"] = dt.datetime.fromtimestamp(mtime).date().isoformat()
            src["doc_date"] = "mtime"
    out["field_sources"] = src
    return out


def _money_fields(text: str, head: str, doc_type: str, meta: dict[str, str], kind: str,
                  out: dict[str, object], src: dict[str, str]) -> None:
    # For an e-mail the body speaks for the message; an attached invoice fills what it leaves out.
    scopes = [head, text] if doc_type == "email" else [text]
    m = None
    for scope in scopes:
        m = _INVNO_RE.search(scope)
        if m:
            out["invoice_number"], src["invoice_number"] = m.group("no"), "label:invoice-number"
            break
    for scope in scopes:
        if kind == "receipt":
            issue = _labelled_date(scope, _ISSUE_LABELS) or _first_dated(scope)
        else:
            issue = _labelled_date(scope, _ISSUE_LABELS)
        if issue:
            out["issue_date"], src["issue_date"] = issue[0].isoformat(), "label:issue-date"
            break
    if kind in {"invoice", "payment_reminder", "estimate"}:
        for scope in scopes:
            due = _labelled_date(scope, _DUE_LABELS)
            if due:
                out["due_date"], src["due_date"] = due[0].isoformat(), "label:due-date"
                break
        for scope in scopes:
            pm = _PERIOD_RE.search(scope)
            if pm:
                period = _period(pm.group("v"))
                if period:
                    out["period_start"], out["period_end"] = (d.isoformat() for d in period)
                    src["period_start"] = src["period_end"] = "label:period"
                    break
    if doc_type == "email" and kind != "invoice":
        # A reminder or confirmation is *about* an invoice; its own date is when it was sent.
        out["issue_date"] = None
        src.pop("issue_date", None)
    for scope in scopes:
        am = _amount(scope)
        if am:
            out["amount"], src["amount"] = round(am[0].value, 2), am[1]
            out["currency"], src["currency"] = am[0].currency, "amount-symbol"
            break
    if kind == "receipt":
        out["status"], src["status"] = "paid", "receipt"
    elif kind == "payment_confirmation":
        out["status"], src["status"] = "paid", "payment-confirmation"
    elif kind != "invoice_register":
        for scope in scopes:
            st = _status(scope)
            if st:
                out["status"], src["status"] = st[0], f"phrase:{st[1]}"
                break
    vend = _vendor(text, head, doc_type, meta, kind)
    if vend:
        out["vendor_name"], src["vendor_name"] = vend[0], vend[1]
        slug = vendor_slug(vend[0])
        if slug:
            out["vendor"], src["vendor"] = slug, vend[1]
            out["vendor_aliases"] = vendor_aliases(vend[0])
