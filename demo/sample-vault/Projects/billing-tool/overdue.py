"""Flag invoices whose due date has passed and that are still unpaid."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass
class Invoice:
    number: str
    due: dt.date
    paid: bool


def overdue(invoices: list[Invoice], today: dt.date) -> list[Invoice]:
    """Unpaid invoices past their due date, oldest first."""
    late = [inv for inv in invoices if not inv.paid and inv.due < today]
    return sorted(late, key=lambda inv: inv.due)
