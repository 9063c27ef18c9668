"""Payment status as the document states it: paid, unpaid, overdue-as-stated."""

from __future__ import annotations

import re

_PREVIOUS = re.compile(r"\b(?:previous|prior|last (?:month|bill|statement|period))\b", re.I)
_STATUS_RULES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (status, name, re.compile(pat, re.IGNORECASE))
    for status, name, pat in (
        ("overdue", "stated-overdue", r"\bstatus:?\s*overdue\b|^\s*overdue\b|\boverdue\s*[-—:]"),
        ("overdue", "past-due", r"\bpast due\b(?!\s*(?:may|accounts|invoices))|\bdays (?:late|"
                                r"overdue|past due)\b"),
        ("overdue", "notice", r"\b(?:second|final|third) notice\b|\bhas not been received\b|"
                              r"\bremains (?:open|unpaid|outstanding) past\b"),
        ("paid", "stated-paid", r"\bpaid in full\b|\bstatus:?\s*paid\b|^\s*paid\b"),
        ("paid", "payment-received", r"\bpayment received\b|\bwe (?:have )?received your payment"
                                     r"|\bthank you for your payment\b|\bpayment processed\b"),
        ("paid", "paid-on", r"\bpaid on\b|\bpaid (?:by|via|with)\b"),
        ("paid", "zero-due", r"\b(?:amount|balance|total amount) due:?\s*[$€£]?\s*0(?:[.,]00)?\b"
                             r"|\bbalance is now zero\b"),
        ("paid", "applied", r"\bapplied to invoice\b|\bthis confirms that your\b"),
        ("unpaid", "not-received", r"\bpayment (?:has )?not (?:yet )?(?:been )?received\b|"
                                   r"\bnot yet paid\b"),
        ("unpaid", "stated-unpaid", r"\bstatus:?\s*(?:unpaid|open|outstanding)\b|"
                                    r"\binvoice is (?:unpaid|open|outstanding)\b"),
        ("unpaid", "outstanding", r"\bamount outstanding\b|\boutstanding balance\b|"
                                  r"\bplease pay by\b|\bpayable by\b|\brecords show a balance\b"),
        ("unpaid", "balance-due", r"\bbalance due:?\s*[$€£]?\s*[1-9]|\btotal due\s*[$€£]?\s*[1-9]"
                                  r"|\bamount due:?\s*[$€£]?\s*[1-9]"),
    )
)


# Phrases that may be about an earlier bill ("Payment received - thank you" on a statement that
# carries a new balance) or printed before a payment stamp; they lose to any firmer statement.
_WEAK = {"payment-received", "balance-due"}


def _status(text: str) -> tuple[str, str] | None:
    """What the document says about payment. A phrase about a *previous* bill does not count:
    utility statements thank you for last month's payment while this one is open."""
    last: dict[str, tuple[int, str]] = {}  # status (+ "-weak") -> (position, rule)
    for status, name, pat in _STATUS_RULES:
        for m in pat.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            line = text[line_start : line_end if line_end >= 0 else len(text)]
            if _PREVIOUS.search(line):
                continue
            key = status + ("-weak" if name in _WEAK else "")
            if key not in last or m.start() > last[key][0]:
                last[key] = (m.start(), name)
    strong = [(pos, k, rule) for k, (pos, rule) in last.items() if not k.endswith("-weak")]
    if "overdue" in last and not any(k == "paid" and pos > last["overdue"][0]
                                     for pos, k, _ in strong):
        return "overdue", last["overdue"][1]  # unless a later stamp says it was paid after all
    if strong:
        _, key, rule = max(s for s in strong if s[1] != "overdue")
        return key, rule
    if "unpaid-weak" in last:  # a balance still due outweighs a thank-you for a payment
        return "unpaid", last["unpaid-weak"][1]
    if "paid-weak" in last:
        return "paid", last["paid-weak"][1]
    return None
