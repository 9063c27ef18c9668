"""Turn a :class:`Query` into store filters (run inside the vector search) and ranking hints.

Explicit syntax (``type:``, ``in:``, ``after:``/``before:``) and date phrases are hard filters.
Hints read from plain words (payment status, vendor, amount, currency, due window) exclude only
documents *known* to contradict them: a document without a ``status``/``vendor``/... field (an
e-mail, a note, a ledger) stays in and is ranked by meaning, while matching documents get a boost
(see :func:`hint_matches`).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from memexfs.store import Condition, Filter, IsEmpty, Match, MatchAny, Range
from query.parse import Query, date_window

EPOCH = date(1970, 1, 1)


# Kinds that never answer a payment-status question (see memexfs.fields for the kinds).
NO_PAYMENT_KINDS = ("code", "recipe", "study_notes", "paper_summary", "travel", "journal")


def day_number(d: date) -> int:
    """Days since 1970-01-01, the unit of ``doc_day``/``due_day`` payload fields."""
    return (d - EPOCH).days


def status_condition(status: str, today: date) -> Condition:
    """unpaid = unpaid or overdue; overdue = overdue, or unpaid with a due date before today."""
    if status == "paid":
        return Match("status", "paid")
    if status == "unpaid":
        return MatchAny("status", ("unpaid", "overdue"))
    late = Filter(must=(Match("status", "unpaid"), Range("due_day", lt=day_number(today))))
    return Filter(should=(Match("status", "overdue"), late))


def build_filter(q: Query) -> Filter:
    must: list[Condition] = []
    for folder in q.folders:
        must.append(Filter(should=(Match("dirs", folder), Match("path", folder))))
    if q.types:
        must.append(Filter(should=(MatchAny("ext", q.types), MatchAny("doc_type", q.types),
                                   MatchAny("kind", q.types))))
    lo, hi = date_window(q)
    if (lo is not None or hi is not None) and not q.date_hint_only:
        must.append(Range("doc_day", gte=None if lo is None else day_number(lo),
                          lte=None if hi is None else day_number(hi)))
    if q.status:
        must.append(Filter(should=(status_condition(q.status, q.today or date.today()),
                                   IsEmpty("status"))))
        # A payment status is asked of money matters: code or study notes that merely talk
        # about unpaid bills are not answers (a to-do note "pay Acme" still is).
        must.append(Filter(must_not=(MatchAny("kind", NO_PAYMENT_KINDS),)))
    if q.vendors:
        must.append(Filter(should=(MatchAny("vendor", q.vendors), IsEmpty("vendor"))))
    if q.amount_min is not None or q.amount_max is not None:
        must.append(Filter(should=(Range("amount", gte=q.amount_min, lte=q.amount_max),
                                   IsEmpty("amount"))))
    if q.currency:
        must.append(Filter(should=(Match("currency", q.currency), IsEmpty("currency"))))
    if q.due_from is not None or q.due_to is not None:
        must.append(Filter(should=(Range("due_day", gte=_day(q.due_from), lte=_day(q.due_to)),
                                   IsEmpty("due_day"))))
    return Filter(must=tuple(must))


def _day(d: date | None) -> int | None:
    return None if d is None else day_number(d)


def _within(value: object, lo: float | None, hi: float | None) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _status_ok(status: str, payload: dict[str, Any], today: date) -> bool:
    have = payload.get("status")
    if status == "unpaid":
        return have in ("unpaid", "overdue")
    if status == "overdue":
        due = payload.get("due_day")
        return have == "overdue" or (
            have == "unpaid" and isinstance(due, int) and due < day_number(today))
    return bool(have == status)


def hint_matches(q: Query, payload: dict[str, Any]) -> dict[str, bool]:
    """Which soft hints of ``q`` this chunk's file satisfies (used for boosting)."""
    out: dict[str, bool] = {}
    if q.vendors:
        out["vendor"] = payload.get("vendor") in q.vendors
    if q.kinds:
        out["kind"] = payload.get("kind") in q.kinds
    if q.status:
        out["status"] = _status_ok(q.status, payload, q.today or date.today())
    if q.amount_min is not None or q.amount_max is not None:
        out["amount"] = _within(payload.get("amount"), q.amount_min, q.amount_max)
    if q.currency:
        out["currency"] = payload.get("currency") == q.currency
    if q.due_from is not None or q.due_to is not None:
        out["due"] = _within(payload.get("due_day"), _day(q.due_from), _day(q.due_to))
    if q.date_soft is not None and q.date_from is not None and q.date_to is not None:
        day = payload.get("doc_day")
        out["date"] = isinstance(day, int) and (
            day_number(q.date_from) <= day <= day_number(q.date_to))
    elif q.date_hint_only:
        lo, hi = date_window(q)
        out["date"] = _within(payload.get("doc_day"), _day(lo), _day(hi))
    return out
